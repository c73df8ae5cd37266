"""Volumes in storage pools, and the volumes of VM disks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...models import Host, StoragePool, StorageVolume, Task, Vm, VmDisk
from ...models.storage import VOLUME_MAKING_KINDS
from ...virt.domain import DiskSpec
from ...virt.storage import ISCSI_PORT, InvalidStorageSpec, VolumeSpec, validate_volume_name
from .. import Conflict, InvalidInput, NotFound
from ..tasks import RetryableError
from .input import GIB, _check_size, _number, _spec_error, _text, size_label
from .pools import StoragePools, record_volume


class StorageVolumes(StoragePools):
    """Volumes: made, resized and deleted on libvirt, and a VM's disks' volumes."""

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
        row = record_volume(pool, next((v for v in pool.volumes if v.name == name), None), info)
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
