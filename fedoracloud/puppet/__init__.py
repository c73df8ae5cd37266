"""The files Puppet lays down on FedoraCloud machines, rendered once from Jinja2 templates.

One renderer serves the ENC (which hands the contents to the Puppet module as class
parameters), ``fedoracloud node-config`` and ``fedoracloud web-config`` (which write them
under a directory at their real paths) and the host page.  Every value comes from the
typed settings or a host's validated facts, and every value written into a file is checked
once more as it is rendered: a control character (a newline above all), a quote or a
backslash stops the rendering, so no setting or host fact can add a line to a config.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..models.host import HOSTNAME_PATTERN
from ..services import InvalidInput
from ..settings import ConfigError, PuppetSettings

HEADER = "Managed by FedoraCloud through Puppet: local changes are overwritten."
_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\]")
STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")


class RenderError(InvalidInput):
    """A value cannot be written safely into a config file; the message says which."""


@dataclass(frozen=True)
class SeedPort:
    """A TCP port (or range) a node opens to the management network."""

    name: str
    first: int
    last: int

    @property
    def iptables(self) -> str:
        """The port as iptables' ``--dport`` takes it."""
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"


#: the seed's ports (oVirt's node wakeup on 7777, libvirt plain and TLS, VNC, migration)
SEED_PORTS = (
    SeedPort("ssh", 22, 22),
    SeedPort("node wakeup", 7777, 7777),
    SeedPort("libvirt tcp", 16509, 16509),
    SeedPort("libvirt tls", 16514, 16514),
    SeedPort("vnc", 5900, 6000),
    SeedPort("migration", 49152, 49216),
)
VNC = SEED_PORTS[4]


_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
NETWORK_SCRIPTS = "/etc/sysconfig/network-scripts"


@dataclass(frozen=True)
class NodeNetwork:
    """A network a node carries: a bridge on one of its interfaces, or on a VLAN of it."""

    name: str
    usage: str
    interface: str
    bridge: str
    cidr: str
    vlan_id: int | None = None

    @property
    def port(self) -> str:
        """The device the bridge is plugged into: the interface, or its VLAN device."""
        return self.interface if self.vlan_id is None else f"{self.interface}.{self.vlan_id}"


def _ifname(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IFNAME.fullmatch(value) or ".." in value:
        raise RenderError(f"refusing to write {str(value)[:60]!r} as {what}: not an interface name")
    return value


@dataclass(frozen=True)
class RenderedFile:
    """One config file: where it goes, what it holds, its mode."""

    path: str
    content: str
    mode: int = 0o644


def _checked(value: Any) -> Any:
    """Jinja2's ``finalize``: refuse any value that could break out of its line or quotes."""
    if isinstance(value, str) and _UNSAFE.search(value):
        raise RenderError(
            f"refusing to write {value[:60]!r} into a config file:"
            " it holds a control character, a quote or a backslash"
        )
    return value


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("fedoracloud.puppet", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - config files, not HTML; values are checked by _checked
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_checked,
)


def check_certname(certname: str) -> str:
    """A certname or node host name, lowercased; RenderError if it is not a host name."""
    name = (certname or "").strip().lower()
    if not _HOSTNAME.fullmatch(name):
        raise RenderError(f"not a host name: {certname[:80]!r}", {"field": "certname"})
    return name


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class ConfigRenderer:
    """Renders node, UI box and collectd server configs from the Puppet settings."""

    def __init__(self, settings: PuppetSettings) -> None:
        self.settings = settings

    def _render(self, template: str, **values: Any) -> str:
        return _ENVIRONMENT.get_template(template).render(header=HEADER, **values)

    def _required(self, value: str, key: str, what: str) -> str:
        if not value:
            raise ConfigError(f"setting {key}: required to render {what}")
        return value

    def _management_network(self) -> str:
        network = self._required(
            self.settings.management_network, "fedoracloud.management_network", "node configs"
        )
        if ipaddress.ip_network(network).version != 4:
            raise ConfigError(
                "setting fedoracloud.management_network: the node firewall is IPv4;"
                f" give an IPv4 network, not {network}"
            )
        return network

    def _collectd_password(self, what: str) -> str:
        return self._required(
            self.settings.collectd_password, "fedoracloud.collectd.password", what
        )

    def node_values(self, hostname: str) -> dict[str, Any]:
        """The values a node's configs are made of (the ENC passes them on too)."""
        s = self.settings
        console = s.console_proxy_address
        if console and ipaddress.ip_address(console).version != 4:
            raise ConfigError(
                "setting fedoracloud.console_proxy.address: the node firewall is IPv4;"
                f" give an IPv4 address, not {console}"
            )
        return {
            "hostname": check_certname(hostname),
            "server": s.server_name,
            "collectd_server": s.collectd_server,
            "collectd_port": s.collectd_port,
            "qpid_broker": s.qpid_broker,
            "qpid_port": s.qpid_port,
            "management_network": self._management_network(),
            "console_proxy": console,
            "ports": {p.name.replace(" ", "_"): p.iptables for p in SEED_PORTS},
            "libvirt_tls_port": s.libvirt_tls_port,
            "tls_ca_file": s.libvirt_ca_file,
            "tls_cert_file": s.libvirt_cert_file,
            "tls_key_file": s.libvirt_key_file,
            "tls_allowed_dn": s.libvirt_client_dn,
        }

    def network_files(self, networks: Iterable[NodeNetwork]) -> list[RenderedFile]:
        """Fedora's ifcfg files for the bridges (and VLAN devices under them) of the networks
        a node carries: the port device joins the bridge; management and storage bridges
        take their address by DHCP, guest bridges have none.  Two networks wanting one
        device are refused."""
        files: dict[str, RenderedFile] = {}
        for network in networks:
            port = _ifname(network.port, f"network {network.name}'s port device")
            bridge = _ifname(network.bridge, f"network {network.name}'s bridge")
            what = f"network {network.name} ({network.usage}, {network.cidr})"
            port_settings = [("BOOTPROTO", "none"), ("BRIDGE", bridge)]
            if network.vlan_id is not None:
                port_settings.insert(0, ("VLAN", "yes"))
            bridge_settings = [
                ("TYPE", "Bridge"),
                ("BOOTPROTO", "none" if network.usage == "guest" else "dhcp"),
                ("DELAY", "0"),
                ("STP", "off"),
            ]
            for device, role, settings in (
                (port, f"the port of bridge {bridge}", port_settings),
                (bridge, "its bridge", bridge_settings),
            ):
                path = f"{NETWORK_SCRIPTS}/ifcfg-{device}"
                if path in files:
                    raise RenderError(
                        f"two networks want device {device} on this node; give {network.name}"
                        " another interface, VLAN or bridge"
                    )
                content = self._render(
                    "ifcfg.j2", device=device, what=f"{what}: {role}", settings=settings
                )
                files[path] = RenderedFile(path, content)
        return list(files.values())

    def node_files(self, hostname: str, networks: Iterable[NodeNetwork] = ()) -> list[RenderedFile]:
        """collectd.conf, libvirt-qpid, iptables and libvirtd.conf for one node, and the
        ifcfg files of the networks it carries."""
        s = self.settings
        values = self.node_values(hostname)
        collectd = self._render(
            "collectd.conf.j2",
            hostname=values["hostname"],
            libvirt_uri=s.collectd_libvirt_uri,
            collectd_server=s.collectd_server,
            collectd_port=s.collectd_port,
            username=s.collectd_username,
            password=self._collectd_password("node configs"),
        )
        qpid = self._render("libvirt-qpid.j2", broker=s.qpid_broker, port=s.qpid_port)
        iptables = self._render(
            "iptables.j2",
            hostname=values["hostname"],
            management_network=values["management_network"],
            console_proxy=values["console_proxy"],
            ports=SEED_PORTS,
            vnc=VNC,
        )
        libvirtd = self._render(
            "libvirtd.conf.j2",
            hostname=values["hostname"],
            tls_port=s.libvirt_tls_port,
            ca_file=s.libvirt_ca_file,
            cert_file=s.libvirt_cert_file,
            key_file=s.libvirt_key_file,
            client_dn=s.libvirt_client_dn,
        )
        return [
            RenderedFile("/etc/collectd.conf", collectd, 0o600),
            RenderedFile("/etc/sysconfig/libvirt-qpid", qpid),
            RenderedFile("/etc/sysconfig/iptables", iptables, 0o600),
            RenderedFile("/etc/libvirt/libvirtd.conf", libvirtd),
            *self.network_files(networks),
        ]

    def web_files(self) -> list[RenderedFile]:
        """The httpd conf.d file of a UI box."""
        s = self.settings
        console_host = _url_host(s.console_proxy_address or "127.0.0.1")
        httpd = self._render(
            "httpd.conf.j2",
            server_name=s.server_name,
            tls_cert=s.web_tls_cert,
            tls_key=s.web_tls_key,
            static_dir=(s.web_static_dir or STATIC_DIR).rstrip("/"),
            app_url=s.web_app_url.rstrip("/") + "/",
            console_url=f"ws://{console_host}:{s.console_proxy_port}/",
        )
        return [RenderedFile("/etc/httpd/conf.d/fedoracloud.conf", httpd)]

    def balancer_files(self, retry: int = 5) -> list[RenderedFile]:
        """The httpd conf.d file of the load balancer: TLS in front of the app instances of
        ``fedoracloud.web.backends`` (mod_proxy_balancer); an instance that refuses
        connections is skipped and tried again after ``retry`` seconds."""
        s = self.settings
        if not s.web_backends:
            raise ConfigError(
                "setting fedoracloud.web.backends: required to render the load balancer"
                " (the app instances, e.g. http://ui01.example.org:6543 http://ui02...)"
            )
        console_host = _url_host(s.console_proxy_address or "127.0.0.1")
        httpd = self._render(
            "httpd-balancer.conf.j2",
            server_name=s.server_name,
            tls_cert=s.web_tls_cert,
            tls_key=s.web_tls_key,
            backends=list(s.web_backends),
            retry=int(retry),
            http_port=s.web_http_port,
            https_port=s.web_https_port,
            console_url=f"ws://{console_host}:{s.console_proxy_port}/",
        )
        return [RenderedFile("/etc/httpd/conf.d/fedoracloud-balancer.conf", httpd)]

    def collectd_server_files(self) -> list[RenderedFile]:
        """collectd.conf of the collectd server and the AuthFile its nodes sign with."""
        s = self.settings
        password = self._collectd_password("the collectd server config")
        hostname = check_certname(s.collectd_server_certname or s.collectd_server)
        conf = self._render(
            "collectd-server.conf.j2",
            hostname=hostname,
            listen=s.collectd_listen,
            port=s.collectd_port,
            auth_file=s.collectd_auth_file,
            data_dir=s.collectd_data_dir,
        )
        passwd = self._render("collectd.passwd.j2", username=s.collectd_username, password=password)
        return [
            RenderedFile("/etc/collectd.conf", conf, 0o644),
            RenderedFile(s.collectd_auth_file, passwd, 0o600),
        ]


def write_files(files: list[RenderedFile], out_dir: str) -> list[str]:
    """Write each file under ``out_dir`` at its real path; return the paths written."""
    root = Path(out_dir).resolve()
    written = []
    for rendered in files:
        target = (root / rendered.path.lstrip("/")).resolve()
        if root not in target.parents:
            raise RenderError(f"{rendered.path} would be written outside {out_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, rendered.mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(rendered.content)
        os.chmod(tmp, rendered.mode)
        os.replace(tmp, target)
        written.append(str(target))
    return written
