"""Storage pools: who may see them, their rows, and defining and refreshing them on hosts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Engine, false, or_, select, true, update

from ...models import (
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
from ...models.meta import utcnow
from ...models.storage import STORAGE_POOL_KINDS, storage_pool_hardware_pools
from ...permissions import Role
from ...virt.connection import HostUnreachable, VirtError
from ...virt.domain import validate_path
from ...virt.storage import (
    ISCSI_PORT,
    InvalidStorageSpec,
    PoolInfo,
    PoolSpec,
    StorageHost,
    VolumeInfo,
    lun_device_path,
    validate_host,
    validate_iqn,
    validate_lun,
    validate_pool_name,
    validate_port,
    validate_volume_group,
)
from .. import Conflict, InvalidInput, NotFound
from ..tasks import RetryableError
from .base import StorageBase
from .input import INITIATOR_PREFIX, POOL_FIELDS, _field_of, _number, _spec_error, _text, size_label


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


def record_volume(pool: StoragePool, row: StorageVolume | None, info: VolumeInfo) -> StorageVolume:
    """The pool's row for a volume as libvirt reports it: ``row`` (or a new one, added to
    the pool) with libvirt's key, path, format and sizes."""
    if row is None:
        row = StorageVolume(name=info.name)
        pool.volumes.append(row)
    row.key = info.key[:1024]
    row.path = info.path[:4096]
    row.format = info.format
    row.capacity_bytes = info.capacity_bytes
    row.allocation_bytes = info.allocation_bytes
    return row


class StoragePools(StorageBase):
    """Storage pools, and the pools on the hosts that use them."""

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
            record_volume(pool, rows.get(name), volume)
        if pool.server is not None and pool.kind.startswith("iscsi"):
            # a host reached the server's portal: it answers
            pool.server.last_seen_at = pool.server.checked_at = pool.refreshed_at
            pool.server.last_error = ""
        self.dbsession.flush()
        self.dbsession.expire(pool, ["volumes"])  # read back in name order
