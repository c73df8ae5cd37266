"""The VM list: VMs in the pools a user may view, filtered, sorted and paginated in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from ..models import Host, Pool, Vm, VmState
from ..models.vm import VM_NAME_MAX
from . import InvalidInput, NotFound

SORT_COLUMNS = {
    "name": Vm.name,
    "state": Vm.state,
    "vcpus": Vm.vcpus,
    "memory": Vm.memory_mib,
    "host": Host.hostname,
    "pool": Pool.name,
}


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
        return self


class VmListService:
    """Reading the VM list."""

    def __init__(self, dbsession: Session) -> None:
        self.dbsession = dbsession

    def search(self, query: VmQuery, visible: Any) -> tuple[list[Vm], int]:
        """One page of the VMs in visible pools, with their pool and host, and the total
        (two queries whatever the page size)."""
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
        rows = self.dbsession.scalars(
            stmt.options(contains_eager(Vm.pool), contains_eager(Vm.host))
            .order_by(order, Vm.id)
            .offset((query.page - 1) * query.per_page)
            .limit(query.per_page)
        )
        return list(rows), total


def live_version(dbsession: Session, vm: Vm) -> str:
    """A short string that changes whenever a VM's page would show something new: its row
    (state, host; ``updated_at`` moves on every write) and its newest task's state and
    progress.  An open VM page polls it (one indexed query) and re-reads itself on change."""
    from ..models import Task

    newest = dbsession.execute(
        select(Task.id, Task.state, Task.progress)
        .where(Task.target_type == "vm", Task.target_id == vm.id)
        .order_by(Task.id.desc())
        .limit(1)
    ).first()
    task = f"{newest[0]}.{newest[1]}.{newest[2]}" if newest else "-"
    stamp = vm.updated_at.isoformat() if vm.updated_at else ""
    return f"{vm.state}|{vm.host_id or '-'}|{stamp}|{task}"
