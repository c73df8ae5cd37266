"""The configured login backend: ``make_backend()`` picks the one the settings name, and
``includeme`` registers it as ``registry['auth_backend']``."""

from __future__ import annotations

from typing import Any

from ..settings import ConfigError, Settings
from .fas import FasBackend
from .htpasswd import HtpasswdBackend
from .oidc import OidcBackend


def make_backend(settings: Settings) -> Any:
    """The login backend the settings ask for."""
    if settings.auth_backend == "htpasswd":
        return HtpasswdBackend(settings.htpasswd_file, settings.htpasswd_groups_file)
    if settings.auth_backend == "fas":
        return FasBackend(settings)
    if settings.auth_backend == "oidc":
        return OidcBackend(settings)
    raise ConfigError(f"setting fedoracloud.auth.backend: unknown {settings.auth_backend!r}")


def includeme(config: Any) -> None:
    """Register the configured login backend as ``registry['auth_backend']``."""
    config.registry["auth_backend"] = make_backend(config.registry["fc_settings"])
