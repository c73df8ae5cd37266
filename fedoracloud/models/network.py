"""Networks (physical or VLAN; guest, management, storage), IP pools and allocated addresses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped


class Network(Base, Timestamped):
    """A network the nodes are attached to, through a bridge."""

    __tablename__ = "networks"
    __table_args__ = (
        CheckConstraint("kind IN ('physical', 'vlan')", name="kind"),
        CheckConstraint("usage IN ('guest', 'management', 'storage')", name="usage"),
        CheckConstraint(
            "(kind = 'vlan' AND vlan_id BETWEEN 1 AND 4094)"
            " OR (kind = 'physical' AND vlan_id IS NULL)",
            name="vlan_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="physical")
    vlan_id: Mapped[int | None] = mapped_column()
    usage: Mapped[str] = mapped_column(String(16), default="guest")
    bridge: Mapped[str] = mapped_column(String(15))
    cidr: Mapped[str] = mapped_column(String(43))
    gateway: Mapped[str | None] = mapped_column(String(45))

    ip_pools: Mapped[list[IpPool]] = relationship(back_populates="network")


class IpPool(Base, Timestamped):
    """A range of addresses of a network handed out to VM NICs (the ~80 public IPs)."""

    __tablename__ = "ip_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    first_address: Mapped[str] = mapped_column(String(45))
    last_address: Mapped[str] = mapped_column(String(45))

    network: Mapped[Network] = relationship(back_populates="ip_pools")


class IpAddress(Base):
    """One address of an IP pool; allocated when it points at a VM NIC."""

    __tablename__ = "ip_addresses"
    __table_args__ = (UniqueConstraint("ip_pool_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ip_pool_id: Mapped[int] = mapped_column(ForeignKey("ip_pools.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(45))
    vm_nic_id: Mapped[int | None] = mapped_column(
        ForeignKey("vm_nics.id", ondelete="SET NULL"), unique=True
    )
    allocated_at: Mapped[datetime | None] = mapped_column()
