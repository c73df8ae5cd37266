"""The pool tree (directory, hardware, VM and smart pools), smart pool items and quotas.

The tree is a materialized path: ``path`` is ``/<root id>/.../<own id>/``, so a subtree is
one indexed prefix query.  Composite foreign keys on (id, kind) let the database itself
refuse a VM pool outside a hardware pool, a host outside a hardware pool, a VM outside a
VM pool.
"""

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


class PoolKind(StrEnum):
    """What a pool holds."""

    DIRECTORY = "directory"
    HARDWARE = "hardware"
    VM = "vm"
    SMART = "smart"


#: which kinds of parent each kind of pool may have (None: may be the root)
ALLOWED_PARENTS: dict[PoolKind, tuple[PoolKind | None, ...]] = {
    PoolKind.DIRECTORY: (None, PoolKind.DIRECTORY),
    PoolKind.HARDWARE: (PoolKind.DIRECTORY, PoolKind.HARDWARE),
    PoolKind.VM: (PoolKind.HARDWARE,),
    PoolKind.SMART: (PoolKind.DIRECTORY,),
}

POOL_NAME_MAX = 64
POOL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

_KINDS_SQL = ", ".join(f"'{k.value}'" for k in PoolKind)


class Pool(Base, Timestamped):
    """One node of the pool tree."""

    __tablename__ = "pools"
    __table_args__ = (
        UniqueConstraint("id", "kind", name="uq_pools_id_kind"),
        UniqueConstraint("parent_id", "name"),
        ForeignKeyConstraint(
            ["parent_id", "parent_kind"],
            ["pools.id", "pools.kind"],
            name="fk_pools_parent",
        ),
        CheckConstraint(f"kind IN ({_KINDS_SQL})", name="kind"),
        CheckConstraint(
            "(kind = 'directory' AND (parent_id IS NULL OR parent_kind = 'directory'))"
            " OR (kind = 'hardware' AND parent_kind IN ('directory', 'hardware'))"
            " OR (kind = 'vm' AND parent_kind = 'hardware')"
            " OR (kind = 'smart' AND parent_kind = 'directory')",
            name="parent_kind",
        ),
        CheckConstraint("(parent_id IS NULL) = (parent_kind IS NULL)", name="parent_pair"),
        Index(
            "uq_pools_single_root",
            "kind",
            unique=True,
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
        Index("ix_pools_path", "path", postgresql_ops={"path": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(POOL_NAME_MAX))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column()
    parent_kind: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024), default="")
    depth: Mapped[int] = mapped_column(default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))

    parent: Mapped[Pool | None] = relationship(
        remote_side="Pool.id",
        foreign_keys="Pool.parent_id",
        primaryjoin="Pool.parent_id == Pool.id",
        back_populates="children",
    )
    children: Mapped[list[Pool]] = relationship(
        foreign_keys="Pool.parent_id",
        primaryjoin="Pool.parent_id == Pool.id",
        back_populates="parent",
        order_by="Pool.name",
        viewonly=True,
    )
    quota: Mapped[Quota | None] = relationship(back_populates="pool", uselist=False)

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids from the root down to this pool, itself included."""
        return [int(p) for p in self.path.strip("/").split("/") if p]

    def __repr__(self) -> str:
        return f"<Pool {self.id} {self.kind} {self.name!r}>"


class SmartPoolItem(Base, Timestamped):
    """A bookmark in a smart pool: a host, a VM or another pool.  It grants nothing."""

    __tablename__ = "smart_pool_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["pool_id", "pool_kind"], ["pools.id", "pools.kind"], ondelete="CASCADE"
        ),
        CheckConstraint("pool_kind = 'smart'", name="pool_is_smart"),
        CheckConstraint("item_kind IN ('host', 'vm', 'pool')", name="item_kind"),
        UniqueConstraint("pool_id", "item_kind", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column()
    pool_kind: Mapped[str] = mapped_column(String(16), default=PoolKind.SMART.value)
    item_kind: Mapped[str] = mapped_column(String(8))
    item_id: Mapped[int] = mapped_column()


class Quota(Base):
    """Limits for a pool's subtree; a NULL limit is inherited from the nearest ancestor."""

    __tablename__ = "quotas"
    __table_args__ = (
        CheckConstraint(
            "(vcpus IS NULL OR vcpus >= 0) AND (memory_mib IS NULL OR memory_mib >= 0)"
            " AND (vms IS NULL OR vms >= 0) AND (nics IS NULL OR nics >= 0)"
            " AND (storage_gib IS NULL OR storage_gib >= 0)",
            name="non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), unique=True)
    vcpus: Mapped[int | None] = mapped_column()
    memory_mib: Mapped[int | None] = mapped_column()
    vms: Mapped[int | None] = mapped_column()
    nics: Mapped[int | None] = mapped_column()
    storage_gib: Mapped[int | None] = mapped_column()
    updated_at: Mapped[datetime | None] = mapped_column()

    pool: Mapped[Pool] = relationship(back_populates="quota")
