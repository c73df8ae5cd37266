"""FedoraCloud's settings: read once from the ini into a typed object.

A value written ``env:NAME`` is read from the environment variable NAME, so that
production.ini holds no secret.  A missing or malformed value raises ``ConfigError``
naming the setting, which the CLI turns into a one-line error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .cobbler import CobblerSettings


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


_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._+@/-]*$")
_SECRET_RE = re.compile(r"^[!#-\[\]-~]+$")  # printable ASCII without space, " and \
_DN_RE = re.compile(r"^[^\x00-\x1f\x7f\"\\]+$")
_ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_URL_RE = re.compile(r"^(https?|wss?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/?$")
_LIBVIRT_URI_RE = re.compile(r"^[a-z][a-z0-9+]*://[A-Za-z0-9.:\[\]@-]*/[A-Za-z0-9._/?=&%-]*$")
ENC_UNKNOWN_NODE = ("error", "empty")
#: the collectd server listens for every node
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def _text(settings: dict[str, Any], key: str, default: str = "") -> str:
    return str(settings.get(key, default) or default).strip()


def _port(settings: dict[str, Any], key: str, default: int) -> int:
    number = _int(settings, key, default, minimum=1)
    if number > 65535:
        raise ConfigError(f"setting {key}: a port is at most 65535, got {number}")
    return number


def _host(settings: dict[str, Any], key: str, default: str = "") -> str:
    """A host name or an IP address (empty if allowed by an empty default)."""
    value = _text(settings, key, default)
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(value):
        raise ConfigError(f"setting {key}: not a host name or IP address: {value[:80]!r}")
    return value.lower()


def _matching(
    settings: dict[str, Any], key: str, default: str, pattern: re.Pattern[str], what: str
) -> str:
    value = _text(settings, key, default)
    if value and not pattern.fullmatch(value):
        raise ConfigError(f"setting {key}: {what}, got {value[:80]!r}")
    return value


def _checked_url(key: str, url: str) -> str:
    if not _URL_RE.fullmatch(url) or not url.startswith("http://"):
        raise ConfigError(f"setting {key}: expected http://HOST:PORT, got {url[:80]!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class PuppetSettings:
    """What the Puppet ENC and the rendered node, web and collectd configs are made of.

    ``management_network`` and ``collectd_password`` have no default: rendering a node
    config without them raises ConfigError naming the setting."""

    server_name: str = "localhost"
    environment: str = "production"
    web_certnames: tuple[str, ...] = ()
    collectd_server_certname: str = ""
    collectd_server: str = "localhost"
    collectd_port: int = 25826
    collectd_listen: str = ALL_INTERFACES
    collectd_username: str = "fedoracloud"
    collectd_password: str = ""
    collectd_data_dir: str = "/var/lib/collectd/rrd"
    collectd_auth_file: str = "/etc/collectd.passwd"
    collectd_libvirt_uri: str = "qemu:///system"
    qpid_broker: str = "localhost"
    qpid_port: int = 5672
    management_network: str = ""
    console_proxy_address: str = ""
    console_proxy_port: int = 6080
    libvirt_tls_port: int = 16514
    libvirt_client_dn: str = "CN=fedoracloud-app"
    libvirt_ca_file: str = "/etc/pki/CA/cacert.pem"
    libvirt_cert_file: str = "/etc/pki/libvirt/servercert.pem"
    libvirt_key_file: str = "/etc/pki/libvirt/private/serverkey.pem"
    web_app_url: str = "http://127.0.0.1:6543"
    web_tls_cert: str = "/etc/pki/tls/certs/fedoracloud.crt"
    web_tls_key: str = "/etc/pki/tls/private/fedoracloud.key"
    web_static_dir: str = ""
    #: the load balancer's app instances (``fedoracloud.web.backends``), and its ports
    web_backends: tuple[str, ...] = ()
    web_http_port: int = 80
    web_https_port: int = 443
    enc_unknown_node: str = "error"
    enc_token: str = ""
    target_root: str = "/"
    manage_packages: bool = True
    manage_services: bool = True

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> PuppetSettings:
        """Validate the Puppet settings; raise ConfigError naming the first bad one."""
        network = _text(settings, "fedoracloud.management_network")
        if network:
            try:
                network = str(ipaddress.ip_network(network, strict=False))
            except ValueError:
                raise ConfigError(
                    "setting fedoracloud.management_network: not a network in CIDR form"
                    f" (such as 10.5.0.0/16): {network[:80]!r}"
                ) from None
        certnames = _list(settings, "fedoracloud.web.certnames")
        for name in certnames:
            if not _HOSTNAME_RE.fullmatch(name):
                raise ConfigError(f"setting fedoracloud.web.certnames: not a certname: {name!r}")
        unknown = _text(settings, "fedoracloud.enc.unknown_node", "error")
        if unknown not in ENC_UNKNOWN_NODE:
            raise ConfigError(
                f"setting fedoracloud.enc.unknown_node: {unknown!r} is not one of error, empty"
            )
        console = _text(settings, "fedoracloud.console_proxy.address")
        if console:
            try:
                console = str(ipaddress.ip_address(console))
            except ValueError:
                raise ConfigError(
                    f"setting fedoracloud.console_proxy.address: not an IP address: {console!r}"
                ) from None

        enc_token = _text(settings, "fedoracloud.enc.token")
        if enc_token and (len(enc_token) < 16 or not _SECRET_RE.fullmatch(enc_token)):
            raise ConfigError(
                "setting fedoracloud.enc.token: use at least 16 printable characters"
                " without spaces, quotes or backslashes"
            )

        def path(key: str, default: str) -> str:
            return _matching(settings, key, default, _PATH_RE, "expected an absolute path")

        def secret(key: str) -> str:
            return _matching(
                settings,
                key,
                "",
                _SECRET_RE,
                "use printable characters without spaces, quotes or backslashes",
            )

        return cls(
            server_name=_host(settings, "fedoracloud.server_name", "localhost"),
            environment=_matching(
                settings,
                "fedoracloud.enc.environment",
                "production",
                _ENVIRONMENT_RE,
                "a Puppet environment name (lowercase letters, digits, _)",
            ),
            web_certnames=tuple(n.lower() for n in certnames),
            collectd_server_certname=_host(settings, "fedoracloud.collectd.certname"),
            collectd_server=_host(settings, "fedoracloud.collectd.server", "localhost"),
            collectd_port=_port(settings, "fedoracloud.collectd.port", 25826),
            collectd_listen=_host(settings, "fedoracloud.collectd.listen", ALL_INTERFACES),
            collectd_username=secret("fedoracloud.collectd.username") or "fedoracloud",
            collectd_password=secret("fedoracloud.collectd.password"),
            collectd_data_dir=path("fedoracloud.collectd.data_dir", "/var/lib/collectd/rrd"),
            collectd_auth_file=path("fedoracloud.collectd.auth_file", "/etc/collectd.passwd"),
            collectd_libvirt_uri=_matching(
                settings,
                "fedoracloud.collectd.libvirt_uri",
                "qemu:///system",
                _LIBVIRT_URI_RE,
                "not a libvirt URI",
            ),
            qpid_broker=_host(settings, "fedoracloud.qpid.broker", "localhost"),
            qpid_port=_port(settings, "fedoracloud.qpid.port", 5672),
            management_network=network,
            console_proxy_address=console,
            console_proxy_port=_port(settings, "fedoracloud.console_proxy.port", 6080),
            libvirt_tls_port=_port(settings, "fedoracloud.libvirt.tls_port", 16514),
            libvirt_client_dn=_matching(
                settings,
                "fedoracloud.libvirt.client_dn",
                "CN=fedoracloud-app",
                _DN_RE,
                "a distinguished name without quotes, backslashes or control characters",
            ),
            libvirt_ca_file=path("fedoracloud.libvirt.ca_file", cls.libvirt_ca_file),
            libvirt_cert_file=path("fedoracloud.libvirt.cert_file", cls.libvirt_cert_file),
            libvirt_key_file=path("fedoracloud.libvirt.key_file", cls.libvirt_key_file),
            web_app_url=_matching(
                settings,
                "fedoracloud.web.app_url",
                "http://127.0.0.1:6543",
                _URL_RE,
                "expected http://HOST:PORT",
            ),
            web_tls_cert=path("fedoracloud.web.tls_cert", cls.web_tls_cert),
            web_tls_key=path("fedoracloud.web.tls_key", cls.web_tls_key),
            web_static_dir=path("fedoracloud.web.static_dir", ""),
            web_backends=tuple(
                _checked_url("fedoracloud.web.backends", url)
                for url in _list(settings, "fedoracloud.web.backends")
            ),
            web_http_port=_port(settings, "fedoracloud.web.http_port", 80),
            web_https_port=_port(settings, "fedoracloud.web.https_port", 443),
            enc_unknown_node=unknown,
            enc_token=enc_token,
            target_root=path("fedoracloud.puppet.target_root", "/"),
            manage_packages=_bool(settings, "fedoracloud.puppet.manage_packages", True),
            manage_services=_bool(settings, "fedoracloud.puppet.manage_services", True),
        )


_WS_URL_RE = re.compile(r"^(/[A-Za-z0-9._~/-]*|wss?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?)$")


@dataclass(frozen=True)
class ConsoleSettings:
    """The browser consoles (``fedoracloud.console.*``): how long a one-time token lives,
    where the browser opens the WebSocket, where ``fedoracloud console-proxy`` listens
    (``fedoracloud.console_proxy.address``/``port``, the ones httpd proxies ``/console/``
    to), and whether ``fedoracloud serve`` runs the proxy in its own process."""

    token_ttl: int = 60
    websocket_url: str = "/console/"
    listen_host: str = "127.0.0.1"
    listen_port: int = 6080
    embedded_proxy: bool = False
    #: seconds between the proxy's WebSocket pings, which keep an idle console open
    #: through httpd and load balancers (their idle timeouts); 0: no pings
    heartbeat: int = 30

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> ConsoleSettings:
        """Validate the console settings; raise ConfigError naming the first bad one."""
        ttl = _int(settings, "fedoracloud.console.token_ttl", 60, minimum=5)
        if ttl > 600:
            raise ConfigError(
                f"setting fedoracloud.console.token_ttl: at most 600 seconds, got {ttl}"
            )
        url = _matching(
            settings,
            "fedoracloud.console.websocket_url",
            "/console/",
            _WS_URL_RE,
            "a path such as /console/ (same site, through httpd) or ws://HOST:PORT/",
        )
        return cls(
            token_ttl=ttl,
            websocket_url=url,
            listen_host=_host(settings, "fedoracloud.console_proxy.address", "127.0.0.1"),
            listen_port=_port(settings, "fedoracloud.console_proxy.port", 6080),
            embedded_proxy=_bool(settings, "fedoracloud.console.embedded_proxy", False),
            heartbeat=_int(settings, "fedoracloud.console.heartbeat", 30, minimum=0),
        )


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
    puppet: PuppetSettings = field(default_factory=PuppetSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    cobbler: CobblerSettings = field(default_factory=CobblerSettings)
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
            puppet=PuppetSettings.from_dict(settings),
            console=ConsoleSettings.from_dict(settings),
            cobbler=CobblerSettings.from_dict(settings),
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
