"""The Puppet section (``fedoracloud.server_name``, ``fedoracloud.enc.*``,
``fedoracloud.collectd.*``, ``fedoracloud.web.*``, ``fedoracloud.puppet.*``…): what the ENC
and the rendered node, web and collectd configs are made of."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .values import (
    DN_RE,
    ENVIRONMENT_RE,
    HOSTNAME_RE,
    LIBVIRT_URI_RE,
    PATH_RE,
    SECRET_RE,
    URL_RE,
    ConfigError,
    checked_url,
    read_bool,
    read_host,
    read_list,
    read_matching,
    read_port,
    read_text,
)

ENC_UNKNOWN_NODE = ("error", "empty")
#: the collectd server listens for every node
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


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
        network = read_text(settings, "fedoracloud.management_network")
        if network:
            try:
                network = str(ipaddress.ip_network(network, strict=False))
            except ValueError:
                raise ConfigError(
                    "setting fedoracloud.management_network: not a network in CIDR form"
                    f" (such as 10.5.0.0/16): {network[:80]!r}"
                ) from None
        certnames = read_list(settings, "fedoracloud.web.certnames")
        for name in certnames:
            if not HOSTNAME_RE.fullmatch(name):
                raise ConfigError(f"setting fedoracloud.web.certnames: not a certname: {name!r}")
        unknown = read_text(settings, "fedoracloud.enc.unknown_node", "error")
        if unknown not in ENC_UNKNOWN_NODE:
            raise ConfigError(
                f"setting fedoracloud.enc.unknown_node: {unknown!r} is not one of error, empty"
            )
        console = read_text(settings, "fedoracloud.console_proxy.address")
        if console:
            try:
                console = str(ipaddress.ip_address(console))
            except ValueError:
                raise ConfigError(
                    f"setting fedoracloud.console_proxy.address: not an IP address: {console!r}"
                ) from None

        enc_token = read_text(settings, "fedoracloud.enc.token")
        if enc_token and (len(enc_token) < 16 or not SECRET_RE.fullmatch(enc_token)):
            raise ConfigError(
                "setting fedoracloud.enc.token: use at least 16 printable characters"
                " without spaces, quotes or backslashes"
            )

        def path(key: str, default: str) -> str:
            return read_matching(settings, key, default, PATH_RE, "expected an absolute path")

        def secret(key: str) -> str:
            return read_matching(
                settings,
                key,
                "",
                SECRET_RE,
                "use printable characters without spaces, quotes or backslashes",
            )

        return cls(
            server_name=read_host(settings, "fedoracloud.server_name", "localhost"),
            environment=read_matching(
                settings,
                "fedoracloud.enc.environment",
                "production",
                ENVIRONMENT_RE,
                "a Puppet environment name (lowercase letters, digits, _)",
            ),
            web_certnames=tuple(n.lower() for n in certnames),
            collectd_server_certname=read_host(settings, "fedoracloud.collectd.certname"),
            collectd_server=read_host(settings, "fedoracloud.collectd.server", "localhost"),
            collectd_port=read_port(settings, "fedoracloud.collectd.port", 25826),
            collectd_listen=read_host(settings, "fedoracloud.collectd.listen", ALL_INTERFACES),
            collectd_username=secret("fedoracloud.collectd.username") or "fedoracloud",
            collectd_password=secret("fedoracloud.collectd.password"),
            collectd_data_dir=path("fedoracloud.collectd.data_dir", "/var/lib/collectd/rrd"),
            collectd_auth_file=path("fedoracloud.collectd.auth_file", "/etc/collectd.passwd"),
            collectd_libvirt_uri=read_matching(
                settings,
                "fedoracloud.collectd.libvirt_uri",
                "qemu:///system",
                LIBVIRT_URI_RE,
                "not a libvirt URI",
            ),
            qpid_broker=read_host(settings, "fedoracloud.qpid.broker", "localhost"),
            qpid_port=read_port(settings, "fedoracloud.qpid.port", 5672),
            management_network=network,
            console_proxy_address=console,
            console_proxy_port=read_port(settings, "fedoracloud.console_proxy.port", 6080),
            libvirt_tls_port=read_port(settings, "fedoracloud.libvirt.tls_port", 16514),
            libvirt_client_dn=read_matching(
                settings,
                "fedoracloud.libvirt.client_dn",
                "CN=fedoracloud-app",
                DN_RE,
                "a distinguished name without quotes, backslashes or control characters",
            ),
            libvirt_ca_file=path("fedoracloud.libvirt.ca_file", cls.libvirt_ca_file),
            libvirt_cert_file=path("fedoracloud.libvirt.cert_file", cls.libvirt_cert_file),
            libvirt_key_file=path("fedoracloud.libvirt.key_file", cls.libvirt_key_file),
            web_app_url=read_matching(
                settings,
                "fedoracloud.web.app_url",
                "http://127.0.0.1:6543",
                URL_RE,
                "expected http://HOST:PORT",
            ),
            web_tls_cert=path("fedoracloud.web.tls_cert", cls.web_tls_cert),
            web_tls_key=path("fedoracloud.web.tls_key", cls.web_tls_key),
            web_static_dir=path("fedoracloud.web.static_dir", ""),
            web_backends=tuple(
                checked_url("fedoracloud.web.backends", url)
                for url in read_list(settings, "fedoracloud.web.backends")
            ),
            web_http_port=read_port(settings, "fedoracloud.web.http_port", 80),
            web_https_port=read_port(settings, "fedoracloud.web.https_port", 443),
            enc_unknown_node=unknown,
            enc_token=enc_token,
            target_root=path("fedoracloud.puppet.target_root", "/"),
            manage_packages=read_bool(settings, "fedoracloud.puppet.manage_packages", True),
            manage_services=read_bool(settings, "fedoracloud.puppet.manage_services", True),
        )
