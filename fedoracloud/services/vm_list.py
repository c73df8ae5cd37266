"""The VM list: VMs in the pools a user may view, filtered, sorted and paginated in SQL.

A page is asked for by number (``page``: rows skipped with OFFSET) or, cheaper however
deep, by a cursor (``after``: the rows after the last one of the previous page, found
through the sort column's index); every page gives the cursor of the next one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, contains_eager
from zope.interface import Interface

from ..models import Host, Pool, Task, Vm, VmState
from ..models.vm import VM_NAME_MAX
from . import InvalidInput, NotFound
from .context import Service

SORT_COLUMNS = {
    "name": Vm.name,
    "state": Vm.state,
    "vcpus": Vm.vcpus,
    "memory": Vm.memory_mib,
    "host": Host.hostname,
    "pool": Pool.name,
}
#: the sorts whose values are numbers (the others are text)
NUMERIC_SORTS = frozenset({"vcpus", "memory"})
#: a cursor is short: a sort, a value (at most a name or a host name), an id
CURSOR_MAX = 1024


@dataclass(frozen=True)
class Cursor:
    """Where a page of the VM list ends: the sort (``-`` first when descending), the last
    row's value in that sort and its id.  Clients get it in ``next`` links, opaque."""

    sort: str
    value: str | int | None
    vm_id: int

    def encode(self) -> str:
        """The cursor as an ``after`` parameter: base64url of a short JSON list."""
        raw = json.dumps([self.sort, self.value, self.vm_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """A cursor this list gave, or InvalidInput (field ``after``)."""
        refused = InvalidInput(
            "after must be the cursor of a 'next' link of this list", {"field": "after"}
        )
        if len(text) > CURSOR_MAX:
            raise refused
        try:
            raw = base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))
            sort, value, vm_id = json.loads(raw)
        except (binascii.Error, ValueError, TypeError):
            raise refused from None
        known = isinstance(sort, str) and sort.removeprefix("-") in SORT_COLUMNS
        numeric = known and sort.removeprefix("-") in NUMERIC_SORTS
        typed = (
            (isinstance(value, int) and not isinstance(value, bool))
            if numeric
            else (isinstance(value, str) or (value is None and sort.removeprefix("-") == "host"))
        )
        whole = isinstance(vm_id, int) and not isinstance(vm_id, bool) and 0 < vm_id < 2**31
        if not (known and typed and whole):
            raise refused
        return cls(sort, value, vm_id)


@dataclass
class VmQuery:
    """A VM list request: filter, sort, page."""

    q: str = ""
    state: str = ""
    pool_id: int | None = None
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = 25
    #: a cursor (``Cursor.encode``): the page after that row; ``page`` only numbers it
    after: str = ""

    @property
    def sort_key(self) -> str:
        """The sort as the URL spells it: ``name``, ``-vcpus``."""
        return f"-{self.sort}" if self.descending else self.sort

    def cursor(self) -> Cursor | None:
        """The ``after`` cursor, checked against this query's sort."""
        if not self.after:
            return None
        cursor = Cursor.decode(self.after)
        if cursor.sort != self.sort_key:
            raise InvalidInput(
                f"this cursor belongs to the list sorted by {cursor.sort!r}, not"
                f" {self.sort_key!r}: start again from the first page",
                {"field": "after"},
            )
        return cursor

    def validate(self) -> VmQuery:
        if self.state and self.state not in {s.value for s in VmState}:
            raise InvalidInput(f"unknown VM state {self.state[:32]!r}", {"field": "state"})
        if self.sort not in SORT_COLUMNS:
            raise InvalidInput(
                f"cannot sort VMs by {self.sort[:32]!r}; by one of " + ", ".join(SORT_COLUMNS),
                {"field": "sort"},
            )
        if self.page < 1 or self.page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        if len(self.q) > VM_NAME_MAX:
            raise InvalidInput(f"a search has at most {VM_NAME_MAX} characters", {"field": "q"})
        self.cursor()
        return self


@dataclass
class VmPage:
    """One page of the VM list: its VMs, how many match in all, and the cursor of the
    next page (None on the last one)."""

    items: list[Vm]
    total: int
    next_after: str | None = None


class IVmListService(Interface):
    """Marker for pyramid-services: ``request.find_service(IVmListService)``."""


class VmListService(Service):
    """Reading the VM list."""

    def search(self, query: VmQuery, visible: Any) -> VmPage:
        """One page of the VMs in visible pools, with their pool and host, the total and
        the next page's cursor (two queries whatever the page size and depth)."""
        query.validate()
        stmt = select(Vm).join(Vm.pool).outerjoin(Vm.host).where(visible)
        if query.q:
            stmt = stmt.where(Vm.name.icontains(query.q, autoescape=True))
        if query.state:
            stmt = stmt.where(Vm.state == query.state)
        if query.pool_id is not None:
            pool = self.dbsession.get(Pool, query.pool_id)
            if pool is None:
                raise NotFound(f"no pool {query.pool_id}")
            stmt = stmt.where(Pool.path.startswith(pool.path, autoescape=True))
        total = (
            self.dbsession.scalar(
                select(func.count()).select_from(stmt.with_only_columns(Vm.id).subquery())
            )
            or 0
        )
        column = SORT_COLUMNS[query.sort]
        order = column.desc() if query.descending else column.asc()
        if query.sort == "host":  # VMs on no host go last either way
            order = order.nulls_last()
        cursor = query.cursor()
        # the page's ids first (narrow rows: skipping a deep page's predecessors is cheap),
        # one more than a page to know whether another follows; then those rows in full
        ids = stmt.with_only_columns(Vm.id).order_by(order, Vm.id).limit(query.per_page + 1)
        if cursor is not None:
            ids = ids.where(_after(column, query, cursor))
        else:
            ids = ids.offset((query.page - 1) * query.per_page)
        page = ids.subquery()
        rows = list(
            self.dbsession.scalars(
                select(Vm)
                .join(page, page.c.id == Vm.id)
                .join(Vm.pool)
                .outerjoin(Vm.host)
                .options(contains_eager(Vm.pool), contains_eager(Vm.host))
                .order_by(order, Vm.id)
            )
        )
        items = rows[: query.per_page]
        following = None
        if len(rows) > query.per_page:
            last = items[-1]
            following = Cursor(query.sort_key, _sort_value(query.sort, last), last.id).encode()
        return VmPage(items, total, following)


def _sort_value(sort: str, vm: Vm) -> str | int | None:
    """A VM's value in a sort (its host's or pool's name for those)."""
    if sort == "host":
        return vm.host.hostname if vm.host is not None else None
    if sort == "pool":
        return vm.pool.name
    value: str | int = getattr(vm, SORT_COLUMNS[sort].key)
    return value


def _after(column: Any, query: VmQuery, cursor: Cursor) -> ColumnElement[bool]:
    """The rows after the cursor's in the query's order (ties broken by id).  The sort
    column's own bound comes first so that an index on it finds where to start."""
    value, vm_id = cursor.value, cursor.vm_id
    if value is None:  # a host sort past the VMs with a host: the rest of those without
        return and_(column.is_(None), Vm.id > vm_id)
    if query.descending:
        after = and_(column <= value, or_(column < value, Vm.id > vm_id))
    else:
        after = and_(column >= value, or_(column > value, Vm.id > vm_id))
    return or_(after, column.is_(None)) if query.sort == "host" else after


def live_version(dbsession: Session, vm: Vm) -> str:
    """A short string that changes whenever a VM's page would show something new: its row
    (state, host; ``updated_at`` moves on every write) and its newest task's state and
    progress.  An open VM page polls it (one indexed query) and re-reads itself on change."""
    newest = dbsession.execute(
        select(Task.id, Task.state, Task.progress)
        .where(Task.target_type == "vm", Task.target_id == vm.id)
        .order_by(Task.id.desc())
        .limit(1)
    ).first()
    task = f"{newest[0]}.{newest[1]}.{newest[2]}" if newest else "-"
    stamp = vm.updated_at.isoformat() if vm.updated_at else ""
    return f"{vm.state}|{vm.host_id or '-'}|{stamp}|{task}"
