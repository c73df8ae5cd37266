"""The pool tree: create, rename, move and delete pools, list a subtree, count what is in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from zope.interface import Interface

from ..models import Host, Pool, PoolKind, SmartPoolItem, User, Vm
from ..models.pool import ALLOWED_PARENTS, POOL_NAME_MAX, POOL_NAME_PATTERN
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service
from .quotas import QuotaService

_NAME = re.compile(POOL_NAME_PATTERN)

ROOT = "root"
HARDWARE_ROOT = "hardware"
DEFAULT_HARDWARE = "default"
USERS_DIRECTORY = "users"


class IPoolService(Interface):
    """Marker for the pool service."""


def check_pool_name(name: str) -> str:
    """Return a valid pool name (stripped) or raise InvalidInput saying why."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a pool needs a name", {"field": "name"})
    if len(name) > POOL_NAME_MAX:
        raise InvalidInput(f"a pool name has at most {POOL_NAME_MAX} characters", {"field": "name"})
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "a pool name starts with a letter or digit and has only letters, digits,"
            " '.', '_' and '-'",
            {"field": "name"},
        )
    return name


def pool_summary(pool: Pool) -> dict[str, Any]:
    """What the audit log keeps of a pool."""
    return {"name": pool.name, "kind": pool.kind, "parent_id": pool.parent_id, "path": pool.path}


@dataclass
class PoolNode:
    """A pool in a rendered tree, with what its subtree holds."""

    pool: Pool
    hosts: int
    vms: int
    children: list[PoolNode]


class PoolService(Service):
    """Everything that changes or reads the pool tree."""

    # -- reading ---------------------------------------------------------------------------

    def get(self, pool_id: int) -> Pool:
        """The pool with this id, or NotFound."""
        pool = self.dbsession.get(Pool, pool_id)
        if pool is None:
            raise NotFound(f"no pool {pool_id}")
        return pool

    def by_path_names(self, names: str) -> Pool:
        """A pool named by its path of names (``root/hardware/fedora``) or by its bare name
        when that name is unique."""
        parts = [p for p in names.strip("/").split("/") if p]
        if not parts:
            raise NotFound("no pool named ''")
        if len(parts) == 1:
            found = self.dbsession.scalars(select(Pool).where(Pool.name == parts[0])).all()
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidInput(
                    f"{len(found)} pools are named {parts[0]!r}; give the path, such as "
                    + ", ".join(self.name_path(p) for p in found)
                )
            raise NotFound(f"no pool named {parts[0]!r}")
        pool = self.root()
        if parts[0] != pool.name:
            raise NotFound(f"no pool {names!r}")
        for part in parts[1:]:
            child = self.dbsession.scalars(
                select(Pool).where(Pool.parent_id == pool.id, Pool.name == part)
            ).first()
            if child is None:
                raise NotFound(f"no pool {names!r}")
            pool = child
        return pool

    def root(self) -> Pool:
        """The root pool (made by ``fedoracloud initdb``)."""
        pool = self.dbsession.scalars(select(Pool).where(Pool.parent_id.is_(None))).first()
        if pool is None:
            raise NotFound("the pool tree is empty: run 'fedoracloud initdb'")
        return pool

    def ancestors(self, pool: Pool) -> list[Pool]:
        """The pools from the root down to this one's parent, in one query."""
        ids = pool.ancestor_ids[:-1]
        if not ids:
            return []
        found = {p.id: p for p in self.dbsession.scalars(select(Pool).where(Pool.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def name_path(self, pool: Pool) -> str:
        """``root/hardware/fedora`` for a pool."""
        return "/".join([p.name for p in self.ancestors(pool)] + [pool.name])

    def subtree(self, pool: Pool, visible: Any = None) -> list[Pool]:
        """The pool and everything under it, in tree order, in one indexed query."""
        query = select(Pool).where(Pool.path.startswith(pool.path, autoescape=True))
        if visible is not None:
            query = query.where(visible)
        return list(self.dbsession.scalars(query.order_by(Pool.path)))

    def tree(self, visible: Any) -> list[PoolNode]:
        """The visible pools as a forest with subtree host and VM counts (three queries)."""
        pools = list(self.dbsession.scalars(select(Pool).where(visible).order_by(Pool.depth)))
        # count with the same visibility condition as a subquery: no id list to ship
        visible_ids = select(Pool.id).where(visible)
        host_counts = dict(
            self.dbsession.execute(
                select(Host.pool_id, func.count())
                .where(Host.pool_id.in_(visible_ids))
                .group_by(Host.pool_id)
            )
            .tuples()
            .all()
        )
        vm_counts = dict(
            self.dbsession.execute(
                select(Vm.pool_id, func.count())
                .where(Vm.pool_id.in_(visible_ids))
                .group_by(Vm.pool_id)
            )
            .tuples()
            .all()
        )
        nodes = {
            p.id: PoolNode(p, host_counts.get(p.id, 0), vm_counts.get(p.id, 0), []) for p in pools
        }
        roots: list[PoolNode] = []
        for pool in pools:  # ordered by depth: parents come first
            node = nodes[pool.id]
            parent = nodes.get(pool.parent_id) if pool.parent_id is not None else None
            (parent.children if parent else roots).append(node)
        for pool in reversed(pools):  # deepest first: add each subtree to its parent
            node = nodes[pool.id]
            node.children.sort(key=lambda n: n.pool.name)
            parent = nodes.get(pool.parent_id) if pool.parent_id is not None else None
            if parent is not None:
                parent.hosts += node.hosts
                parent.vms += node.vms
        roots.sort(key=lambda n: n.pool.name)
        return roots

    def vms(self, pool: Pool, visible: Any, limit: int = 200) -> list[Vm]:
        """The visible VMs anywhere in a pool's subtree, by name."""
        return list(
            self.dbsession.scalars(
                select(Vm)
                .join(Pool, Pool.id == Vm.pool_id)
                .where(Pool.path.startswith(pool.path, autoescape=True), visible)
                .order_by(Vm.name)
                .limit(limit)
            )
        )

    def children(self, pool: Pool, visible: Any) -> list[Pool]:
        """The visible direct children of a pool."""
        return list(
            self.dbsession.scalars(
                select(Pool).where(Pool.parent_id == pool.id, visible).order_by(Pool.name)
            )
        )

    def search(
        self, visible: Any, kind: str | None = None, offset: int = 0, limit: int = 100
    ) -> tuple[list[Pool], int]:
        """Visible pools in tree order, one page of them, and how many there are."""
        query = select(Pool).where(visible)
        if kind:
            if kind not in {k.value for k in PoolKind}:
                raise InvalidInput(f"unknown pool kind {kind!r}", {"field": "kind"})
            query = query.where(Pool.kind == kind)
        total = self.dbsession.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.dbsession.scalars(query.order_by(Pool.path).offset(offset).limit(limit))
        return list(rows), total

    # -- changing --------------------------------------------------------------------------

    def _check_parent(self, kind: PoolKind, parent: Pool | None) -> None:
        allowed = ALLOWED_PARENTS[kind]
        parent_kind = PoolKind(parent.kind) if parent is not None else None
        if parent_kind in allowed:
            return
        if kind is PoolKind.VM:
            raise InvalidInput("a VM pool must be inside a hardware pool", {"field": "parent"})
        if parent is None:
            raise InvalidInput(f"a {kind} pool needs a parent pool", {"field": "parent"})
        names = " or ".join(str(k) for k in allowed if k is not None)
        raise InvalidInput(
            f"a {kind} pool must be inside a {names} pool, not in the {parent.kind} pool"
            f" {parent.name!r}",
            {"field": "parent"},
        )

    def _check_sibling_free(
        self, parent: Pool | None, name: str, exclude: int | None = None
    ) -> None:
        query = select(Pool.id).where(Pool.name == name)
        query = query.where(
            Pool.parent_id == parent.id if parent is not None else Pool.parent_id.is_(None)
        )
        if exclude is not None:
            query = query.where(Pool.id != exclude)
        if self.dbsession.scalar(query) is not None:
            where = f"in {parent.name!r}" if parent is not None else "at the top"
            raise Conflict(f"a pool named {name!r} already exists {where}", {"field": "name"})

    def _flush(self, what: str) -> None:
        try:
            with self.dbsession.begin_nested():
                self.dbsession.flush()
        except IntegrityError as exc:
            raise Conflict(f"{what} clashes with an existing pool") from exc

    def create(
        self,
        name: str,
        kind: str,
        parent: Pool | None,
        description: str = "",
        owner: User | None = None,
    ) -> Pool:
        """Make a pool under a parent; refuse bad names, kinds in the wrong place, duplicates."""
        name = check_pool_name(name)
        try:
            pool_kind = PoolKind(kind)
        except ValueError:
            raise InvalidInput(
                f"unknown pool kind {kind!r}; one of " + ", ".join(k.value for k in PoolKind),
                {"field": "kind"},
            ) from None
        if (
            parent is None
            and self.dbsession.scalar(select(Pool.id).where(Pool.parent_id.is_(None))) is not None
        ):
            raise InvalidInput("there is already a root pool; give a parent", {"field": "parent"})
        self._check_parent(pool_kind, parent)
        if len(description) > 2000:
            raise InvalidInput(
                "a description has at most 2000 characters", {"field": "description"}
            )
        self._check_sibling_free(parent, name)
        pool = Pool(
            name=name,
            kind=pool_kind.value,
            parent_id=parent.id if parent else None,
            parent_kind=parent.kind if parent else None,
            depth=parent.depth + 1 if parent else 0,
            description=description,
            owner_id=owner.id if owner else None,
            path="",
        )
        self.dbsession.add(pool)
        self._flush(f"pool {name!r}")
        pool.path = f"{parent.path if parent else '/'}{pool.id}/"
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "pool.create",
            "pool",
            pool.id,
            pool_id=pool.id,
            after=pool_summary(pool),
            remote_addr=self.remote_addr,
        )
        return pool

    def rename(self, pool: Pool, name: str) -> Pool:
        """Give a pool a new name, unique among its siblings."""
        name = check_pool_name(name)
        if name == pool.name:
            return pool
        if self._is_builtin(pool) or pool.parent_id is None:
            raise InvalidInput(f"the built-in pool {pool.name!r} cannot be renamed")
        before = pool_summary(pool)
        self._check_sibling_free(pool.parent, name, exclude=pool.id)
        pool.name = name
        self._flush(f"pool name {name!r}")
        record(
            self.dbsession,
            self.actor,
            "pool.rename",
            "pool",
            pool.id,
            pool_id=pool.id,
            before=before,
            after=pool_summary(pool),
            remote_addr=self.remote_addr,
        )
        return pool

    def move(self, pool: Pool, new_parent: Pool) -> Pool:
        """Put a pool (and its subtree) under another parent, refusing cycles."""
        if pool.parent_id is None:
            raise InvalidInput("the root pool cannot be moved")
        if new_parent.path.startswith(pool.path):
            raise InvalidInput(
                f"cannot move {pool.name!r} into itself or one of its own sub-pools",
                {"field": "parent"},
            )
        if new_parent.id == pool.parent_id:
            return pool
        self._check_parent(PoolKind(pool.kind), new_parent)
        if self._is_builtin(pool):
            raise InvalidInput(f"the built-in pool {pool.name!r} cannot be moved")
        self._check_sibling_free(new_parent, pool.name, exclude=pool.id)
        before = pool_summary(pool)
        old_prefix = pool.path
        new_prefix = f"{new_parent.path}{pool.id}/"
        depth_change = new_parent.depth + 1 - pool.depth
        # one statement rewrites the whole subtree's paths
        self.dbsession.execute(
            update(Pool)
            .where(Pool.path.startswith(old_prefix, autoescape=True))
            .values(
                path=new_prefix + func.substr(Pool.path, len(old_prefix) + 1),
                depth=Pool.depth + depth_change,
            )
            .execution_options(synchronize_session=False)
        )
        self.dbsession.execute(
            update(Pool)
            .where(Pool.id == pool.id)
            .values(parent_id=new_parent.id, parent_kind=new_parent.kind)
            .execution_options(synchronize_session=False)
        )
        self._flush(f"moving {pool.name!r}")
        self.dbsession.expire_all()
        record(
            self.dbsession,
            self.actor,
            "pool.move",
            "pool",
            pool.id,
            pool_id=pool.id,
            before=before,
            after=pool_summary(pool),
            remote_addr=self.remote_addr,
        )
        return pool

    def delete(self, pool: Pool) -> None:
        """Delete an empty pool; say what is still inside otherwise."""
        if pool.parent_id is None:
            raise InvalidInput("the root pool cannot be deleted")
        if self._is_builtin(pool):
            raise InvalidInput(f"the built-in pool {pool.name!r} cannot be deleted")
        contents = []
        children = self.dbsession.scalar(
            select(func.count()).select_from(Pool).where(Pool.parent_id == pool.id)
        )
        hosts = self.dbsession.scalar(
            select(func.count()).select_from(Host).where(Host.pool_id == pool.id)
        )
        vms = self.dbsession.scalar(
            select(func.count()).select_from(Vm).where(Vm.pool_id == pool.id)
        )
        for count, what in ((children, "sub-pool"), (hosts, "host"), (vms, "VM")):
            if count:
                contents.append(f"{count} {what}{'s' if count != 1 else ''}")
        if contents:
            raise Conflict(
                f"pool {pool.name!r} is not empty: it holds "
                + ", ".join(contents)
                + "; move or delete them first"
            )
        before = pool_summary(pool)
        self.dbsession.execute(
            delete(SmartPoolItem).where(
                SmartPoolItem.item_kind == "pool", SmartPoolItem.item_id == pool.id
            )
        )
        record(
            self.dbsession,
            self.actor,
            "pool.delete",
            "pool",
            pool.id,
            before=before,
            remote_addr=self.remote_addr,
        )
        self.dbsession.delete(pool)
        self.dbsession.flush()

    def _is_builtin(self, pool: Pool) -> bool:
        path = self.name_path(pool)
        return path in (
            f"{ROOT}/{HARDWARE_ROOT}",
            f"{ROOT}/{HARDWARE_ROOT}/{DEFAULT_HARDWARE}",
            f"{ROOT}/{USERS_DIRECTORY}",
        )

    def ensure_builtin(self) -> dict[str, Pool]:
        """Create root, root/hardware, root/hardware/default and root/users if missing."""
        root = self.dbsession.scalars(select(Pool).where(Pool.parent_id.is_(None))).first()
        if root is None:
            root = self.create(ROOT, PoolKind.DIRECTORY, None, "The whole cloud")
        QuotaService(self.ctx).ensure_root_default(root)
        made = {"root": root}
        for key, name, kind, parent_key, description in (
            ("hardware", HARDWARE_ROOT, PoolKind.HARDWARE, "root", "All hosts"),
            ("default", DEFAULT_HARDWARE, PoolKind.HARDWARE, "hardware", "New hosts land here"),
            ("users", USERS_DIRECTORY, PoolKind.DIRECTORY, "root", "Each user's smart pools"),
        ):
            parent = made[parent_key]
            pool = self.dbsession.scalars(
                select(Pool).where(Pool.parent_id == parent.id, Pool.name == name)
            ).first()
            made[key] = pool or self.create(name, kind, parent, description)
        return made

    def ensure_child(self, parent: Pool, name: str, kind: PoolKind, description: str = "") -> Pool:
        """The named child of a pool, created if missing (for the demo and scripts)."""
        pool = self.dbsession.scalars(
            select(Pool).where(Pool.parent_id == parent.id, Pool.name == name)
        ).first()
        return pool or self.create(name, kind, parent, description)
