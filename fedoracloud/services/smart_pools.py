"""Smart pools: each user's own bookmark collections of hosts, VMs and pools.

The seed: "just bookmark-like to manage things easier … a shortcut menu at the bottom left
of the page".  They live under ``root/users/<username>``, belong to their owner alone,
grant nothing, and show only items their owner may still view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload
from zope.interface import Interface

from ..models import Host, Pool, PoolKind, SmartPoolItem, User, Vm
from . import Conflict, InvalidInput, NotFound
from .context import Service, ServiceContext
from .pools import USERS_DIRECTORY, PoolService, check_pool_name

ITEM_KINDS = {"host": Host, "vm": Vm, "pool": Pool}
ITEMS_MAX = 500


@dataclass
class SmartItem:
    """A bookmark the owner may still view."""

    kind: str
    obj: Any


class ISmartPoolService(Interface):
    """Marker for pyramid-services: ``request.find_service(ISmartPoolService)``."""


class SmartPoolService(Service):
    """A user's smart pools."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.pools = PoolService(ctx)

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

    def item(self, kind: str, item_id: int) -> Host | Vm | Pool | None:
        """The host, VM or pool a bookmark names (``kind`` one of ITEM_KINDS), if it exists."""
        found = self.dbsession.get(ITEM_KINDS[kind], item_id)
        return found if isinstance(found, Host | Vm | Pool) else None

    def get(self, user: User, pool_id: int) -> Pool:
        """One of the user's smart pools; anyone else's is NotFound."""
        pool = self.dbsession.get(Pool, pool_id)
        if pool is None or pool.kind != PoolKind.SMART or pool.owner_id != user.id:
            raise NotFound(f"no smart pool {pool_id}")
        return pool

    def _check_name_free(self, user: User, name: str, exclude: int | None = None) -> str:
        name = check_pool_name(name)
        query = select(Pool.id).where(
            Pool.kind == PoolKind.SMART.value, Pool.owner_id == user.id, Pool.name == name
        )
        if exclude is not None:
            query = query.where(Pool.id != exclude)
        if self.dbsession.scalar(query) is not None:
            raise Conflict(f"you already have a smart pool named {name!r}", {"field": "name"})
        return name

    def create(self, user: User, name: str) -> Pool:
        """Make a smart pool for the user (checked before anything is written)."""
        name = self._check_name_free(user, name)
        pool = self.pools.create(name, PoolKind.SMART, self.directory(user))
        pool.owner_id = user.id
        self.dbsession.flush()
        return pool

    def rename(self, pool: Pool, name: str) -> Pool:
        """Rename a smart pool; its owner's other smart pools keep their names."""
        if pool.owner_id is not None:
            owner = self.dbsession.get(User, pool.owner_id)
            if owner is not None:
                name = self._check_name_free(owner, name, exclude=pool.id)
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
        count = self.dbsession.scalar(
            select(func.count()).select_from(SmartPoolItem).where(SmartPoolItem.pool_id == pool.id)
        )
        if (count or 0) >= ITEMS_MAX:
            raise Conflict(f"a smart pool holds at most {ITEMS_MAX} items")
        item = SmartPoolItem(pool_id=pool.id, item_kind=kind, item_id=item_id)
        self.dbsession.add(item)
        self.dbsession.flush()
        return item

    def remove(self, pool: Pool, kind: str, item_id: int) -> None:
        """Take a bookmark out; NotFound if it is not there."""
        if kind not in ITEM_KINDS:
            raise InvalidInput("a smart pool holds hosts, VMs and pools", {"field": "kind"})
        item = self.dbsession.scalars(
            select(SmartPoolItem).where(
                SmartPoolItem.pool_id == pool.id,
                SmartPoolItem.item_kind == kind,
                SmartPoolItem.item_id == item_id,
            )
        ).first()
        if item is None:
            raise NotFound(f"there is no {kind} {item_id} in {pool.name}")
        self.dbsession.delete(item)
        self.dbsession.flush()

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
                    .options(selectinload(Host.pool))
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
                    .options(selectinload(Vm.pool), selectinload(Vm.host))
                    .order_by(Vm.name)
                )
            ]
        return result


__all__ = ["USERS_DIRECTORY", "SmartPoolService"]
