"""Networks (physical or VLAN; guest, management, storage), IP pools and allocated addresses.

A network is carried to the nodes of the hardware pools it is attached to (and of their
sub-pools) as a bridge on a node interface, or on a VLAN of it.  An IP pool's addresses
are materialized as ``ip_addresses`` rows, one per address, so that handing one out is a
row lock (``SELECT ... FOR UPDATE SKIP LOCKED``), never a search for a gap.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped

if TYPE_CHECKING:
    from .pool import Pool
    from .vm import VmNic

#: which hardware pools (and so their sub-pools' hosts) carry which networks
network_hardware_pools = Table(
    "network_hardware_pools",
    Base.metadata,
    Column("network_id", ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("pool_id", ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
)


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
    #: the node interface the bridge (or the VLAN under it) sits on
    interface: Mapped[str] = mapped_column(String(15), default="eth0", server_default="eth0")
    description: Mapped[str] = mapped_column(String(255), default="", server_default="")

    ip_pools: Mapped[list[IpPool]] = relationship(back_populates="network", order_by="IpPool.id")
    hardware_pools: Mapped[list[Pool]] = relationship(
        secondary=network_hardware_pools, order_by="Pool.path"
    )


class IpPool(Base, Timestamped):
    """A range of addresses of a network handed out to VM NICs (the ~80 public IPs)."""

    __tablename__ = "ip_pools"
    __table_args__ = (Index("ix_ip_pools_network_id", "network_id"),)

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

    ip_pool: Mapped[IpPool] = relationship()
    nic: Mapped[VmNic | None] = relationship(viewonly=True)
