"""Smart pools: each user's own bookmark collections of hosts, VMs and pools.

The seed: "just bookmark-like to manage things easier … a shortcut menu at the bottom left
of the page".  They live under ``root/users/<username>``, belong to their owner alone,
grant nothing, and show only items their owner may still view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import Host, Pool, PoolKind, SmartPoolItem, User, Vm
from . import Conflict, InvalidInput, NotFound
from .pools import USERS_DIRECTORY, PoolService

ITEM_KINDS = {"host": Host, "vm": Vm, "pool": Pool}
ITEMS_MAX = 500


@dataclass
class SmartItem:
    """A bookmark the owner may still view."""

    kind: str
    obj: Any


class SmartPoolService:
    """A user's smart pools."""

    def __init__(self, dbsession: Session, actor: Any = None, remote_addr: str = "") -> None:
        self.dbsession = dbsession
        self.actor = actor
        self.pools = PoolService(dbsession, actor, remote_addr)

    def directory(self, user: User) -> Pool:
        """``root/users/<username>``, made on first use."""
        users = self.pools.ensure_builtin()["users"]
        home = self.dbsession.scalars(
            select(Pool).where(Pool.parent_id == users.id, Pool.owner_id == user.id)
        ).first()
        if home is None:
            home = self.pools.ensure_child(
                users, user.username, PoolKind.DIRECTORY, f"{user.username}'s smart pools"
            )
            home.owner_id = user.id
        return home

    def list_for(self, user: User) -> list[Pool]:
        """The user's smart pools, by name."""
        return list(
            self.dbsession.scalars(
                select(Pool)
                .where(Pool.kind == PoolKind.SMART.value, Pool.owner_id == user.id)
                .order_by(Pool.name)
            )
        )

    def get(self, user: User, pool_id: int) -> Pool:
        """One of the user's smart pools; anyone else's is NotFound."""
        pool = self.dbsession.get(Pool, pool_id)
        if pool is None or pool.kind != PoolKind.SMART or pool.owner_id != user.id:
            raise NotFound(f"no smart pool {pool_id}")
        return pool

    def create(self, user: User, name: str) -> Pool:
        pool = self.pools.create(name, PoolKind.SMART, self.directory(user))
        pool.owner_id = user.id
        self.dbsession.flush()
        return pool

    def rename(self, pool: Pool, name: str) -> Pool:
        return self.pools.rename(pool, name)

    def delete(self, pool: Pool) -> None:
        self.dbsession.execute(delete(SmartPoolItem).where(SmartPoolItem.pool_id == pool.id))
        self.pools.delete(pool)

    def add(self, pool: Pool, kind: str, item_id: int) -> SmartPoolItem:
        """Bookmark a host, VM or pool (the caller checked the owner may view it)."""
        model = ITEM_KINDS.get(kind)
        if model is None:
            raise InvalidInput("a smart pool holds hosts, VMs and pools", {"field": "kind"})
        if self.dbsession.get(model, item_id) is None:
            raise NotFound(f"no {kind} {item_id}")
        existing = self.dbsession.scalars(
            select(SmartPoolItem).where(
                SmartPoolItem.pool_id == pool.id,
                SmartPoolItem.item_kind == kind,
                SmartPoolItem.item_id == item_id,
            )
        ).first()
        if existing is not None:
            raise Conflict(f"this {kind} is already in {pool.name}")
        count = len(
            self.dbsession.scalars(
                select(SmartPoolItem.id).where(SmartPoolItem.pool_id == pool.id)
            ).all()
        )
        if count >= ITEMS_MAX:
            raise Conflict(f"a smart pool holds at most {ITEMS_MAX} items")
        item = SmartPoolItem(pool_id=pool.id, item_kind=kind, item_id=item_id)
        self.dbsession.add(item)
        self.dbsession.flush()
        return item

    def remove(self, pool: Pool, kind: str, item_id: int) -> None:
        self.dbsession.execute(
            delete(SmartPoolItem).where(
                SmartPoolItem.pool_id == pool.id,
                SmartPoolItem.item_kind == kind,
                SmartPoolItem.item_id == item_id,
            )
        )

    def items(self, pool: Pool, visible: Any) -> list[SmartItem]:
        """The bookmarks whose target still exists and the owner may still view."""
        ids: dict[str, list[int]] = {k: [] for k in ITEM_KINDS}
        for item in self.dbsession.scalars(
            select(SmartPoolItem).where(SmartPoolItem.pool_id == pool.id)
        ):
            ids[item.item_kind].append(item.item_id)
        result: list[SmartItem] = []
        if ids["pool"]:
            result += [
                SmartItem("pool", p)
                for p in self.dbsession.scalars(
                    select(Pool).where(Pool.id.in_(ids["pool"]), visible).order_by(Pool.name)
                )
            ]
        if ids["host"]:
            result += [
                SmartItem("host", h)
                for h in self.dbsession.scalars(
                    select(Host)
                    .join(Pool, Pool.id == Host.pool_id)
                    .where(Host.id.in_(ids["host"]), visible)
                    .order_by(Host.hostname)
                )
            ]
        if ids["vm"]:
            result += [
                SmartItem("vm", v)
                for v in self.dbsession.scalars(
                    select(Vm)
                    .join(Pool, Pool.id == Vm.pool_id)
                    .where(Vm.id.in_(ids["vm"]), visible)
                    .order_by(Vm.name)
                )
            ]
        return result


__all__ = ["USERS_DIRECTORY", "SmartPoolService"]
