"""Login backends; the ini's ``fedoracloud.auth.backend`` chooses one."""

from __future__ import annotations

from typing import Any, Protocol

from ..settings import ConfigError
from .htpasswd import HtpasswdBackend


class PasswordBackend(Protocol):
    """A backend that checks a username and password."""

    def verify(self, username: str, password: str) -> bool: ...


def make_backend(settings: Any) -> PasswordBackend:
    """The password backend the settings ask for."""
    if settings.auth_backend == "htpasswd":
        return HtpasswdBackend(settings.htpasswd_file)
    # oidc and fas arrive with the login issue; refuse clearly until then

    raise ConfigError(
        f"setting fedoracloud.auth.backend: {settings.auth_backend!r} is not available yet"
    )


def includeme(config: Any) -> None:
    """Register the configured login backend as ``registry['auth_backend']``."""
    config.registry["auth_backend"] = make_backend(config.registry["fc_settings"])
