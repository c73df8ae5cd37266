"""Storage: storage servers and their replication, storage pools on the hosts, volumes.

Storage servers (a ``master`` exporting iSCSI, a ``secondary`` it replicates to) and
storage pools (``iscsi``, ``iscsi-direct``, ``logical`` on an iSCSI LUN, ``netfs``,
``dir``) are rows a super admin manages; each pool is used by one or more hardware pools
and is defined, started and refreshed on every available host of those, as tasks.  What
a pool holds — capacity, allocation, free space, its volumes — is written only from a
libvirt refresh, never computed in the database.

Task kinds (registered below): ``storage.pool.define``, ``storage.pool.refresh``,
``storage.volume.create``, ``storage.volume.resize``, ``storage.volume.delete`` and
``storage.server.check`` (can the server's iSCSI portal be reached).

For the VM code (worker side; each is idempotent, so a retried task finds its work done):

- ``StorageService(dbsession).create_volume_for_vm(vm, disk)`` makes the volume of one
  VM disk that asks for a new one (``disk.storage_pool_id`` and ``disk.size_gib`` set,
  no ``path``) in that storage pool, records it and points the disk at it;
  ``create_volumes_for_vm(vm)`` does it for every such disk of a VM.
- ``StorageService(dbsession).delete_volume(volume)`` deletes one volume on libvirt and
  forgets it; ``delete_volumes_of_vm(vm)`` deletes those of a VM's disks (an iSCSI LUN
  is left alone: the storage server owns it) and says what it did.
- ``network_disk_for(dbsession, disk)`` is the domain disk for a LUN of an
  ``iscsi-direct`` pool (qemu's own iSCSI client), None for every other disk.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, false, or_, select, true, update
from sqlalchemy.orm import Session

from ..models import (
    Host,
    HostState,
    Pool,
    PoolKind,
    StoragePool,
    StorageServer,
    StorageVolume,
    Task,
    Vm,
    VmDisk,
)
from ..models.meta import utcnow
from ..models.storage import (
    STORAGE_POOL_KINDS,
    STORAGE_SERVER_ROLES,
    VOLUME_MAKING_KINDS,
    storage_pool_hardware_pools,
)
from ..permissions import Role
from ..virt.connection import ConnectionPool, HostUnreachable, VirtError
from ..virt.domain import DiskSpec, validate_path
from ..virt.storage import (
    ISCSI_PORT,
    InvalidStorageSpec,
    PoolInfo,
    PoolSpec,
    StorageHost,
    VolumeSpec,
    lun_device_path,
    validate_host,
    validate_iqn,
    validate_lun,
    validate_pool_name,
    validate_port,
    validate_volume_group,
    validate_volume_name,
)
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .tasks import RetryableError, TaskService, progress, register

GIB = 2**30
SERVER_CAPACITY_MAX_GIB = 1024 * 1024  # 1 PiB
VOLUME_SIZE_MAX_GIB = 64 * 1024  # what a VM disk may be (services/vms.py agrees)
#: the initiator name a host logs in with when the pool names none
INITIATOR_PREFIX = "iqn.2009-01.org.fedoraproject.cloud"
#: how long a reachability check waits for a storage server's portal
CHECK_TIMEOUT = 3.0
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)

SERVER_FIELDS = frozenset({"hostname", "address", "role", "replicates_to", "capacity_gib"})
POOL_FIELDS = frozenset(
    {
        "name",
        "kind",
        "server",
        "hardware_pools",
        "portal_address",
        "port",
        "target_iqn",
        "initiator_iqn",
        "lun",
        "source_path",
        "target_path",
        "volume_group",
        "parent_pool",
    }
)


# -- input ----------------------------------------------------------------------------------


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: expected text", {"field": key})
    return value.strip()


def _number(body: dict[str, Any], key: str, label: str) -> int | None:
    """A whole number from JSON (int) or a form (digits); None when absent or empty."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{label} must be a whole number", {"field": key})
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value.strip())
    raise InvalidInput(f"{label} must be a whole number", {"field": key})


def _spec_error(exc: InvalidStorageSpec, key: str) -> InvalidInput:
    return InvalidInput(str(exc), {"field": key})


def check_server_hostname(raw: Any) -> str:
    """A storage server's DNS name (lower case, RFC 1123)."""
    name = raw.strip().lower() if isinstance(raw, str) else ""
    if not name or not _HOSTNAME.fullmatch(name):
        raise InvalidInput(
            f"hostname {str(raw)[:64]!r}: a DNS name of letters, digits, '-' and '.'",
            {"field": "hostname"},
        )
    return name


def size_label(size: int | None) -> str:
    """Bytes as people read them (GiB, TiB)."""
    if size is None:
        return "unknown"
    for unit, factor in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def visible_storage_pools(identity: Any) -> ColumnElement[bool]:
    """A SQL condition on StoragePool: the storage pools a person may see — those used by a
    hardware pool they administer (all of them for super admins)."""
    if identity is None:
        return false()
    if identity.is_super_admin:
        return true()
    paths = [path for path, role in identity.grants if role in (Role.ADMIN, Role.SUPER_ADMIN)]
    if not paths:
        return false()
    used = (
        select(storage_pool_hardware_pools.c.storage_pool_id)
        .join(Pool, Pool.id == storage_pool_hardware_pools.c.hardware_pool_id)
        .where(or_(*(Pool.path.startswith(path, autoescape=True) for path in paths)))
    )
    return StoragePool.id.in_(used)


def administered_hardware_pool(identity: Any, storage: StoragePool) -> Pool | None:
    """The first hardware pool using ``storage`` that the person administers, or None."""
    if identity is None:
        return None
    for hardware in storage.hardware_pools:
        if identity.role_at(hardware.path) in (Role.ADMIN, Role.SUPER_ADMIN):
            return hardware
    return None


# -- replication ----------------------------------------------------------------------------


@dataclass
class ReplicationPair:
    """A master and the secondary it replicates to, and how far they agree."""

    master: StorageServer
    secondary: StorageServer
    master_reachable: bool | None
    secondary_reachable: bool | None
    master_bytes: int | None
    secondary_bytes: int | None
    only_on_master: list[str] = field(default_factory=list)
    only_on_secondary: list[str] = field(default_factory=list)
    size_differs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``in sync``, ``drift`` or ``unknown`` (never checked or not refreshed)."""
        if self.warnings:
            return "drift"
        if self.master_reachable is None or self.secondary_reachable is None:
            return "unknown"
        return "in sync"


def _reachable(server: StorageServer) -> bool | None:
    if server.checked_at is None:
        return None
    return not server.last_error


def _volume_sizes(server: StorageServer) -> dict[str, int]:
    return {
        volume.name: volume.capacity_bytes
        for pool in server.storage_pools
        for volume in pool.volumes
    }


def _server_bytes(server: StorageServer) -> int | None:
    """What the server's pools hold as libvirt last reported (else its stated size)."""
    sizes = [p.capacity_bytes for p in server.storage_pools if p.capacity_bytes is not None]
    return sum(sizes) if sizes else server.capacity_bytes


def compare_pair(master: StorageServer, secondary: StorageServer) -> ReplicationPair:
    """Whether a master and its secondary are reachable and agree on size and volumes."""
    pair = ReplicationPair(
        master,
        secondary,
        _reachable(master),
        _reachable(secondary),
        _server_bytes(master),
        _server_bytes(secondary),
    )
    for server, reachable in (
        (master, pair.master_reachable),
        (secondary, pair.secondary_reachable),
    ):
        if reachable is False:
            pair.warnings.append(f"{server.hostname} is unreachable: {server.last_error}")
    if (
        master.capacity_bytes is not None
        and secondary.capacity_bytes is not None
        and master.capacity_bytes != secondary.capacity_bytes
    ):
        pair.warnings.append(
            f"the servers differ in size: {size_label(master.capacity_bytes)} on"
            f" {master.hostname}, {size_label(secondary.capacity_bytes)} on {secondary.hostname}"
        )
    if (
        pair.master_bytes is not None
        and pair.secondary_bytes is not None
        and pair.master_bytes > pair.secondary_bytes
    ):
        pair.warnings.append(
            f"{secondary.hostname} has {size_label(pair.secondary_bytes)} in its pools, less"
            f" than the {size_label(pair.master_bytes)} of {master.hostname}: the mirror"
            " cannot hold a full copy"
        )
    ours, theirs = _volume_sizes(master), _volume_sizes(secondary)
    pair.only_on_master = sorted(set(ours) - set(theirs))
    pair.only_on_secondary = sorted(set(theirs) - set(ours))
    pair.size_differs = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    if pair.only_on_master:
        pair.warnings.append(
            f"volumes not on {secondary.hostname}: " + ", ".join(pair.only_on_master[:10])
        )
    if pair.only_on_secondary:
        pair.warnings.append(
            f"volumes not on {master.hostname}: " + ", ".join(pair.only_on_secondary[:10])
        )
    if pair.size_differs:
        pair.warnings.append("volumes of different sizes: " + ", ".join(pair.size_differs[:10]))
    return pair


# -- the service ----------------------------------------------------------------------------


class StorageService:
    """Storage servers, storage pools and volumes; usable from a view, the CLI or a task."""

    def __init__(
        self,
        dbsession: Session,
        actor: Any = None,
        remote_addr: str = "",
        connections: ConnectionPool | None = None,
    ) -> None:
        self.dbsession = dbsession
        self.actor = actor
        self.remote_addr = remote_addr
        self.connections = connections

    def _audit(self, action: str, target_type: str, target_id: int, **kw: Any) -> None:
        record(
            self.dbsession,
            self.actor,
            action,
            target_type,
            target_id,
            remote_addr=self.remote_addr,
            **kw,
        )

    # -- storage servers ------------------------------------------------------------------

    def servers(self) -> list[StorageServer]:
        """Every storage server, by hostname."""
        return list(self.dbsession.scalars(select(StorageServer).order_by(StorageServer.hostname)))

    def server(self, server_id: int) -> StorageServer:
        """One storage server, or NotFound."""
        server = self.dbsession.get(StorageServer, server_id)
        if server is None:
            raise NotFound(f"no storage server {server_id}")
        return server

    def create_server(self, body: dict[str, Any]) -> StorageServer:
        """Add a storage server (hostname, address, role, replicates_to, capacity_gib)."""
        server = StorageServer(hostname="", role="master", address="")
        self._apply_server(server, body, creating=True)
        self.dbsession.add(server)
        self.dbsession.flush()
        self._audit(
            "storage.server.create", "storage_server", server.id, after=_server_state(server)
        )
        return server

    def update_server(self, server: StorageServer, body: dict[str, Any]) -> StorageServer:
        """Change a storage server (only the fields given)."""
        before = _server_state(server)
        self._apply_server(server, body, creating=False)
        self.dbsession.flush()
        self._audit(
            "storage.server.update",
            "storage_server",
            server.id,
            before=before,
            after=_server_state(server),
        )
        return server

    def delete_server(self, server: StorageServer) -> None:
        """Forget a storage server that no storage pool lives on."""
        if server.storage_pools:
            raise Conflict(
                f"storage pools live on {server.hostname}: "
                + ", ".join(p.name for p in server.storage_pools[:10])
                + "; delete or move them first"
            )
        replicas = self.dbsession.scalars(
            select(StorageServer).where(StorageServer.replicates_to_id == server.id)
        ).all()
        for master in replicas:
            master.replicates_to_id = None
        self._audit(
            "storage.server.delete", "storage_server", server.id, before=_server_state(server)
        )
        self.dbsession.delete(server)
        self.dbsession.flush()

    def _apply_server(self, server: StorageServer, body: dict[str, Any], creating: bool) -> None:
        unknown = set(body) - SERVER_FIELDS
        if unknown:
            raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
        if creating or "hostname" in body:
            hostname = check_server_hostname(body.get("hostname"))
            taken = self.dbsession.scalar(
                select(StorageServer.id).where(
                    StorageServer.hostname == hostname, StorageServer.id != (server.id or 0)
                )
            )
            if taken is not None:
                raise Conflict(
                    f"a storage server is already named {hostname}", {"field": "hostname"}
                )
            server.hostname = hostname
        if creating or "address" in body:
            address = _text(body, "address")
            try:
                server.address = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidInput(
                    f"address {address[:64]!r}: the server's IP address on the storage network",
                    {"field": "address"},
                ) from None
        if creating or "role" in body:
            role = _text(body, "role") or "master"
            if role not in STORAGE_SERVER_ROLES:
                raise InvalidInput("role: master or secondary", {"field": "role"})
            server.role = role
        if creating or "capacity_gib" in body:
            size = _number(body, "capacity_gib", "capacity_gib")
            if size is not None and not 1 <= size <= SERVER_CAPACITY_MAX_GIB:
                raise InvalidInput(
                    f"capacity_gib: 1 to {SERVER_CAPACITY_MAX_GIB}", {"field": "capacity_gib"}
                )
            server.capacity_bytes = size * GIB if size is not None else None
        if creating or "replicates_to" in body:
            target_id = _number(body, "replicates_to", "replicates_to (a storage server id)")
            server.replicates_to_id = self._replication_target(server, target_id)
        if server.role == "secondary":
            if server.replicates_to_id is not None:
                raise InvalidInput(
                    "a secondary is replicated to; only a master replicates_to another server",
                    {"field": "replicates_to"},
                )
            if server.id is not None:
                masters = self.dbsession.scalar(
                    select(StorageServer.id).where(StorageServer.replicates_to_id == server.id)
                )
                if masters is None:
                    return
        elif server.id is not None:
            master = self.dbsession.scalar(
                select(StorageServer.hostname).where(StorageServer.replicates_to_id == server.id)
            )
            if master is not None:
                raise Conflict(
                    f"{master} replicates to this server, so it stays a secondary",
                    {"field": "role"},
                )

    def _replication_target(self, server: StorageServer, target_id: int | None) -> int | None:
        if target_id is None:
            return None
        target = self.dbsession.get(StorageServer, target_id)
        if target is None:
            raise InvalidInput(f"no storage server {target_id}", {"field": "replicates_to"})
        if target.id == server.id:
            raise InvalidInput("a server cannot replicate to itself", {"field": "replicates_to"})
        if target.role != "secondary":
            raise InvalidInput(
                f"{target.hostname} is a {target.role}; a master replicates to a secondary",
                {"field": "replicates_to"},
            )
        other = self.dbsession.scalar(
            select(StorageServer.hostname).where(
                StorageServer.replicates_to_id == target.id,
                StorageServer.id != (server.id or 0),
            )
        )
        if other is not None:
            raise Conflict(
                f"{other} already replicates to {target.hostname}; a secondary mirrors one master",
                {"field": "replicates_to"},
            )
        return target.id

    def replication(self) -> list[ReplicationPair]:
        """Each master → secondary pair, compared (from the last checks and refreshes)."""
        masters = self.dbsession.scalars(
            select(StorageServer)
            .where(StorageServer.replicates_to_id.is_not(None))
            .order_by(StorageServer.hostname)
        ).all()
        return [compare_pair(m, m.replicates_to) for m in masters if m.replicates_to is not None]

    def queue_replication_check(self, pair: ReplicationPair) -> list[Task]:
        """Check both servers and refresh their pools, as tasks."""
        tasks = []
        for server in (pair.master, pair.secondary):
            tasks.append(self.queue_check(server))
            for pool in server.storage_pools:
                if pool.hardware_pools:
                    tasks.append(self._task("storage.pool.refresh", "storage_pool", pool.id))
        return tasks

    def queue_check(self, server: StorageServer) -> Task:
        """Queue a reachability check of a storage server."""
        return self._task("storage.server.check", "storage_server", server.id)

    def check_server(self, server: StorageServer) -> str:
        """Try the server's iSCSI portal (its pools' port, else 3260) and record the answer."""
        ports = sorted(
            {p.port or ISCSI_PORT for p in server.storage_pools if p.kind.startswith("iscsi")}
        )
        port = ports[0] if ports else ISCSI_PORT
        now = utcnow()
        server.checked_at = now
        try:
            with socket.create_connection((server.address, port), timeout=CHECK_TIMEOUT):
                pass
        except OSError as exc:
            server.last_error = f"no answer on {server.address}:{port} ({exc.strerror or exc})"
            self.dbsession.flush()
            return f"{server.hostname}: {server.last_error}"
        server.last_error = ""
        server.last_seen_at = now
        self.dbsession.flush()
        return f"{server.hostname} answers on {server.address}:{port}"

    # -- storage pools --------------------------------------------------------------------

    def storage_pools(self, visible: ColumnElement[bool]) -> list[StoragePool]:
        """The storage pools matching ``visible``, by name."""
        return list(
            self.dbsession.scalars(select(StoragePool).where(visible).order_by(StoragePool.name))
        )

    def storage_pool(self, pool_id: int) -> StoragePool:
        """One storage pool, or NotFound."""
        pool = self.dbsession.get(StoragePool, pool_id)
        if pool is None:
            raise NotFound(f"no storage pool {pool_id}")
        return pool

    def used_by(self, hardware: Pool) -> list[StoragePool]:
        """The storage pools a hardware pool uses."""
        return list(
            self.dbsession.scalars(
                select(StoragePool)
                .where(StoragePool.hardware_pools.contains(hardware))
                .order_by(StoragePool.name)
            )
        )

    def create_pool(self, body: dict[str, Any]) -> tuple[StoragePool, Task | None]:
        """Add a storage pool and queue its definition on the hosts that will use it."""
        unknown = set(body) - POOL_FIELDS
        if unknown:
            raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
        pool = StoragePool(name="", kind="dir", state="defined")
        self._apply_pool(pool, body)
        self.dbsession.add(pool)
        self.dbsession.flush()
        self._audit("storage.pool.create", "storage_pool", pool.id, after=_pool_state(pool))
        task = self.queue_define(pool) if pool.hardware_pools else None
        return pool, task

    def update_pool(
        self, pool: StoragePool, body: dict[str, Any]
    ) -> tuple[StoragePool, Task | None]:
        """Change which hardware pools use a storage pool (and its server); the rest of a
        pool is what the hosts defined, so it is deleted and made again instead."""
        allowed = {"hardware_pools", "server"}
        unknown = set(body) - allowed
        if unknown:
            raise InvalidInput(
                "only hardware_pools and server can change; delete the pool and define it"
                " again to change " + ", ".join(sorted(unknown)[:10])
            )
        before = _pool_state(pool)
        if "hardware_pools" in body:
            pool.hardware_pools = self._hardware_pools(body.get("hardware_pools"))
        if "server" in body:
            pool.server_id = self._server_id(body)
        self.dbsession.flush()
        self._audit(
            "storage.pool.update", "storage_pool", pool.id, before=before, after=_pool_state(pool)
        )
        task = self.queue_define(pool) if pool.hardware_pools else None
        return pool, task

    def delete_pool(self, pool: StoragePool) -> Task | None:
        """Forget a storage pool that no VM disk and no LVM pool uses, and queue its
        undefinition on the hosts that use it (its data is never touched)."""
        used = self.dbsession.scalar(
            select(Vm.name)
            .join(VmDisk, VmDisk.vm_id == Vm.id)
            .outerjoin(StorageVolume, StorageVolume.id == VmDisk.volume_id)
            .where(or_(StorageVolume.storage_pool_id == pool.id, VmDisk.storage_pool_id == pool.id))
            .limit(1)
        )
        if used is not None:
            raise Conflict(f"VM {used} has a disk in storage pool {pool.name}; delete it first")
        child = self.dbsession.scalar(
            select(StoragePool.name).where(StoragePool.parent_pool_id == pool.id)
        )
        if child is not None:
            raise Conflict(f"LVM pool {child} is on {pool.name}; delete it first")
        self._audit("storage.pool.delete", "storage_pool", pool.id, before=_pool_state(pool))
        hosts = [h.id for h in self.hosts_for(pool)]
        name = pool.name
        self.dbsession.delete(pool)
        self.dbsession.flush()
        if not hosts:
            return None
        return self._task("storage.pool.undefine", "site", 0, {"name": name, "hosts": hosts})

    def _hardware_pools(self, raw: Any) -> list[Pool]:
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            raw = [raw]
        if not isinstance(raw, list) or not raw or len(raw) > 100:
            raise InvalidInput(
                "hardware_pools: the ids of one or more hardware pools that use this storage",
                {"field": "hardware_pools"},
            )
        pools = []
        for item in raw:
            pool_id = _number({"x": item}, "x", "a hardware pool id")
            pool = self.dbsession.get(Pool, pool_id) if pool_id else None
            if pool is None or pool.kind != PoolKind.HARDWARE:
                raise InvalidInput(f"no hardware pool {item!r}", {"field": "hardware_pools"})
            if pool not in pools:
                pools.append(pool)
        return pools

    def _server_id(self, body: dict[str, Any]) -> int | None:
        server_id = _number(body, "server", "server (a storage server id)")
        if server_id is None:
            return None
        if self.dbsession.get(StorageServer, server_id) is None:
            raise InvalidInput(f"no storage server {server_id}", {"field": "server"})
        return server_id

    def _apply_pool(self, pool: StoragePool, body: dict[str, Any]) -> None:
        try:
            pool.name = validate_pool_name(_text(body, "name"))
        except InvalidStorageSpec as exc:
            raise _spec_error(exc, "name") from None
        if self.dbsession.scalar(select(StoragePool.id).where(StoragePool.name == pool.name)):
            raise Conflict(f"a storage pool is already named {pool.name}", {"field": "name"})
        kind = _text(body, "kind")
        if kind not in STORAGE_POOL_KINDS:
            raise InvalidInput("kind: one of " + ", ".join(STORAGE_POOL_KINDS), {"field": "kind"})
        pool.kind = kind
        pool.server_id = self._server_id(body)
        pool.hardware_pools = self._hardware_pools(body.get("hardware_pools"))
        given = {k for k, v in body.items() if v not in (None, "")}
        needs = {
            "iscsi": {"portal_address", "target_iqn"},
            "iscsi-direct": {"portal_address", "target_iqn"},
            "netfs": {"portal_address", "source_path", "target_path"},
            "dir": {"target_path"},
            "logical": {"volume_group"},
        }[kind]
        may = (
            needs
            | {
                "iscsi": {"port", "lun", "initiator_iqn"},
                "iscsi-direct": {"port", "lun", "initiator_iqn"},
                "netfs": set(),
                "dir": set(),
                "logical": {"parent_pool", "lun", "source_path"},
            }[kind]
        )
        missing = sorted(needs - given)
        if missing:
            raise InvalidInput(
                f"a {kind} storage pool needs " + ", ".join(missing), {"field": missing[0]}
            )
        extra = sorted(given & (POOL_FIELDS - may - {"name", "kind", "server", "hardware_pools"}))
        if extra:
            raise InvalidInput(
                f"a {kind} storage pool has no " + ", ".join(extra), {"field": extra[0]}
            )
        try:
            if "portal_address" in given:
                pool.portal_address = validate_host(
                    _text(body, "portal_address"),
                    "NFS server" if kind == "netfs" else "portal address",
                )
            if kind.startswith("iscsi"):
                port = _number(body, "port", "port")
                pool.port = validate_port(port if port is not None else ISCSI_PORT)
                pool.target_iqn = validate_iqn(_text(body, "target_iqn"))
                if "initiator_iqn" in given:
                    pool.initiator_iqn = validate_iqn(_text(body, "initiator_iqn"), "initiator IQN")
            if "lun" in given:
                lun = _number(body, "lun", "lun")
                pool.lun = validate_lun(lun if lun is not None else -1)
            for key in ("source_path", "target_path"):
                if key in given:
                    setattr(pool, key, validate_path(_text(body, key), key.replace("_", " ")))
            if kind == "logical":
                pool.volume_group = validate_volume_group(_text(body, "volume_group"))
        except InvalidStorageSpec as exc:
            raise _spec_error(exc, _field_of(str(exc))) from None
        except VirtError as exc:  # validate_path's InvalidDomainSpec
            raise InvalidInput(str(exc)) from None
        if kind == "logical":
            self._apply_lvm_source(pool, body, given)

    def _apply_lvm_source(self, pool: StoragePool, body: dict[str, Any], given: set[str]) -> None:
        if "parent_pool" in given:
            parent_id = _number(body, "parent_pool", "parent_pool (a storage pool id)")
            parent = self.dbsession.get(StoragePool, parent_id) if parent_id else None
            if parent is None or parent.kind != "iscsi":
                raise InvalidInput(
                    "parent_pool: the iscsi storage pool whose LUN holds the volume group (the"
                    " hosts see its LUNs as block devices)",
                    {"field": "parent_pool"},
                )
            if pool.lun is None:
                raise InvalidInput(
                    "lun: which LUN of the parent target holds the volume group", {"field": "lun"}
                )
            pool.parent_pool_id = parent.id
            pool.source_path = None
        elif not (pool.source_path or "").startswith("/dev/"):
            raise InvalidInput(
                "an LVM pool is on an iSCSI LUN (parent_pool and lun) or on a device under /dev/"
                " (source_path)",
                {"field": "parent_pool"},
            )

    # -- on the hosts ---------------------------------------------------------------------

    def hosts_for(self, pool: StoragePool) -> list[Host]:
        """The available hosts of the hardware pools using a storage pool."""
        ids = [p.id for p in pool.hardware_pools]
        if not ids:
            return []
        return list(
            self.dbsession.scalars(
                select(Host)
                .where(Host.pool_id.in_(ids), Host.state == HostState.AVAILABLE.value)
                .order_by(Host.hostname)
            )
        )

    def pool_spec(self, pool: StoragePool, host: Host) -> PoolSpec:
        """What libvirt on ``host`` defines for this storage pool."""
        source_path = pool.source_path
        if pool.kind == "logical" and pool.parent_pool is not None:
            parent = pool.parent_pool
            source_path = lun_device_path(
                parent.portal_address or "",
                parent.port or ISCSI_PORT,
                parent.target_iqn or "",
                pool.lun or 0,
            )
        initiator = pool.initiator_iqn
        if pool.kind == "iscsi-direct" and not initiator:
            initiator = f"{INITIATOR_PREFIX}:{host.hostname.lower()}"
        return PoolSpec(
            name=pool.name,
            kind=pool.kind,
            host=pool.portal_address,
            port=pool.port,
            target_iqn=pool.target_iqn,
            initiator_iqn=initiator,
            source_path=source_path,
            target_path=pool.target_path,
            volume_group=pool.volume_group,
        )

    def storage_host(self, host: Host) -> StorageHost:
        """The libvirt storage of one host."""
        return StorageHost(host.libvirt_uri, self.connections)

    def _task(
        self, kind: str, target_type: str, target_id: int, args: dict[str, Any] | None = None
    ) -> Task:
        return TaskService(self.dbsession, self.actor, self.remote_addr).create(
            kind, target_type, target_id, args or {}
        )

    def queue_define(self, pool: StoragePool) -> Task:
        """Queue the definition (and start) of a storage pool on its hosts."""
        return self._task("storage.pool.define", "storage_pool", pool.id)

    def queue_define_for_host(self, host: Host) -> list[Task]:
        """Queue the definition of every storage pool its hardware pool uses, for a host that
        became available (approved) or moved to another hardware pool."""
        if host.state != HostState.AVAILABLE.value:
            return []
        return [self.queue_define(pool) for pool in self.used_by(host.pool)]

    def queue_refresh(self, pool: StoragePool) -> Task:
        """Queue a refresh of a storage pool's figures and volumes from libvirt."""
        if not pool.hardware_pools:
            raise Conflict(f"no hardware pool uses {pool.name}, so no host can refresh it")
        return self._task("storage.pool.refresh", "storage_pool", pool.id)

    def define_on_hosts(self, pool: StoragePool, report: Any = None) -> str:
        """Define and start the pool on every available host that uses it (a host that has
        it already is fine); the figures of the first host that answered are recorded."""
        hosts = self.hosts_for(pool)
        if not hosts:
            pool.state = "defined"
            pool.last_error = "no available host uses this storage pool yet"
            return f"{pool.name}: no available host in " + ", ".join(
                p.name for p in pool.hardware_pools
            )
        if pool.parent_pool is not None:
            self.define_on_hosts(pool.parent_pool)
        done, failed, unreachable = [], [], []
        info: PoolInfo | None = None
        for index, host in enumerate(hosts):
            try:
                found = self.storage_host(host).define_pool(self.pool_spec(pool, host))
            except HostUnreachable as exc:
                unreachable.append(f"{host.hostname}: {exc}")
            except VirtError as exc:
                failed.append(f"{host.hostname}: {exc}")
            else:
                done.append(host.hostname)
                info = info or found
            if report is not None:
                report(int(100 * (index + 1) / len(hosts)), f"{len(done)} of {len(hosts)} hosts")
        if info is not None:
            self._record(pool, info)
        problems = failed + unreachable
        pool.last_error = "; ".join(problems)[:4000]
        if not done:
            pool.state = "failed"
        self.dbsession.flush()
        message = f"{pool.name} defined and started on " + (", ".join(done) or "no host")
        if problems:
            self._keep_after_rollback(pool)
        if unreachable and not failed:
            # passing trouble: the runner retries (the hosts that have it keep it)
            raise RetryableError(message + "; unreachable: " + "; ".join(unreachable))
        if problems:
            raise InvalidInput(message + "; failed: " + "; ".join(problems))
        return message

    def refresh(self, pool: StoragePool) -> str:
        """Read the pool's state, figures and volumes from libvirt (from the first host
        that answers; the pool is defined there first if it is not yet)."""
        hosts = self.hosts_for(pool)
        if not hosts:
            raise Conflict(f"no available host uses {pool.name}, so nothing can refresh it")
        errors = []
        for host in hosts:
            try:
                storage = self.storage_host(host)
                if storage.has_pool(pool.name):
                    info = storage.refresh_pool(pool.name)
                    if info.state != "active":
                        info = storage.define_pool(self.pool_spec(pool, host))
                else:
                    info = storage.define_pool(self.pool_spec(pool, host))
            except VirtError as exc:
                errors.append(f"{host.hostname}: {exc}")
                continue
            self._record(pool, info)
            return (
                f"{pool.name} on {host.hostname}: {info.state}, {size_label(info.capacity_bytes)},"
                f" {size_label(info.available_bytes)} free, {len(pool.volumes)} volumes"
            )
        pool.last_error = "; ".join(errors)[:4000]
        pool.state = "failed"
        self.dbsession.flush()
        self._keep_after_rollback(pool)
        raise RetryableError(f"no host could refresh {pool.name}: " + "; ".join(errors))

    def _keep_after_rollback(self, pool: StoragePool) -> None:
        """A failing task's transaction is rolled back; the pool's state and the reason are
        written again after that, in a transaction of their own, so the page says why."""
        manager = self.dbsession.info.get("transaction_manager")
        engine = self.dbsession.get_bind()
        if manager is None or not isinstance(engine, Engine):
            return  # not a worker's transaction (tests hand in a connection)
        pool_id, values = pool.id, {"state": pool.state, "last_error": pool.last_error}

        def write(*_args: Any) -> None:
            with engine.begin() as conn:
                conn.execute(update(StoragePool).where(StoragePool.id == pool_id).values(**values))

        manager.get().addAfterAbortHook(write)

    def _record(self, pool: StoragePool, info: PoolInfo) -> None:
        """Write what libvirt reported: figures, state, and the volume rows (new ones added,
        gone ones removed)."""
        pool.state = info.state
        pool.capacity_bytes = info.capacity_bytes
        pool.allocation_bytes = info.allocation_bytes
        pool.available_bytes = info.available_bytes
        pool.refreshed_at = utcnow()
        pool.last_error = ""
        reported = {
            v.name: v
            for v in info.volumes
            # an iSCSI target's LUN 0 is its controller: no storage in it
            if not (pool.kind.startswith("iscsi") and v.capacity_bytes == 0)
        }
        rows = {v.name: v for v in pool.volumes}
        for name, gone in rows.items():
            if name not in reported:
                pool.volumes.remove(gone)
        for name, volume in reported.items():
            row = rows.get(name)
            if row is None:
                row = StorageVolume(name=name)
                pool.volumes.append(row)
            row.key = volume.key[:1024]
            row.path = volume.path[:4096]
            row.format = volume.format
            row.capacity_bytes = volume.capacity_bytes
            row.allocation_bytes = volume.allocation_bytes
        if pool.server is not None and pool.kind.startswith("iscsi"):
            # a host reached the server's portal: it answers
            pool.server.last_seen_at = pool.server.checked_at = pool.refreshed_at
            pool.server.last_error = ""
        self.dbsession.flush()
        self.dbsession.expire(pool, ["volumes"])  # read back in name order

    # -- volumes --------------------------------------------------------------------------

    def volume(self, volume_id: int) -> StorageVolume:
        """One volume, or NotFound."""
        volume = self.dbsession.get(StorageVolume, volume_id)
        if volume is None:
            raise NotFound(f"no volume {volume_id}")
        return volume

    def check_new_volume(self, pool: StoragePool, body: dict[str, Any]) -> tuple[str, int, str]:
        """The name, size (GiB) and format of a volume someone asks for; refused with the
        reason if this pool cannot make it or one of that name exists."""
        unknown = set(body) - {"name", "size_gib", "format"}
        if unknown:
            raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
        if pool.kind not in VOLUME_MAKING_KINDS:
            raise InvalidInput(
                f"{pool.name} is an iSCSI target: its LUNs are made on the storage server, then"
                " a refresh shows them"
            )
        try:
            name = validate_volume_name(_text(body, "name"))
        except InvalidStorageSpec as exc:
            raise _spec_error(exc, "name") from None
        size = _check_size(_number(body, "size_gib", "size_gib"))
        fmt = _text(body, "format") or "raw"
        if fmt not in ("raw", "qcow2") or (fmt == "qcow2" and pool.kind == "logical"):
            raise InvalidInput(
                "format: raw" + ("" if pool.kind == "logical" else " or qcow2"), {"field": "format"}
            )
        if any(v.name == name for v in pool.volumes):
            raise Conflict(f"{pool.name} already has a volume {name}", {"field": "name"})
        return name, size, fmt

    def queue_create_volume(self, pool: StoragePool, body: dict[str, Any]) -> Task:
        """Queue a new volume in a pool (checked first)."""
        name, size, fmt = self.check_new_volume(pool, body)
        if not pool.hardware_pools:
            raise Conflict(f"no hardware pool uses {pool.name}, so no host can make volumes in it")
        self._audit(
            "storage.volume.create", "storage_pool", pool.id, after={"name": name, "size_gib": size}
        )
        return self._task(
            "storage.volume.create",
            "storage_pool",
            pool.id,
            {"name": name, "size_gib": size, "format": fmt},
        )

    def queue_resize_volume(self, volume: StorageVolume, body: dict[str, Any]) -> Task:
        """Queue growing a volume to ``size_gib``."""
        if set(body) - {"size_gib"}:
            raise InvalidInput("a resize takes only size_gib")
        if volume.storage_pool.kind not in VOLUME_MAKING_KINDS:
            raise InvalidInput("an iSCSI LUN is resized on the storage server, not by the hosts")
        size = _check_size(_number(body, "size_gib", "size_gib"))
        if size * GIB < volume.capacity_bytes:
            raise InvalidInput(
                f"{volume.name} has {size_label(volume.capacity_bytes)}; shrinking it would lose"
                " data",
                {"field": "size_gib"},
            )
        self._audit(
            "storage.volume.resize",
            "storage_volume",
            volume.id,
            before={"capacity_bytes": volume.capacity_bytes},
            after={"size_gib": size},
        )
        return self._task("storage.volume.resize", "storage_volume", volume.id, {"size_gib": size})

    def queue_delete_volume(self, volume: StorageVolume) -> Task:
        """Queue deleting a volume that no VM uses."""
        user = self.dbsession.scalar(
            select(Vm.name).join(VmDisk, VmDisk.vm_id == Vm.id).where(VmDisk.volume_id == volume.id)
        )
        if user is not None:
            raise Conflict(f"{volume.name} is a disk of VM {user}; delete the VM's disk first")
        if volume.storage_pool.kind not in VOLUME_MAKING_KINDS:
            raise InvalidInput("an iSCSI LUN is deleted on the storage server, not by the hosts")
        self._audit(
            "storage.volume.delete", "storage_volume", volume.id, before={"name": volume.name}
        )
        return self._task("storage.volume.delete", "storage_volume", volume.id)

    def _host_for_volumes(self, pool: StoragePool, preferred: Host | None = None) -> Host:
        hosts = self.hosts_for(pool)
        if not hosts:
            raise RetryableError(f"no available host uses storage pool {pool.name}")
        if preferred is not None and preferred in hosts:
            return preferred
        return hosts[0]

    def create_volume(
        self,
        pool: StoragePool,
        name: str,
        capacity_bytes: int,
        fmt: str = "raw",
        host: Host | None = None,
    ) -> StorageVolume:
        """Make a volume on libvirt (a host using the pool; the pool is defined there if
        needed) and record it; one of that name already made is taken as it is."""
        target = self._host_for_volumes(pool, host)
        storage = self.storage_host(target)
        storage.define_pool(self.pool_spec(pool, target))
        info = storage.create_volume(pool.name, VolumeSpec(name, capacity_bytes, fmt), pool.kind)
        row = next((v for v in pool.volumes if v.name == name), None)
        if row is None:
            row = StorageVolume(name=name)
            pool.volumes.append(row)
        row.key = info.key[:1024]
        row.path = info.path[:4096]
        row.format = info.format
        row.capacity_bytes = info.capacity_bytes
        row.allocation_bytes = info.allocation_bytes
        self.dbsession.flush()
        return row

    def resize_volume(self, volume: StorageVolume, capacity_bytes: int) -> StorageVolume:
        """Grow a volume on libvirt and record its new size."""
        pool = volume.storage_pool
        target = self._host_for_volumes(pool)
        info = self.storage_host(target).resize_volume(pool.name, volume.name, capacity_bytes)
        volume.capacity_bytes = info.capacity_bytes
        volume.allocation_bytes = info.allocation_bytes
        self.dbsession.flush()
        return volume

    def delete_volume(self, volume: StorageVolume) -> str:
        """Delete a volume on libvirt (one already gone is fine) and forget it."""
        pool = volume.storage_pool
        name = volume.name
        if pool.kind not in VOLUME_MAKING_KINDS:
            raise InvalidInput(f"{name} is an iSCSI LUN; the storage server owns it")
        target = self._host_for_volumes(pool)
        existed = self.storage_host(target).delete_volume(pool.name, name)
        pool.volumes.remove(volume)
        self.dbsession.flush()
        return f"{name} deleted from {pool.name}" + ("" if existed else " (it was already gone)")

    # -- for VMs --------------------------------------------------------------------------

    @staticmethod
    def volume_name_for(vm: Vm, disk: VmDisk, pool: StoragePool) -> str:
        """The name of a VM disk's new volume: ``<vm>-<target>-<uuid prefix>`` (unique across
        VM pools), ``.img`` in file pools."""
        name = f"{vm.name}-{disk.target_dev}-{vm.uuid[:8]}"
        return name + ".img" if pool.kind in ("dir", "netfs") else name

    def create_volume_for_vm(self, vm: Vm, disk: VmDisk) -> StorageVolume | None:
        """Make the new volume a VM disk asks for (``storage_pool_id`` + ``size_gib``), on the
        VM's host when it uses the pool, and point the disk at it; None for a disk that has
        its volume already.  Idempotent."""
        if disk.path or disk.storage_pool_id is None:
            return None
        pool = self.storage_pool(disk.storage_pool_id)
        size = _check_size(disk.size_gib)
        volume = self.create_volume(
            pool, self.volume_name_for(vm, disk, pool), size * GIB, host=vm.host
        )
        disk.volume_id = volume.id
        disk.path = volume.path
        disk.storage_pool_id = None
        self.dbsession.flush()
        return volume

    def create_volumes_for_vm(self, vm: Vm) -> list[StorageVolume]:
        """Make every new volume a VM's disks ask for."""
        made = [self.create_volume_for_vm(vm, disk) for disk in vm.disks]
        return [v for v in made if v is not None]

    def delete_volumes_of_vm(self, vm: Vm) -> list[str]:
        """Delete the volumes of a VM's disks (before the VM row goes); LUNs stay."""
        said = []
        for disk in vm.disks:
            volume = self.dbsession.get(StorageVolume, disk.volume_id) if disk.volume_id else None
            if volume is None:
                continue
            if volume.storage_pool.kind not in VOLUME_MAKING_KINDS:
                said.append(f"LUN {volume.name} left on the storage server")
                continue
            disk.volume_id = None
            self.dbsession.flush()
            said.append(self.delete_volume(volume))
        return said


def network_disk_for(dbsession: Session, disk: VmDisk) -> DiskSpec | None:
    """The domain disk of a VM disk on a LUN of an ``iscsi-direct`` pool: qemu logs in to
    the target itself (``<disk type='network'><source protocol='iscsi' name='IQN/LUN'>``).
    None for every other disk (files and block devices on the host)."""
    volume = dbsession.get(StorageVolume, disk.volume_id) if disk.volume_id else None
    if volume is None or volume.storage_pool.kind != "iscsi-direct":
        return None
    pool = volume.storage_pool
    lun = volume.name.rsplit(":", 1)[-1]  # libvirt names LUN n "unit:0:0:n"
    if not lun.isdecimal():
        raise InvalidInput(f"volume {volume.name} of {pool.name} does not name a LUN")
    return DiskSpec(
        target=disk.target_dev,
        source=f"{pool.target_iqn}/{int(lun)}",
        kind="network",
        bus=disk.bus,
        protocol="iscsi",
        host=pool.portal_address,
        port=pool.port or ISCSI_PORT,
    )


def _check_size(size: int | None) -> int:
    if size is None or not 1 <= size <= VOLUME_SIZE_MAX_GIB:
        raise InvalidInput(f"size_gib: 1 to {VOLUME_SIZE_MAX_GIB}", {"field": "size_gib"})
    return size


def _field_of(message: str) -> str:
    for key, words in (
        ("target_iqn", "target IQN"),
        ("initiator_iqn", "initiator IQN"),
        ("portal_address", "portal address"),
        ("portal_address", "NFS server"),
        ("port", "port"),
        ("lun", "LUN"),
        ("volume_group", "volume group"),
    ):
        if words in message:
            return key
    return "storage_pool"


def _server_state(server: StorageServer) -> dict[str, Any]:
    return {
        "hostname": server.hostname,
        "address": server.address,
        "role": server.role,
        "replicates_to": server.replicates_to_id,
        "capacity_bytes": server.capacity_bytes,
    }


def _pool_state(pool: StoragePool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "kind": pool.kind,
        "server": pool.server_id,
        "hardware_pools": [p.id for p in pool.hardware_pools],
        "portal_address": pool.portal_address,
        "port": pool.port,
        "target_iqn": pool.target_iqn,
        "lun": pool.lun,
        "source_path": pool.source_path,
        "target_path": pool.target_path,
        "volume_group": pool.volume_group,
        "parent_pool": pool.parent_pool_id,
    }


# -- task kinds -----------------------------------------------------------------------------


def _target(task: Task, dbsession: Session, model: Any, what: str) -> Any:
    row = dbsession.get(model, task.target_id)
    if row is None:
        raise NotFound(f"{what} {task.target_id} no longer exists")
    return row


def run_pool_define(task: Task, dbsession: Session) -> str:
    """``storage.pool.define``: define and start the pool on every host using it."""
    pool = _target(task, dbsession, StoragePool, "storage pool")
    return StorageService(dbsession).define_on_hosts(
        pool, report=lambda percent, message: progress(task, percent, message)
    )


def run_pool_refresh(task: Task, dbsession: Session) -> str:
    """``storage.pool.refresh``: figures and volumes from libvirt."""
    return StorageService(dbsession).refresh(_target(task, dbsession, StoragePool, "storage pool"))


def run_volume_create(task: Task, dbsession: Session) -> str:
    """``storage.volume.create``: make a volume of ``args.size_gib`` named ``args.name``."""
    pool = _target(task, dbsession, StoragePool, "storage pool")
    args = dict(task.args or {})
    volume = StorageService(dbsession).create_volume(
        pool,
        validate_volume_name(str(args.get("name", ""))),
        _check_size(args.get("size_gib")) * GIB,
        str(args.get("format") or "raw"),
    )
    return f"{volume.name} ({size_label(volume.capacity_bytes)}) made in {pool.name}: {volume.path}"


def run_volume_resize(task: Task, dbsession: Session) -> str:
    """``storage.volume.resize``: grow a volume to ``args.size_gib``."""
    volume = _target(task, dbsession, StorageVolume, "volume")
    size = _check_size((task.args or {}).get("size_gib"))
    StorageService(dbsession).resize_volume(volume, size * GIB)
    return f"{volume.name} is now {size_label(volume.capacity_bytes)}"


def run_volume_delete(task: Task, dbsession: Session) -> str:
    """``storage.volume.delete``: delete a volume (one already gone is fine)."""
    volume = dbsession.get(StorageVolume, task.target_id)
    if volume is None:
        return "the volume was already deleted"
    return StorageService(dbsession).delete_volume(volume)


def run_pool_undefine(task: Task, dbsession: Session) -> str:
    """``storage.pool.undefine``: stop and forget a deleted pool on the hosts that had it
    (``args.name``, ``args.hosts``); a host without it is fine, the data stays."""
    args = dict(task.args or {})
    name = validate_pool_name(str(args.get("name", "")))
    done = []
    for host_id in args.get("hosts") or []:
        host = dbsession.get(Host, host_id)
        if host is None:
            continue
        StorageService(dbsession).storage_host(host).undefine_pool(name)
        done.append(host.hostname)
    return f"{name} undefined on " + (", ".join(done) or "no host")


def run_server_check(task: Task, dbsession: Session) -> str:
    """``storage.server.check``: can the server's iSCSI portal be reached."""
    return StorageService(dbsession).check_server(
        _target(task, dbsession, StorageServer, "storage server")
    )


register("storage.pool.define", run_pool_define, timeout=300, title="Define a storage pool")
register("storage.pool.refresh", run_pool_refresh, timeout=120, title="Refresh a storage pool")
register("storage.volume.create", run_volume_create, timeout=600, title="Create a volume")
register("storage.volume.resize", run_volume_resize, timeout=300, title="Resize a volume")
register("storage.volume.delete", run_volume_delete, timeout=300, title="Delete a volume")
register("storage.pool.undefine", run_pool_undefine, timeout=300, title="Undefine a storage pool")
register("storage.server.check", run_server_check, timeout=30, title="Check a storage server")
