"""Hosts (the oVirt Host table): a KVM node, its CPUs and NICs."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped
from .pool import Pool, PoolKind

HOSTNAME_MAX = 253
#: RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAC_PATTERN = r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$"


class HostState(StrEnum):
    """Where a host stands in its life."""

    PENDING = "pending"
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    MAINTENANCE = "maintenance"
    DISABLED = "disabled"
    REJECTED = "rejected"


_STATES_SQL = ", ".join(f"'{s.value}'" for s in HostState)


class Host(Base, Timestamped):
    """A KVM node; it belongs to exactly one hardware pool."""

    __tablename__ = "hosts"
    __table_args__ = (
        ForeignKeyConstraint(["pool_id", "pool_kind"], ["pools.id", "pools.kind"]),
        CheckConstraint("pool_kind = 'hardware'", name="pool_is_hardware"),
        CheckConstraint(f"state IN ({_STATES_SQL})", name="state"),
        CheckConstraint("memory_mib >= 0 AND cpu_count >= 0", name="non_negative"),
        Index("ix_hosts_pool_id", "pool_id"),
        Index("ix_hosts_hostname", "hostname"),
        # the approvals inbox counts the hosts waiting for approval on every admin page
        Index(
            "ix_hosts_pending",
            "state",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    hostname: Mapped[str] = mapped_column(String(HOSTNAME_MAX))
    pool_id: Mapped[int] = mapped_column()
    pool_kind: Mapped[str] = mapped_column(String(16), default=PoolKind.HARDWARE.value)
    state: Mapped[str] = mapped_column(String(16), default=HostState.PENDING.value)
    arch: Mapped[str] = mapped_column(String(32), default="")
    hypervisor: Mapped[str] = mapped_column(String(32), default="")
    hypervisor_version: Mapped[str] = mapped_column(String(32), default="")
    libvirt_version: Mapped[str] = mapped_column(String(32), default="")
    libvirt_uri: Mapped[str] = mapped_column(String(512), default="")
    memory_mib: Mapped[int] = mapped_column(default=0)
    free_memory_mib: Mapped[int | None] = mapped_column()
    cpu_count: Mapped[int] = mapped_column(default=0)
    cpu_mhz: Mapped[int | None] = mapped_column()
    load_average: Mapped[float | None] = mapped_column()
    last_seen_at: Mapped[datetime | None] = mapped_column()
    state_reason: Mapped[str] = mapped_column(Text, default="")
    #: the address the node enrolled from (its management IP; a SAN of its certificate)
    management_address: Mapped[str | None] = mapped_column(String(45))

    pool: Mapped[Pool] = relationship(foreign_keys=[pool_id], primaryjoin="Host.pool_id == Pool.id")
    cpus: Mapped[list[HostCpu]] = relationship(
        back_populates="host", cascade="all, delete-orphan", order_by="HostCpu.cpu_index"
    )
    nics: Mapped[list[HostNic]] = relationship(
        back_populates="host", cascade="all, delete-orphan", order_by="HostNic.name"
    )

    def __repr__(self) -> str:
        return f"<Host {self.hostname} {self.uuid}>"


class HostCpu(Base):
    """One logical CPU of a host."""

    __tablename__ = "host_cpus"
    __table_args__ = (UniqueConstraint("host_id", "cpu_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    cpu_index: Mapped[int] = mapped_column()
    socket: Mapped[int] = mapped_column(default=0)
    core: Mapped[int] = mapped_column(default=0)
    thread: Mapped[int] = mapped_column(default=0)
    vendor: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    speed_mhz: Mapped[int | None] = mapped_column()
    flags: Mapped[str] = mapped_column(Text, default="")

    host: Mapped[Host] = relationship(back_populates="cpus")


class HostNic(Base):
    """A network interface of a host."""

    __tablename__ = "host_nics"
    __table_args__ = (UniqueConstraint("host_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    speed_mbps: Mapped[int | None] = mapped_column()
    ip_address: Mapped[str | None] = mapped_column(String(45))
    prefix_length: Mapped[int | None] = mapped_column()

    host: Mapped[Host] = relationship(back_populates="nics")
