"""Virtual machines, their disks and NICs, and people's requests for new VMs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .host import Host
from .meta import Base, Timestamped
from .pool import Pool, PoolKind
from .user import User

VM_NAME_MAX = 64
VM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class VmState(StrEnum):
    """The oVirt VM states; the allowed transitions live with the VM service."""

    PENDING = "pending"
    CREATING = "creating"
    RUNNING = "running"
    PAUSED = "paused"
    SAVING = "saving"
    SAVED = "saved"
    RESTORING = "restoring"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"
    MIGRATING = "migrating"
    DELETING = "deleting"
    UNKNOWN = "unknown"
    FAILED = "failed"


_STATES_SQL = ", ".join(f"'{s.value}'" for s in VmState)


class Vm(Base, Timestamped):
    """A VM; it lives in a VM pool and runs on a host of that pool's hardware pool."""

    __tablename__ = "vms"
    __table_args__ = (
        ForeignKeyConstraint(["pool_id", "pool_kind"], ["pools.id", "pools.kind"]),
        CheckConstraint("pool_kind = 'vm'", name="pool_is_vm"),
        CheckConstraint(f"state IN ({_STATES_SQL})", name="state"),
        CheckConstraint("vcpus > 0 AND memory_mib > 0", name="positive"),
        UniqueConstraint("pool_id", "name"),
        Index("ix_vms_host_id", "host_id"),
        Index("ix_vms_state", "state"),
        Index("ix_vms_name", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(VM_NAME_MAX))
    pool_id: Mapped[int] = mapped_column()
    pool_kind: Mapped[str] = mapped_column(String(16), default=PoolKind.VM.value)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    vcpus: Mapped[int] = mapped_column(default=1)
    memory_mib: Mapped[int] = mapped_column(default=1024)
    state: Mapped[str] = mapped_column(String(16), default=VmState.PENDING.value)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    boot_kind: Mapped[str] = mapped_column(String(16), default="disk")
    boot_profile: Mapped[str | None] = mapped_column(String(255))
    # -- VM lifecycle: architecture, boot order, direct kernel boot --
    arch: Mapped[str] = mapped_column(String(32), default="x86_64", server_default="x86_64")
    boot_order: Mapped[str] = mapped_column(String(64), default="hd", server_default="hd")
    boot_kernel: Mapped[str | None] = mapped_column(String(4096))
    boot_initrd: Mapped[str | None] = mapped_column(String(4096))
    boot_cmdline: Mapped[str | None] = mapped_column(String(1024))
    managed: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime | None] = mapped_column()

    pool: Mapped[Pool] = relationship(foreign_keys=[pool_id], primaryjoin="Vm.pool_id == Pool.id")
    host: Mapped[Host | None] = relationship()
    disks: Mapped[list[VmDisk]] = relationship(
        back_populates="vm", cascade="all, delete-orphan", order_by="VmDisk.target_dev"
    )
    nics: Mapped[list[VmNic]] = relationship(
        back_populates="vm", cascade="all, delete-orphan", order_by="VmNic.id"
    )

    def __repr__(self) -> str:
        return f"<Vm {self.name} {self.state}>"


class VmDisk(Base):
    """A disk of a VM, backed by a storage volume or a path."""

    __tablename__ = "vm_disks"
    __table_args__ = (UniqueConstraint("vm_id", "target_dev"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vms.id", ondelete="CASCADE"))
    target_dev: Mapped[str] = mapped_column(String(16))
    bus: Mapped[str] = mapped_column(String(16), default="virtio")
    volume_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_volumes.id", ondelete="SET NULL")
    )
    path: Mapped[str | None] = mapped_column(String(4096))
    size_gib: Mapped[int | None] = mapped_column()
    boot_order: Mapped[int | None] = mapped_column()
    #: where a new volume is to be made; None once it is a volume
    storage_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_pools.id", ondelete="SET NULL")
    )

    vm: Mapped[Vm] = relationship(back_populates="disks")


class VmNic(Base):
    """A NIC of a VM; its MAC is unique across the cloud."""

    __tablename__ = "vm_nics"

    id: Mapped[int] = mapped_column(primary_key=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vms.id", ondelete="CASCADE"))
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id", ondelete="RESTRICT"))
    model: Mapped[str] = mapped_column(String(16), default="virtio")

    vm: Mapped[Vm] = relationship(back_populates="nics")


class VmRequestState(StrEnum):
    """A VM request's life: pending → approved → provisioning → provisioned | failed;
    or denied.  A failed one can be retried (back to provisioning)."""

    PENDING = "pending"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    FAILED = "failed"
    DENIED = "denied"


_REQUEST_STATES_SQL = ", ".join(f"'{s.value}'" for s in VmRequestState)


class VmRequest(Base, Timestamped):
    """A person asking for a VM in a pool where they may request one."""

    __tablename__ = "vm_requests"
    __table_args__ = (
        CheckConstraint(f"state IN ({_REQUEST_STATES_SQL})", name="state"),
        CheckConstraint("vcpus > 0 AND memory_mib > 0", name="positive"),
        Index("ix_vm_requests_state", "state"),
        Index("ix_vm_requests_user_id", "user_id"),
        Index("ix_vm_requests_pool_id", "pool_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(VM_NAME_MAX))
    vcpus: Mapped[int] = mapped_column()
    memory_mib: Mapped[int] = mapped_column()
    storage_gib: Mapped[int] = mapped_column(default=0)
    #: the profile's name when asked (the row below may later be gone from Cobbler)
    profile: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    vm_id: Mapped[int | None] = mapped_column(ForeignKey("vms.id", ondelete="SET NULL"))
    # -- Cobbler and the provisioning workflow --
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("cobbler_profiles.id", ondelete="SET NULL")
    )
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id", ondelete="SET NULL"))
    #: the latest provisioning task
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    #: why provisioning failed (everything made so far was undone)
    failure_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    pool: Mapped[Pool] = relationship(foreign_keys=[pool_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    vm: Mapped[Vm | None] = relationship(foreign_keys=[vm_id])

    def __repr__(self) -> str:
        return f"<VmRequest {self.id} {self.name} {self.state}>"
