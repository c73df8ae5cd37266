"""Domain XML: built and parsed with ElementTree, never by string formatting.

A :class:`DomainSpec` says what a VM is (name, UUID, vCPUs, memory, boot, disks, NICs,
VNC, serial console).  :func:`build_domain_xml` validates it and turns it into the XML
libvirt defines; :func:`parse_domain_xml` reads libvirt's XML back into a spec.  Every
name, UUID, MAC, path and address is checked before it gets near the XML, and a bad one
raises :class:`InvalidDomainSpec` with a message a user can act on.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Container
from dataclasses import dataclass, field, replace

from .connection import VirtError

#: a domain name: what the VM table allows too (models.vm.VM_NAME_PATTERN)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: the prefix of every MAC FedoraCloud generates (QEMU/KVM's locally administered range)
MAC_PREFIX = "52:54:00"
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_PATH = re.compile(r"/[A-Za-z0-9._/+@:,=~-]*")
_IFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TARGET = re.compile(r"(?:vd|sd|hd)[a-z]{1,2}")
_VOLUME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,254}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*")
VIRT_TYPES = ("kvm", "qemu", "test")
BOOT_DEVICES = ("hd", "network", "cdrom")
DISK_KINDS = ("file", "block", "network")
DISK_DEVICES = ("disk", "cdrom")
DISK_BUSES = ("virtio", "sata", "scsi", "ide")
DISK_FORMATS = ("raw", "qcow2")
NETWORK_PROTOCOLS = ("iscsi", "nbd", "rbd", "gluster")
NIC_MODELS = ("virtio", "e1000", "rtl8139")
MAX_VCPUS = 512
MAX_MEMORY_MIB = 16 * 1024 * 1024  # 16 TiB: beyond any host of this cloud


class InvalidDomainSpec(VirtError):
    """A VM description breaks a rule (a name, MAC, path, size); nothing was defined."""


@dataclass(frozen=True)
class DiskSpec:
    """One disk: a file or block device on the host, or a network volume (iSCSI LUN …)."""

    target: str
    source: str
    kind: str = "file"
    device: str = "disk"
    bus: str = "virtio"
    format: str = "raw"
    readonly: bool = False
    #: network disks only: protocol (iscsi, nbd, rbd, gluster), server and port
    protocol: str | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class NicSpec:
    """One NIC: on a host bridge (``bridge``) or on a libvirt network (``network``)."""

    mac: str
    bridge: str | None = None
    network: str | None = None
    model: str = "virtio"


@dataclass(frozen=True)
class GraphicsSpec:
    """VNC graphics with an automatically chosen port, listening on one address."""

    listen: str = "127.0.0.1"


@dataclass(frozen=True)
class SerialSpec:
    """A serial console on a pty (what ``virsh console`` attaches to), optionally also
    written to a log file on the host (tests read the guest's output there)."""

    log_path: str | None = None


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel and initrd from host paths with a command line (tests, installers)."""

    kernel: str
    initrd: str | None = None
    cmdline: str = ""


@dataclass(frozen=True)
class DomainSpec:
    """Everything FedoraCloud decides about a domain."""

    name: str
    vcpus: int
    memory_mib: int
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    virt_type: str = "kvm"
    arch: str = "x86_64"
    boot: tuple[str, ...] = ("hd",)
    direct_boot: DirectBoot | None = None
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    graphics: GraphicsSpec | None = None
    serial: SerialSpec | None = field(default_factory=SerialSpec)


def validate_name(name: str) -> str:
    """Return a valid domain name or raise: 1 to 64 characters of A-Z a-z 0-9 . _ -,
    starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise InvalidDomainSpec(
            f"invalid VM name {shown!r}: use 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def validate_uuid(value: str) -> str:
    """Return the UUID in its canonical lower-case form, or raise."""
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        raise InvalidDomainSpec(f"invalid UUID {value!r}") from None


def validate_mac(mac: str) -> str:
    """Return the MAC in lower case if it is a unicast MAC written aa:bb:cc:dd:ee:ff."""
    value = mac.lower() if isinstance(mac, str) else ""
    if not _MAC.fullmatch(value):
        raise InvalidDomainSpec(f"invalid MAC address {mac!r}: write it as 52:54:00:12:34:56")
    if int(value[:2], 16) & 1:
        raise InvalidDomainSpec(f"invalid MAC address {mac!r}: a multicast address")
    return value


def new_mac(taken: Container[str] = (), attempts: int = 1000) -> str:
    """A random MAC in 52:54:00:xx:xx:xx not in ``taken`` (the caller passes the MACs the
    database already holds; the database's unique index is the final word)."""
    for _ in range(attempts):
        tail = secrets.token_bytes(3)
        mac = MAC_PREFIX + "".join(f":{b:02x}" for b in tail)
        if mac not in taken:
            return mac
    raise InvalidDomainSpec("no free MAC address left in 52:54:00:xx:xx:xx")


def validate_path(path: str, what: str = "path") -> str:
    """Return an absolute, normalised host path of safe characters (no '..'), or raise."""
    if (
        not isinstance(path, str)
        or not _PATH.fullmatch(path)
        or len(path) > 4096
        or any(part in (".", "..") for part in path.split("/"))
        or "//" in path
    ):
        raise InvalidDomainSpec(
            f"invalid {what} {path!r}: an absolute path of letters, digits and ._/+@:,=~-"
            " without '..'"
        )
    return path


def validate_address(address: str, what: str = "address") -> str:
    """Return an IPv4/IPv6 address in canonical form, or raise."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise InvalidDomainSpec(f"invalid {what} {address!r}: an IPv4 or IPv6 address") from None


def _check_disk(disk: DiskSpec) -> None:
    if not _TARGET.fullmatch(disk.target or ""):
        raise InvalidDomainSpec(f"invalid disk target {disk.target!r}: vda, vdb, sda …")
    for value, allowed, what in (
        (disk.kind, DISK_KINDS, "disk type"),
        (disk.device, DISK_DEVICES, "disk device"),
        (disk.bus, DISK_BUSES, "disk bus"),
        (disk.format, DISK_FORMATS, "disk format"),
    ):
        if value not in allowed:
            raise InvalidDomainSpec(f"invalid {what} {value!r}: one of {', '.join(allowed)}")
    if disk.kind == "network":
        if disk.protocol not in NETWORK_PROTOCOLS:
            raise InvalidDomainSpec(
                f"invalid disk protocol {disk.protocol!r}: one of {', '.join(NETWORK_PROTOCOLS)}"
            )
        if not _VOLUME.fullmatch(disk.source or "") or ".." in disk.source:
            raise InvalidDomainSpec(f"invalid network volume name {disk.source!r}")
        if not disk.host or not _HOSTNAME.fullmatch(disk.host):
            try:
                validate_address(disk.host or "", "disk server")
            except InvalidDomainSpec:
                raise InvalidDomainSpec(f"invalid disk server {disk.host!r}") from None
        if disk.port is not None and not 0 < disk.port < 65536:
            raise InvalidDomainSpec(f"invalid disk server port {disk.port!r}")
        return
    validate_path(disk.source, f"{disk.target} disk path")
    if disk.kind == "block" and not disk.source.startswith("/dev/"):
        raise InvalidDomainSpec(f"invalid block device {disk.source!r}: must be under /dev/")


def validate_spec(spec: DomainSpec) -> DomainSpec:
    """Check every field of a spec; return it in canonical form (UUID and MACs in lower
    case, disks in target order), or raise InvalidDomainSpec."""
    validate_name(spec.name)
    if spec.virt_type not in VIRT_TYPES:
        raise InvalidDomainSpec(f"invalid domain type {spec.virt_type!r}: kvm or qemu")
    if spec.arch not in ("x86_64", "i686", "aarch64", "ppc64le", "s390x"):
        raise InvalidDomainSpec(f"unsupported architecture {spec.arch!r}")
    if (
        not isinstance(spec.vcpus, int)
        or isinstance(spec.vcpus, bool)
        or not 1 <= spec.vcpus <= MAX_VCPUS
    ):
        raise InvalidDomainSpec(f"invalid vCPU count {spec.vcpus!r}: 1 to {MAX_VCPUS}")
    if (
        not isinstance(spec.memory_mib, int)
        or isinstance(spec.memory_mib, bool)
        or not 16 <= spec.memory_mib <= MAX_MEMORY_MIB
    ):
        raise InvalidDomainSpec(
            f"invalid memory {spec.memory_mib!r} MiB:"
            f" 16 MiB to {MAX_MEMORY_MIB // 1024 // 1024} TiB"
        )
    if not spec.boot and spec.direct_boot is None:
        raise InvalidDomainSpec("a VM needs a boot device (hd, network, cdrom) or a kernel")
    for dev in spec.boot:
        if dev not in BOOT_DEVICES:
            raise InvalidDomainSpec(f"invalid boot device {dev!r}: one of hd, network, cdrom")
    if len(set(spec.boot)) != len(spec.boot):
        raise InvalidDomainSpec("a boot device is listed twice")
    if spec.direct_boot is not None:
        validate_path(spec.direct_boot.kernel, "kernel path")
        if spec.direct_boot.initrd is not None:
            validate_path(spec.direct_boot.initrd, "initrd path")
        cmdline = spec.direct_boot.cmdline
        if len(cmdline) > 2048 or any(not ch.isprintable() for ch in cmdline):
            raise InvalidDomainSpec("invalid kernel command line: printable, at most 2048 chars")
    targets = [d.target for d in spec.disks]
    if len(set(targets)) != len(targets):
        raise InvalidDomainSpec("two disks have the same target")
    for disk in spec.disks:
        _check_disk(disk)
    nics = []
    for nic in spec.nics:
        mac = validate_mac(nic.mac)
        if (nic.bridge is None) == (nic.network is None):
            raise InvalidDomainSpec(f"NIC {mac}: give either a bridge or a network")
        if nic.bridge is not None and not _IFACE.fullmatch(nic.bridge):
            raise InvalidDomainSpec(f"invalid bridge name {nic.bridge!r}")
        if nic.network is not None and not _NETWORK.fullmatch(nic.network):
            raise InvalidDomainSpec(f"invalid network name {nic.network!r}")
        if nic.model not in NIC_MODELS:
            raise InvalidDomainSpec(f"invalid NIC model {nic.model!r}: one of virtio, e1000")
        nics.append(replace(nic, mac=mac))
    macs = [n.mac for n in nics]
    if len(set(macs)) != len(macs):
        raise InvalidDomainSpec("two NICs have the same MAC address")
    if spec.graphics is not None:
        validate_address(spec.graphics.listen, "VNC listen address")
    if spec.serial is not None and spec.serial.log_path is not None:
        validate_path(spec.serial.log_path, "serial log path")
    disks = tuple(sorted(spec.disks, key=lambda d: d.target))  # libvirt's order is its own
    return replace(spec, uuid=validate_uuid(spec.uuid), disks=disks, nics=tuple(nics))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _chardev(devices: ET.Element, tag: str, serial: SerialSpec, target_type: str | None) -> None:
    dev = _sub(devices, tag, type="pty")
    if serial.log_path:
        _sub(dev, "log", file=serial.log_path, append="on")
    target = _sub(dev, "target", port="0")
    if target_type:
        target.set("type", target_type)


def build_domain_xml(spec: DomainSpec) -> str:
    """The libvirt domain XML for a spec (validated first; raises InvalidDomainSpec)."""
    spec = validate_spec(spec)
    root = ET.Element("domain", type=spec.virt_type)
    _sub(root, "name", spec.name)
    _sub(root, "uuid", spec.uuid)
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(root, "vcpu", str(spec.vcpus))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch=spec.arch)
    if spec.direct_boot is not None:
        _sub(os_el, "kernel", spec.direct_boot.kernel)
        if spec.direct_boot.initrd:
            _sub(os_el, "initrd", spec.direct_boot.initrd)
        if spec.direct_boot.cmdline:
            _sub(os_el, "cmdline", spec.direct_boot.cmdline)
    for dev in spec.boot:
        _sub(os_el, "boot", dev=dev)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    for disk in spec.disks:
        disk_el = _sub(devices, "disk", type=disk.kind, device=disk.device)
        _sub(disk_el, "driver", name="qemu", type=disk.format)
        if disk.kind == "network":
            source = _sub(disk_el, "source", protocol=disk.protocol or "", name=disk.source)
            host = _sub(source, "host", name=disk.host or "")
            if disk.port is not None:
                host.set("port", str(disk.port))
        else:
            _sub(disk_el, "source", **{"file" if disk.kind == "file" else "dev": disk.source})
        _sub(disk_el, "target", dev=disk.target, bus=disk.bus)
        if disk.readonly:
            _sub(disk_el, "readonly")
    for nic in spec.nics:
        if nic.bridge is not None:
            nic_el = _sub(devices, "interface", type="bridge")
            _sub(nic_el, "mac", address=nic.mac)
            _sub(nic_el, "source", bridge=nic.bridge)
        else:
            nic_el = _sub(devices, "interface", type="network")
            _sub(nic_el, "mac", address=nic.mac)
            _sub(nic_el, "source", network=nic.network or "")
        _sub(nic_el, "model", type=nic.model)
    if spec.serial is not None:
        _chardev(devices, "serial", spec.serial, None)
        _chardev(devices, "console", spec.serial, "serial")
    if spec.graphics is not None:
        graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes")
        graphics.set("listen", spec.graphics.listen)
        _sub(graphics, "listen", type="address", address=spec.graphics.listen)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}


def _number(text: str | None) -> int | None:
    """A whole number written in the XML (ASCII digits, at most 18), else None."""
    value = (text or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _memory_mib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    unit = _UNITS.get((element.get("unit") or "KiB").lower(), 1024)
    amount = _number(element.text)
    if amount is None:
        raise InvalidDomainSpec(
            f"not domain XML: the memory is not a whole number: {(element.text or '')[:20]!r}"
        )
    return amount * unit // 1024**2


def _parse_disk(disk: ET.Element) -> DiskSpec | None:
    kind = disk.get("type", "file")
    source = disk.find("source")
    target = disk.find("target")
    if target is None or kind not in DISK_KINDS:
        return None
    driver = disk.find("driver")
    common = {
        "target": target.get("dev", ""),
        "kind": kind,
        "device": disk.get("device", "disk"),
        "bus": target.get("bus", "virtio"),
        "format": driver.get("type", "raw") if driver is not None else "raw",
        "readonly": disk.find("readonly") is not None,
    }
    if kind == "network":
        host = source.find("host") if source is not None else None
        port = host.get("port") if host is not None else None
        return DiskSpec(
            source=source.get("name", "") if source is not None else "",
            protocol=source.get("protocol") if source is not None else None,
            host=host.get("name") if host is not None else None,
            port=_number(port),
            **common,  # type: ignore[arg-type]
        )
    path = ""
    if source is not None:
        path = source.get("file" if kind == "file" else "dev", "")
    return DiskSpec(source=path, **common)  # type: ignore[arg-type]


def parse_domain_xml(xml: str) -> DomainSpec:
    """Read a domain's XML (ours or libvirt's, with its added defaults) into a spec."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - XML from libvirt or from build_domain_xml
    except ET.ParseError as exc:
        raise InvalidDomainSpec(f"not domain XML: {exc}") from None
    if root.tag != "domain":
        raise InvalidDomainSpec(f"not domain XML: the root element is <{root.tag}>")
    os_el = root.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    direct_boot = None
    boot: tuple[str, ...] = ()
    if os_el is not None:
        boot = tuple(b.get("dev", "") for b in os_el.findall("boot"))
        kernel = os_el.findtext("kernel")
        if kernel:
            direct_boot = DirectBoot(
                kernel=kernel,
                initrd=os_el.findtext("initrd"),
                cmdline=os_el.findtext("cmdline") or "",
            )
    parsed = (_parse_disk(el) for el in root.findall("./devices/disk"))
    disks = tuple(sorted((d for d in parsed if d is not None), key=lambda d: d.target))
    nics = []
    for iface in root.findall("./devices/interface"):
        mac = iface.find("mac")
        source = iface.find("source")
        model = iface.find("model")
        nics.append(
            NicSpec(
                mac=(mac.get("address", "") if mac is not None else "").lower(),
                bridge=source.get("bridge") if source is not None else None,
                network=source.get("network") if source is not None else None,
                model=model.get("type", "virtio") if model is not None else "virtio",
            )
        )
    graphics = None
    vnc = root.find("./devices/graphics[@type='vnc']")
    if vnc is not None:
        listen = vnc.find("listen[@type='address']")
        address = listen.get("address") if listen is not None else vnc.get("listen")
        graphics = GraphicsSpec(listen=address or "127.0.0.1")
    serial = None
    serial_el = root.find("./devices/serial")
    if serial_el is not None:
        log = serial_el.find("log")
        serial = SerialSpec(log_path=log.get("file") if log is not None else None)
    return DomainSpec(
        name=root.findtext("name") or "",
        uuid=root.findtext("uuid") or "",
        vcpus=_number(root.findtext("vcpu")) or 1,
        memory_mib=_memory_mib(root.find("memory")),
        virt_type=root.get("type", "kvm"),
        arch=type_el.get("arch", "x86_64") if type_el is not None else "x86_64",
        boot=boot,
        direct_boot=direct_boot,
        disks=disks,
        nics=tuple(nics),
        graphics=graphics,
        serial=serial,
    )
