"""FedoraCloud's settings: read once from the ini into a typed object, one section per
concern (``puppet``, ``console``, ``cobbler``, ``libvirt``) next to the app's own.

A value written ``env:NAME`` is read from the environment variable NAME, so that
production.ini holds no secret.  A missing or malformed value raises ``ConfigError``
naming the setting, which the CLI turns into a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cobbler import CobblerSettings
from .console import ConsoleSettings
from .ini import read_app_settings
from .libvirt import LibvirtSettings
from .puppet import PuppetSettings
from .values import ConfigError, read_bool, read_int, read_list, resolve_env

__all__ = [
    "AUTH_BACKENDS",
    "OIDC_SCOPES",
    "CobblerSettings",
    "ConfigError",
    "ConsoleSettings",
    "LibvirtSettings",
    "PuppetSettings",
    "Settings",
    "includeme",
    "read_app_settings",
    "resolve_env",
]

AUTH_BACKENDS = ("htpasswd", "oidc", "fas")
OIDC_SCOPES = ("openid", "profile", "email", "https://id.fedoraproject.org/scope/groups")


@dataclass(frozen=True)
class Settings:
    """Every FedoraCloud setting the code reads."""

    database_url: str
    session_secret: str
    auth_backend: str = "htpasswd"
    htpasswd_file: str = ""
    htpasswd_groups_file: str = ""
    admins: tuple[str, ...] = ()
    access_group: str = "sysadmin-cloud"
    admin_group: str = ""
    membership_ttl: int = 900
    secure_cookies: bool = True
    session_max_age: int = 12 * 3600
    instance_dir: str = "var"
    page_size: int = 25
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: tuple[str, ...] = OIDC_SCOPES
    fas_base_url: str = ""
    fas_username: str = ""
    fas_password: str = ""
    puppet: PuppetSettings = field(default_factory=PuppetSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    cobbler: CobblerSettings = field(default_factory=CobblerSettings)
    libvirt: LibvirtSettings = field(default_factory=LibvirtSettings)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Settings:
        """Validate the ini's settings; raise ConfigError naming the first bad one."""
        settings = resolve_env(raw)
        url = str(settings.get("sqlalchemy.url", "") or "").strip()
        if not url:
            raise ConfigError("setting sqlalchemy.url: missing (the database to use)")
        if "://" not in url:
            raise ConfigError(f"setting sqlalchemy.url: not a database URL: {url!r}")
        secret = str(settings.get("fedoracloud.session_secret", "") or "")
        if len(secret) < 16:
            raise ConfigError(
                "setting fedoracloud.session_secret: missing or shorter than 16 characters"
            )
        backend = str(settings.get("fedoracloud.auth.backend", "htpasswd")).strip()
        if backend not in AUTH_BACKENDS:
            raise ConfigError(
                f"setting fedoracloud.auth.backend: {backend!r} is not one of "
                + ", ".join(AUTH_BACKENDS)
            )
        htpasswd_file = str(settings.get("fedoracloud.htpasswd.file", "") or "")
        if backend == "htpasswd" and not htpasswd_file:
            raise ConfigError(
                "setting fedoracloud.htpasswd.file: required with the htpasswd backend"
            )
        oidc = {
            key: str(settings.get(f"fedoracloud.oidc.{key}", "") or "").strip()
            for key in ("issuer", "client_id", "client_secret")
        }
        if backend == "oidc":
            for key, value in oidc.items():
                if not value:
                    raise ConfigError(f"setting fedoracloud.oidc.{key}: required with oidc")
            if not oidc["issuer"].startswith(("https://", "http://127.0.0.1", "http://localhost")):
                raise ConfigError(
                    "setting fedoracloud.oidc.issuer: must be an https:// URL"
                    " (plain http only on loopback)"
                )
        fas_base_url = str(settings.get("fedoracloud.fas.base_url", "") or "").strip()
        if backend == "fas" and not fas_base_url.startswith(("https://", "http://")):
            raise ConfigError("setting fedoracloud.fas.base_url: required with fas (an URL)")
        return cls(
            database_url=url,
            session_secret=secret,
            auth_backend=backend,
            htpasswd_file=htpasswd_file,
            htpasswd_groups_file=str(settings.get("fedoracloud.htpasswd.groups_file", "") or ""),
            admins=read_list(settings, "fedoracloud.admins"),
            access_group=str(settings.get("fedoracloud.access_group", "sysadmin-cloud")),
            admin_group=str(settings.get("fedoracloud.admin_group", "") or ""),
            membership_ttl=read_int(settings, "fedoracloud.membership_ttl", 900, minimum=1),
            secure_cookies=read_bool(settings, "fedoracloud.secure_cookies", True),
            session_max_age=read_int(settings, "fedoracloud.session_max_age", 12 * 3600, 60),
            instance_dir=str(settings.get("fedoracloud.instance_dir", "var") or "var"),
            page_size=read_int(settings, "fedoracloud.page_size", 25, minimum=1),
            oidc_issuer=oidc["issuer"],
            oidc_client_id=oidc["client_id"],
            oidc_client_secret=oidc["client_secret"],
            oidc_scopes=read_list(settings, "fedoracloud.oidc.scopes") or OIDC_SCOPES,
            fas_base_url=fas_base_url,
            fas_username=str(settings.get("fedoracloud.fas.username", "") or ""),
            fas_password=str(settings.get("fedoracloud.fas.password", "") or ""),
            puppet=PuppetSettings.from_dict(settings),
            console=ConsoleSettings.from_dict(settings),
            cobbler=CobblerSettings.from_dict(settings),
            libvirt=LibvirtSettings.from_dict(settings),
            extra={k: v for k, v in settings.items() if k.startswith("fedoracloud.")},
        )


def includeme(config: Any) -> None:
    """Parse the settings once; the app reads ``request.fc_settings`` from then on."""
    fc_settings = Settings.from_dict(config.get_settings())
    # every part reads env:NAME values resolved (the engine's sqlalchemy.url above all)
    config.get_settings().update(resolve_env(dict(config.get_settings())))
    config.registry["fc_settings"] = fc_settings
    config.add_request_method(
        lambda request: request.registry["fc_settings"], "fc_settings", reify=True
    )
