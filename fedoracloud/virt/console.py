"""A running domain's VNC display, read from libvirt's live domain XML.

With ``autoport='yes'`` QEMU picks the port when the domain starts, so only the live XML
of a running domain says where its display is (``port='-1'`` in the persistent config).
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

from .connection import VirtError
from .hypervisor import Hypervisor

#: listen addresses that mean "every address of the host"
WILDCARDS = ("0.0.0.0", "::")  # noqa: S104


class NoDisplay(VirtError):
    """The domain has no VNC display one can reach (not running, none defined …)."""


@dataclass(frozen=True)
class VncDisplay:
    """Where a domain's VNC server listens on its host."""

    listen: str
    port: int


def parse_vnc_display(xml: str) -> VncDisplay:
    """The VNC display of a domain's live XML; NoDisplay if it has none with a port."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - XML from libvirt
    except ET.ParseError as exc:
        raise NoDisplay(f"not domain XML: {exc}") from None
    vnc = root.find("./devices/graphics[@type='vnc']")
    if vnc is None:
        raise NoDisplay("the domain has no VNC display")
    if vnc.find("listen[@type='socket']") is not None or vnc.get("socket"):
        raise NoDisplay("the domain's VNC display listens on a UNIX socket, not on TCP")
    port = vnc.get("port", "-1")
    if not port.isdecimal() or not 0 < int(port) < 65536:
        raise NoDisplay("the domain's VNC display has no port yet (is the domain running?)")
    listen_el = vnc.find("listen[@type='address']")
    listen = listen_el.get("address") if listen_el is not None else None
    return VncDisplay(listen=listen or vnc.get("listen") or "127.0.0.1", port=int(port))


def display_address(uri: str, display: VncDisplay, host_address: str | None = None) -> str:
    """The address a console proxy connects to for a display of the host behind ``uri``.

    VNC listening on every address: the host's management address when known (the nodes'
    firewall lets VNC in from the console proxy there), else the host of the URI, else
    loopback (this machine's own daemon).  A specific listen address: that address, but
    loopback only for this machine's own daemon."""
    host = urlsplit(uri).hostname
    try:
        listen = ipaddress.ip_address(display.listen)
    except ValueError:
        return display.listen  # a host name libvirt was given
    if str(listen) in WILDCARDS:
        return host_address or host or "127.0.0.1"
    if listen.is_loopback and host:
        raise NoDisplay(
            f"the VNC display listens on {listen} of {host} only; the console proxy cannot"
            " reach it (define the domain with VNC listening on the host's addresses)"
        )
    return str(listen)


def vnc_display(hv: Hypervisor, uuid: str) -> VncDisplay:
    """A running domain's VNC display (raises NoDisplay, NoSuchDomain, HostUnreachable)."""
    return parse_vnc_display(hv.xml(uuid))
