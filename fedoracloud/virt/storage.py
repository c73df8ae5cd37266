"""Storage pools and volumes on a host's libvirt: XML built with ElementTree, every name,
path, address and IQN checked first.

A :class:`PoolSpec` says what a storage pool is (``dir``, ``netfs``, ``iscsi``,
``iscsi-direct``, ``logical``); :func:`build_pool_xml` validates it and gives the XML
libvirt defines.  A :class:`VolumeSpec` does the same for a volume
(:func:`build_volume_xml`).  :class:`StorageHost` defines, starts, refreshes, stops and
forgets pools on one host and creates, resizes and deletes their volumes; what a pool
holds (capacity, allocation, volumes) always comes from libvirt.  A bad spec raises
:class:`InvalidStorageSpec`; libvirt's refusals become :class:`~.connection.VirtError`.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import libvirt

from .connection import (
    ConnectionPool,
    HostUnreachable,
    VirtError,
    default_pool,
    is_connection_error,
)
from .domain import validate_path

T = TypeVar("T")

POOL_KINDS = ("dir", "netfs", "iscsi", "iscsi-direct", "logical")
VOLUME_FORMATS = ("raw", "qcow2")
#: the libvirt pool state names, by libvirt's number
POOL_STATES = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: "inactive",
    libvirt.VIR_STORAGE_POOL_BUILDING: "building",
    libvirt.VIR_STORAGE_POOL_RUNNING: "active",
    libvirt.VIR_STORAGE_POOL_DEGRADED: "degraded",
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: "inaccessible",
}
ISCSI_PORT = 3260
LUN_MAX = 16383  # SAM flat addressing: what every target here can number
IQN_MAX = 223  # RFC 3720 §3.2.6.1: at most 223 bytes
VOLUME_MAX_BYTES = 2**50  # 1 PiB: beyond any disk of this cloud

_POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
#: RFC 3720 §3.2.6.3.1: iqn.YYYY-MM.<reversed domain>[:<unique name>]
_IQN = re.compile(
    rf"iqn\.(?P<year>[0-9]{{4}})-(?P<month>[0-9]{{2}})\.{_LABEL}(?:\.{_LABEL})*"
    r"(?::[a-z0-9.:\-]{1,200})?"
)
#: RFC 3720 §3.2.6.3.2: eui. and 16 hex digits (an IEEE EUI-64)
_EUI = re.compile(r"eui\.[0-9A-F]{16}")
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)
#: LVM2 volume group names: letters, digits and + _ . -, not starting with '-'
_VG = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")


class InvalidStorageSpec(VirtError):
    """A storage pool or volume description breaks a rule; nothing was defined."""


# -- validators (the services use them on user input too) -----------------------------------


def validate_pool_name(name: str) -> str:
    """A storage pool name: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit."""
    if not isinstance(name, str) or not _POOL_NAME.fullmatch(name):
        raise InvalidStorageSpec(
            f"invalid storage pool name {name!r}: 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def validate_volume_name(name: str) -> str:
    """A volume name: 1 to 255 of A-Z a-z 0-9 . _ -, starting with a letter or digit."""
    if not isinstance(name, str) or not _VOLUME_NAME.fullmatch(name):
        raise InvalidStorageSpec(
            f"invalid volume name {name!r}: 1 to 255 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def validate_iqn(name: str, what: str = "target IQN") -> str:
    """An iSCSI name as RFC 3720 has it: ``iqn.YYYY-MM.reversed.domain[:name]`` (lower
    case, a real month) or ``eui.`` and 16 hex digits; at most 223 bytes."""
    if not isinstance(name, str) or len(name.encode()) > IQN_MAX:
        raise InvalidStorageSpec(f"invalid {what}: at most {IQN_MAX} bytes")
    if _EUI.fullmatch(name):
        return name
    found = _IQN.fullmatch(name)
    if found is None or not 1 <= int(found["month"]) <= 12:
        raise InvalidStorageSpec(
            f"invalid {what} {name!r}: iqn.YYYY-MM.reversed.domain[:identifier] in lower case"
            " (iqn.2009-01.org.fedoraproject:storage01.lun1) or eui. and 16 hex digits"
        )
    return name


def validate_host(address: str, what: str = "portal address") -> str:
    """An IPv4/IPv6 address (canonical form) or a DNS host name."""
    if isinstance(address, str):
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            if _HOSTNAME.fullmatch(address) and not address.replace(".", "").isdigit():
                return address.lower()
    raise InvalidStorageSpec(f"invalid {what} {address!r}: an IP address or a host name")


def validate_port(port: int, what: str = "port") -> int:
    """A TCP port, 1 to 65535."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidStorageSpec(f"invalid {what} {port!r}: 1 to 65535")
    return port


def validate_lun(lun: int) -> int:
    """A LUN number, 0 to 16383."""
    if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= LUN_MAX:
        raise InvalidStorageSpec(f"invalid LUN {lun!r}: 0 to {LUN_MAX}")
    return lun


def validate_volume_group(name: str) -> str:
    """An LVM volume group name (letters, digits, + _ . -; not '.', '..' or '-…')."""
    if not isinstance(name, str) or not _VG.fullmatch(name) or name in (".", ".."):
        raise InvalidStorageSpec(
            f"invalid volume group {name!r}: up to 127 letters, digits and + _ . -,"
            " not starting with '-'"
        )
    return name


def validate_capacity(capacity: int) -> int:
    """A volume size in bytes: more than 0, at most 1 PiB."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise InvalidStorageSpec(f"invalid volume size {capacity!r}: a whole number of bytes")
    if not 0 < capacity <= VOLUME_MAX_BYTES:
        raise InvalidStorageSpec(f"invalid volume size {capacity}: 1 byte to 1 PiB")
    return capacity


def _storage_path(path: str, what: str) -> str:
    try:
        return validate_path(path, what)
    except VirtError as exc:
        raise InvalidStorageSpec(str(exc)) from None


def lun_device_path(host: str, port: int, iqn: str, lun: int) -> str:
    """Where the kernel initiator shows an iSCSI LUN on a host (``/dev/disk/by-path``)."""
    return f"/dev/disk/by-path/ip-{host}:{port}-iscsi-{iqn}-lun-{lun}"


# -- specs and XML --------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolSpec:
    """Everything FedoraCloud decides about a storage pool on a host.

    - ``dir``: ``target_path``.
    - ``netfs``: ``host`` (the NFS server), ``source_path`` (its export), ``target_path``
      (the mount point).
    - ``iscsi``: ``host`` and ``port`` (the portal), ``target_iqn``; the kernel initiator
      shows the LUNs under ``target_path`` (/dev/disk/by-path).
    - ``iscsi-direct``: the portal, ``target_iqn`` and ``initiator_iqn`` (libiscsi, in
      libvirt itself: no kernel initiator).
    - ``logical``: ``volume_group`` on the physical volume ``source_path`` (a LUN's device).
    """

    name: str
    kind: str
    host: str | None = None
    port: int | None = None
    target_iqn: str | None = None
    initiator_iqn: str | None = None
    source_path: str | None = None
    target_path: str | None = None
    volume_group: str | None = None


def validate_pool_spec(spec: PoolSpec) -> PoolSpec:
    """Check every field a pool of this kind needs (and refuse what it cannot use)."""
    validate_pool_name(spec.name)
    if spec.kind not in POOL_KINDS:
        raise InvalidStorageSpec(
            f"invalid storage pool kind {spec.kind!r}: one of {', '.join(POOL_KINDS)}"
        )
    if spec.kind in ("iscsi", "iscsi-direct"):
        if not spec.host or not spec.target_iqn:
            raise InvalidStorageSpec(f"an {spec.kind} pool needs a portal address and a target IQN")
        validate_host(spec.host)
        validate_port(spec.port if spec.port is not None else ISCSI_PORT)
        validate_iqn(spec.target_iqn)
        if spec.kind == "iscsi-direct" and not spec.initiator_iqn:
            raise InvalidStorageSpec("an iscsi-direct pool needs an initiator IQN")
        if spec.initiator_iqn:
            validate_iqn(spec.initiator_iqn, "initiator IQN")
        if spec.kind == "iscsi":
            _storage_path(spec.target_path or "/dev/disk/by-path", "device directory")
    elif spec.kind == "netfs":
        if not spec.host or not spec.source_path or not spec.target_path:
            raise InvalidStorageSpec("an NFS pool needs a server, an export path and a mount point")
        validate_host(spec.host, "NFS server")
        _storage_path(spec.source_path, "NFS export path")
        _storage_path(spec.target_path, "mount point")
    elif spec.kind == "dir":
        if not spec.target_path:
            raise InvalidStorageSpec("a directory pool needs a path")
        _storage_path(spec.target_path, "directory")
    elif spec.kind == "logical":
        if not spec.volume_group or not spec.source_path:
            raise InvalidStorageSpec(
                "an LVM pool needs a volume group and the device of its physical volume"
            )
        validate_volume_group(spec.volume_group)
        _storage_path(spec.source_path, "physical volume device")
        if not spec.source_path.startswith("/dev/"):
            raise InvalidStorageSpec(
                f"invalid physical volume device {spec.source_path!r}: must be under /dev/"
            )
    return spec


def build_pool_xml(spec: PoolSpec) -> str:
    """The libvirt storage pool XML for a spec (validated first)."""
    spec = validate_pool_spec(spec)
    root = ET.Element("pool", type=spec.kind)
    ET.SubElement(root, "name").text = spec.name
    if spec.kind in ("iscsi", "iscsi-direct"):
        source = ET.SubElement(root, "source")
        ET.SubElement(
            source,
            "host",
            name=validate_host(spec.host or ""),
            port=str(spec.port if spec.port is not None else ISCSI_PORT),
        )
        ET.SubElement(source, "device", path=spec.target_iqn or "")
        if spec.initiator_iqn:
            initiator = ET.SubElement(source, "initiator")
            ET.SubElement(initiator, "iqn", name=spec.initiator_iqn)
        if spec.kind == "iscsi":
            target = ET.SubElement(root, "target")
            ET.SubElement(target, "path").text = spec.target_path or "/dev/disk/by-path"
    elif spec.kind == "netfs":
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "host", name=validate_host(spec.host or "", "NFS server"))
        ET.SubElement(source, "dir", path=spec.source_path or "")
        ET.SubElement(source, "format", type="nfs")
        target = ET.SubElement(root, "target")
        ET.SubElement(target, "path").text = spec.target_path
    elif spec.kind == "dir":
        target = ET.SubElement(root, "target")
        ET.SubElement(target, "path").text = spec.target_path
    else:  # logical
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "device", path=spec.source_path or "")
        ET.SubElement(source, "name").text = spec.volume_group
        ET.SubElement(source, "format", type="lvm2")
        target = ET.SubElement(root, "target")
        ET.SubElement(target, "path").text = f"/dev/{spec.volume_group}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class VolumeSpec:
    """A new volume: its name, size in bytes, format (raw or qcow2; ignored by LVM)."""

    name: str
    capacity_bytes: int
    format: str = "raw"
    #: bytes to allocate now (0: sparse, where the pool allows it)
    allocation_bytes: int = 0


def build_volume_xml(spec: VolumeSpec, pool_kind: str = "dir") -> str:
    """The libvirt storage volume XML for a spec (validated first)."""
    validate_volume_name(spec.name)
    validate_capacity(spec.capacity_bytes)
    if spec.format not in VOLUME_FORMATS:
        raise InvalidStorageSpec(
            f"invalid volume format {spec.format!r}: one of {', '.join(VOLUME_FORMATS)}"
        )
    if pool_kind == "logical" and spec.format != "raw":
        raise InvalidStorageSpec("an LVM volume is raw; qcow2 needs a dir or NFS pool")
    if not 0 <= spec.allocation_bytes <= spec.capacity_bytes:
        raise InvalidStorageSpec("the allocation of a volume is 0 to its size")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = spec.name
    ET.SubElement(root, "capacity", unit="bytes").text = str(spec.capacity_bytes)
    ET.SubElement(root, "allocation", unit="bytes").text = str(spec.allocation_bytes)
    target = ET.SubElement(root, "target")
    if pool_kind in ("dir", "netfs"):
        ET.SubElement(target, "format", type=spec.format)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


# -- what libvirt reports ----------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeInfo:
    """One volume as libvirt reports it."""

    name: str
    key: str
    path: str
    capacity_bytes: int
    allocation_bytes: int
    format: str = "raw"


@dataclass(frozen=True)
class PoolInfo:
    """A storage pool as libvirt reports it after a refresh."""

    name: str
    state: str
    capacity_bytes: int
    allocation_bytes: int
    available_bytes: int
    volumes: list[VolumeInfo] = field(default_factory=list)


def _volume_info(volume: libvirt.virStorageVol) -> VolumeInfo:
    _type, capacity, allocation = volume.info()
    fmt = "raw"
    try:
        found = ET.fromstring(volume.XMLDesc(0)).find("target/format")  # noqa: S314
        if found is not None and found.get("type") in VOLUME_FORMATS:
            fmt = str(found.get("type"))
    except ET.ParseError:  # pragma: no cover - libvirt's own XML
        pass
    return VolumeInfo(
        volume.name(), volume.key() or "", volume.path() or "", capacity, allocation, fmt
    )


class StorageHost:
    """One host's storage pools, as the services see them.  Thread-safe; cheap to make."""

    def __init__(self, uri: str, pool: ConnectionPool | None = None) -> None:
        self.connections = pool if pool is not None else default_pool()
        self.uri = uri
        self.connections._entry(uri)  # validates the URI now (raises VirtError)

    def __repr__(self) -> str:
        return f"<StorageHost {self.uri}>"

    def _call(self, what: str, fn: Callable[[libvirt.virConnect], T]) -> T:
        """Run ``fn(conn)``; libvirt errors become VirtError naming ``what`` (HostUnreachable
        when the connection broke, so the task is retried)."""
        conn = self.connections.get(self.uri)
        try:
            return fn(conn)
        except libvirt.libvirtError as exc:
            message = f"{self.uri}: {what}: {exc.get_error_message()}"
            if is_connection_error(exc):
                try:
                    alive = bool(conn.isAlive())
                except libvirt.libvirtError:
                    alive = False
                if not alive:
                    self.connections.drop(self.uri)
                    raise HostUnreachable(message) from exc
            raise VirtError(message) from exc

    @staticmethod
    def _lookup(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool | None:
        try:
            return conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return None
            raise

    def _pool(self, conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
        pool = self._lookup(conn, validate_pool_name(name))
        if pool is None:
            raise VirtError(f"{self.uri}: no storage pool {name!r} on this host")
        return pool

    # -- pools ----------------------------------------------------------------------------

    def define_pool(self, spec: PoolSpec) -> PoolInfo:
        """Define the pool (kept if already defined), build its directory if it needs one,
        start it if it is not running, mark it autostart; idempotent.  The pool's figures
        after a refresh."""
        xml = build_pool_xml(spec)

        def run(conn: libvirt.virConnect) -> PoolInfo:
            pool = self._lookup(conn, spec.name)
            if pool is None:
                pool = conn.storagePoolDefineXML(xml, 0)
            if not pool.isActive():
                if spec.kind in ("dir", "netfs"):
                    _build_quietly(pool)
                pool.create(0)
            try:
                pool.setAutostart(1)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
            return _refreshed(pool)

        return self._call(f"defining storage pool {spec.name}", run)

    def has_pool(self, name: str) -> bool:
        """Whether the pool is defined on this host."""
        return self._call(
            f"looking up storage pool {name}",
            lambda c: self._lookup(c, validate_pool_name(name)) is not None,
        )

    def refresh_pool(self, name: str) -> PoolInfo:
        """Ask libvirt to rescan the pool; its state, figures and volumes."""
        return self._call(
            f"refreshing storage pool {name}", lambda c: _refreshed(self._pool(c, name))
        )

    def undefine_pool(self, name: str) -> None:
        """Stop and forget the pool (its data stays); a pool not defined is fine."""

        def run(conn: libvirt.virConnect) -> None:
            pool = self._lookup(conn, validate_pool_name(name))
            if pool is None:
                return
            if pool.isActive():
                pool.destroy()
            pool.undefine()

        self._call(f"undefining storage pool {name}", run)

    # -- volumes --------------------------------------------------------------------------

    def volumes(self, pool_name: str) -> list[VolumeInfo]:
        """The pool's volumes (after a refresh), by name."""
        return self.refresh_pool(pool_name).volumes

    def create_volume(self, pool_name: str, spec: VolumeSpec, pool_kind: str = "dir") -> VolumeInfo:
        """Make a volume; one of that name already there is returned as it is (idempotent:
        a retried task finds it made)."""
        xml = build_volume_xml(spec, pool_kind)

        def run(conn: libvirt.virConnect) -> VolumeInfo:
            pool = self._pool(conn, pool_name)
            existing = _volume(pool, spec.name)
            if existing is not None:
                return _volume_info(existing)
            return _volume_info(pool.createXML(xml, 0))

        return self._call(f"creating volume {spec.name} in {pool_name}", run)

    def resize_volume(self, pool_name: str, name: str, capacity_bytes: int) -> VolumeInfo:
        """Grow a volume to ``capacity_bytes`` (shrinking would lose data: refused)."""
        validate_volume_name(name)
        validate_capacity(capacity_bytes)

        def run(conn: libvirt.virConnect) -> VolumeInfo:
            volume = _volume(self._pool(conn, pool_name), name)
            if volume is None:
                raise VirtError(f"{self.uri}: no volume {name!r} in storage pool {pool_name}")
            current = volume.info()[1]
            if capacity_bytes < current:
                raise InvalidStorageSpec(
                    f"volume {name} has {current} bytes; shrinking it to {capacity_bytes} would"
                    " lose data"
                )
            if capacity_bytes > current:
                volume.resize(capacity_bytes, 0)
            return _volume_info(volume)

        return self._call(f"resizing volume {name} in {pool_name}", run)

    def delete_volume(self, pool_name: str, name: str) -> bool:
        """Delete a volume and its data; False if it was already gone."""
        validate_volume_name(name)

        def run(conn: libvirt.virConnect) -> bool:
            volume = _volume(self._pool(conn, pool_name), name)
            if volume is None:
                return False
            volume.delete(0)
            return True

        return self._call(f"deleting volume {name} in {pool_name}", run)


def _build_quietly(pool: libvirt.virStoragePool) -> None:
    """Make a dir pool's directory (or an NFS pool's mount point); one there is fine, and a
    driver that cannot build (the test driver) needs none."""
    try:
        pool.build(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            raise


def _volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def _refreshed(pool: libvirt.virStoragePool) -> PoolInfo:
    if pool.isActive():
        pool.refresh(0)
    state, capacity, allocation, available = pool.info()
    volumes = (
        sorted((_volume_info(v) for v in pool.listAllVolumes(0)), key=lambda v: v.name)
        if pool.isActive()
        else []
    )
    return PoolInfo(
        pool.name(), POOL_STATES.get(state, "unknown"), capacity, allocation, available, volumes
    )
