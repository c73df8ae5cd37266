"""Storage: the storage servers (master and secondary), storage pools on them, and volumes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped
from .pool import Pool

#: the kinds of storage pool FedoraCloud defines on its hosts (libvirt's pool types)
STORAGE_POOL_KINDS = ("iscsi", "iscsi-direct", "logical", "netfs", "dir")
STORAGE_SERVER_ROLES = ("master", "secondary")
#: the kinds in which libvirt makes new volumes (an iSCSI target's LUNs are made on the
#: storage server, not by the hosts)
VOLUME_MAKING_KINDS = ("dir", "netfs", "logical")

#: which hardware pools use a storage pool: it is defined on every host of each
storage_pool_hardware_pools = Table(
    "storage_pool_hardware_pools",
    Base.metadata,
    Column(
        "storage_pool_id",
        ForeignKey("storage_pools.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("hardware_pool_id", ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
)


class StorageServer(Base, Timestamped):
    """A box exporting storage; a master may replicate to a secondary."""

    __tablename__ = "storage_servers"
    __table_args__ = (
        CheckConstraint("role IN ('master', 'secondary')", name="role"),
        CheckConstraint("replicates_to_id IS NULL OR replicates_to_id <> id", name="no_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    address: Mapped[str] = mapped_column(String(45), default="")
    role: Mapped[str] = mapped_column(String(16), default="master")
    replicates_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_servers.id", ondelete="SET NULL")
    )
    capacity_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: when a check last reached the server's iSCSI portal, and what the last check said
    last_seen_at: Mapped[datetime | None] = mapped_column()
    checked_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")

    replicates_to: Mapped[StorageServer | None] = relationship(
        remote_side="StorageServer.id", foreign_keys=[replicates_to_id]
    )
    storage_pools: Mapped[list[StoragePool]] = relationship(
        back_populates="server", order_by="StoragePool.name"
    )

    def __repr__(self) -> str:
        return f"<StorageServer {self.hostname} {self.role}>"


class StoragePool(Base, Timestamped):
    """A libvirt storage pool: iSCSI target+LUN, LVM VG on an iSCSI LUN, NFS, or directory.

    ``portal_address``/``port`` are the iSCSI portal (or the NFS server and no port);
    ``source_path`` is the NFS export; ``target_path`` the directory (``dir``), the mount
    point (``netfs``) or the device directory; ``volume_group`` and ``parent_pool`` say
    which VG on which iSCSI pool's LUN ``lun`` an LVM pool is."""

    __tablename__ = "storage_pools"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('iscsi', 'iscsi-direct', 'logical', 'netfs', 'dir')", name="kind"
        ),
        CheckConstraint("port IS NULL OR (port > 0 AND port < 65536)", name="port"),
        CheckConstraint("lun IS NULL OR lun >= 0", name="lun"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    server_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_servers.id", ondelete="RESTRICT")
    )
    portal_address: Mapped[str | None] = mapped_column(String(253))
    port: Mapped[int | None] = mapped_column()
    target_iqn: Mapped[str | None] = mapped_column(String(223))
    #: the initiator name hosts log in with (iscsi-direct); empty: one per host
    initiator_iqn: Mapped[str | None] = mapped_column(String(223))
    lun: Mapped[int | None] = mapped_column()
    source_path: Mapped[str | None] = mapped_column(String(4096))
    target_path: Mapped[str | None] = mapped_column(String(4096))
    volume_group: Mapped[str | None] = mapped_column(String(128))
    parent_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("storage_pools.id", ondelete="RESTRICT")
    )
    capacity_bytes: Mapped[int | None] = mapped_column(BigInteger)
    allocation_bytes: Mapped[int | None] = mapped_column(BigInteger)
    available_bytes: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="defined")
    #: what the last define or refresh on the hosts said when it failed ('' when fine)
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    refreshed_at: Mapped[datetime | None] = mapped_column()

    server: Mapped[StorageServer | None] = relationship(back_populates="storage_pools")
    parent_pool: Mapped[StoragePool | None] = relationship(
        remote_side="StoragePool.id", foreign_keys=[parent_pool_id]
    )
    hardware_pools: Mapped[list[Pool]] = relationship(
        secondary=storage_pool_hardware_pools, order_by="Pool.name"
    )
    volumes: Mapped[list[StorageVolume]] = relationship(
        back_populates="storage_pool",
        cascade="all, delete-orphan",
        order_by="StorageVolume.name",
    )

    def __repr__(self) -> str:
        return f"<StoragePool {self.name} {self.kind}>"


class StorageVolume(Base, Timestamped):
    """A volume in a storage pool (a LUN, an LV, a file)."""

    __tablename__ = "storage_volumes"
    __table_args__ = (
        UniqueConstraint("storage_pool_id", "name"),
        CheckConstraint("capacity_bytes >= 0", name="capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    storage_pool_id: Mapped[int] = mapped_column(ForeignKey("storage_pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(1024))
    path: Mapped[str | None] = mapped_column(String(4096))
    format: Mapped[str] = mapped_column(String(16), default="raw")
    capacity_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    allocation_bytes: Mapped[int | None] = mapped_column(BigInteger)

    storage_pool: Mapped[StoragePool] = relationship(back_populates="volumes")
