"""FedoraCloud's settings: read once from the ini into a typed object.

A value written ``env:NAME`` is read from the environment variable NAME, so that
production.ini holds no secret.  A missing or malformed value raises ``ConfigError``
naming the setting, which the CLI turns into a one-line error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


AUTH_BACKENDS = ("htpasswd", "oidc", "fas")
OIDC_SCOPES = ("openid", "profile", "email", "https://id.fedoraproject.org/scope/groups")


def resolve_env(settings: dict[str, Any]) -> dict[str, Any]:
    """Replace every ``env:NAME`` value by the environment variable NAME."""
    resolved = dict(settings)
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith("env:"):
            name = value[4:].strip()
            if name not in os.environ:
                raise ConfigError(f"setting {key}: environment variable {name} is not set")
            resolved[key] = os.environ[name]
    return resolved


def _bool(settings: dict[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key)
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"setting {key}: expected true or false, got {value!r}")


def _int(settings: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"setting {key}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"setting {key}: must be at least {minimum}, got {number}")
    return number


def _list(settings: dict[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(settings.get(key, "") or "").replace(",", " ").split())


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
    libvirt_uri_template: str = "qemu+tls://{hostname}/system"
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: tuple[str, ...] = OIDC_SCOPES
    fas_base_url: str = ""
    fas_username: str = ""
    fas_password: str = ""
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
        template = str(settings.get("fedoracloud.libvirt.uri_template", cls.libvirt_uri_template))
        if "{hostname}" not in template:
            raise ConfigError("setting fedoracloud.libvirt.uri_template: must contain {hostname}")
        return cls(
            database_url=url,
            session_secret=secret,
            auth_backend=backend,
            htpasswd_file=htpasswd_file,
            htpasswd_groups_file=str(settings.get("fedoracloud.htpasswd.groups_file", "") or ""),
            admins=_list(settings, "fedoracloud.admins"),
            access_group=str(settings.get("fedoracloud.access_group", "sysadmin-cloud")),
            admin_group=str(settings.get("fedoracloud.admin_group", "") or ""),
            membership_ttl=_int(settings, "fedoracloud.membership_ttl", 900, minimum=1),
            secure_cookies=_bool(settings, "fedoracloud.secure_cookies", True),
            session_max_age=_int(settings, "fedoracloud.session_max_age", 12 * 3600, 60),
            instance_dir=str(settings.get("fedoracloud.instance_dir", "var") or "var"),
            page_size=_int(settings, "fedoracloud.page_size", 25, minimum=1),
            libvirt_uri_template=template,
            oidc_issuer=oidc["issuer"],
            oidc_client_id=oidc["client_id"],
            oidc_client_secret=oidc["client_secret"],
            oidc_scopes=_list(settings, "fedoracloud.oidc.scopes") or OIDC_SCOPES,
            fas_base_url=fas_base_url,
            fas_username=str(settings.get("fedoracloud.fas.username", "") or ""),
            fas_password=str(settings.get("fedoracloud.fas.password", "") or ""),
            extra={k: v for k, v in settings.items() if k.startswith("fedoracloud.")},
        )


def includeme(config: Any) -> None:
    """Parse the settings once; the app reads ``request.fc_settings`` from then on."""
    fc_settings = Settings.from_dict(config.get_settings())
    config.registry["fc_settings"] = fc_settings
    config.add_request_method(
        lambda request: request.registry["fc_settings"], "fc_settings", reify=True
    )
