"""Quotas per pool, inherited down: vCPUs, memory, VMs, NICs and storage.

A limit set on a pool caps its whole subtree; a pool without its own limit is capped by
its ancestors'; the root's default is explicit (made by ``initdb``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from zope.interface import Interface

from ..models import Pool, Quota, Vm, VmDisk, VmNic
from ..models.meta import utcnow
from . import Conflict, InvalidInput
from .audit import record
from .context import Service

FIELDS = ("vcpus", "memory_mib", "vms", "nics", "storage_gib")
LABELS = {
    "vcpus": "vCPUs",
    "memory_mib": "memory (MiB)",
    "vms": "VMs",
    "nics": "NICs",
    "storage_gib": "storage (GiB)",
}
ROOT_DEFAULT = {
    "vcpus": 512,
    "memory_mib": 2 * 1024 * 1024,
    "vms": 500,
    "nics": 1000,
    "storage_gib": 40 * 1024,
}
LIMIT_MAX = 10**12
#: VMs in these states hold no resources
RELEASED_STATES = ("deleting",)


@dataclass
class Limit:
    """One effective limit: the value, the pool that set it, and the subtree's usage."""

    field: str
    limit: int | None
    source: Pool | None
    used: int

    @property
    def label(self) -> str:
        return LABELS[self.field]


class IQuotaService(Interface):
    """Marker for pyramid-services: ``request.find_service(IQuotaService)``."""


class QuotaService(Service):
    """Reading, setting and checking quotas."""

    def ensure_root_default(self, root: Pool) -> Quota:
        """The root's explicit default quota."""
        quota = self.dbsession.scalars(select(Quota).where(Quota.pool_id == root.id)).first()
        if quota is None:
            quota = Quota(pool_id=root.id, **ROOT_DEFAULT)
            self.dbsession.add(quota)
            self.dbsession.flush()
        return quota

    def own(self, pool: Pool) -> Quota | None:
        return self.dbsession.scalars(select(Quota).where(Quota.pool_id == pool.id)).first()

    def _ancestor_quotas(self, pool: Pool) -> list[tuple[Pool, Quota]]:
        """(pool, quota) for the pool and its ancestors that have a quota row, nearest first."""
        rows = self.dbsession.execute(
            select(Pool, Quota)
            .join(Quota, Quota.pool_id == Pool.id)
            .where(Pool.id.in_(pool.ancestor_ids))
            .order_by(Pool.depth.desc())
        ).all()
        return [(p, q) for p, q in rows]

    def usage(self, pool: Pool) -> dict[str, int]:
        """What the VMs in a pool's subtree use."""
        in_subtree = select(Pool.id).where(Pool.path.startswith(pool.path, autoescape=True))
        live = select(Vm.id).where(Vm.pool_id.in_(in_subtree), Vm.state.not_in(RELEASED_STATES))
        vcpus, memory, vms = self.dbsession.execute(
            select(
                func.coalesce(func.sum(Vm.vcpus), 0),
                func.coalesce(func.sum(Vm.memory_mib), 0),
                func.count(Vm.id),
            ).where(Vm.id.in_(live))
        ).one()
        nics = self.dbsession.scalar(select(func.count(VmNic.id)).where(VmNic.vm_id.in_(live))) or 0
        storage = (
            self.dbsession.scalar(
                select(func.coalesce(func.sum(VmDisk.size_gib), 0)).where(VmDisk.vm_id.in_(live))
            )
            or 0
        )
        return {
            "vcpus": int(vcpus),
            "memory_mib": int(memory),
            "vms": int(vms),
            "nics": int(nics),
            "storage_gib": int(storage),
        }

    def effective(self, pool: Pool) -> list[Limit]:
        """For each field: the nearest limit above (or on) the pool, and the subtree's usage."""
        quotas = self._ancestor_quotas(pool)
        used = self.usage(pool)
        limits = []
        for field in FIELDS:
            source = next(((p, q) for p, q in quotas if getattr(q, field) is not None), None)
            limits.append(
                Limit(
                    field,
                    getattr(source[1], field) if source else None,
                    source[0] if source else None,
                    used[field],
                )
            )
        return limits

    def set(self, pool: Pool, values: dict[str, Any]) -> Quota:
        """Set a pool's own limits; None (or an empty value) inherits from above."""
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise InvalidInput("unknown quota fields: " + ", ".join(sorted(unknown)[:5]))
        parsed: dict[str, int | None] = {}
        for field in FIELDS:
            raw = values.get(field)
            if raw is None or raw == "":
                parsed[field] = None
                continue
            if isinstance(raw, bool) or not (isinstance(raw, int) or str(raw).isdecimal()):
                raise InvalidInput(
                    f"{LABELS[field]}: a whole number of 0 or more", {"field": field}
                )
            number = int(raw)
            if number < 0:
                raise InvalidInput(
                    f"{LABELS[field]}: a whole number of 0 or more", {"field": field}
                )
            if number > LIMIT_MAX:
                raise InvalidInput(f"{LABELS[field]}: at most {LIMIT_MAX}", {"field": field})
            parsed[field] = number
        if pool.parent_id is None and any(v is None for v in parsed.values()):
            raise InvalidInput("the root pool's quota must set every limit")
        quota = self.own(pool)
        before = {f: getattr(quota, f) for f in FIELDS} if quota else None
        if quota is None:
            quota = Quota(pool_id=pool.id)
            self.dbsession.add(quota)
        for field, value in parsed.items():
            setattr(quota, field, value)
        quota.updated_at = utcnow()
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "quota.set",
            "pool",
            pool.id,
            pool_id=pool.id,
            before=before,
            after=dict(parsed),
            remote_addr=self.remote_addr,
        )
        return quota

    def check(self, pool: Pool, **delta: int) -> None:
        """Refuse (Conflict) if adding ``delta`` to the pool would pass any limit above it."""
        unknown = set(delta) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown quota fields {unknown}")
        for owner, quota in self._ancestor_quotas(pool):
            used = None
            for field, amount in delta.items():
                limit = getattr(quota, field)
                if limit is None or not amount:
                    continue
                used = used or self.usage(owner)
                if used[field] + amount > limit:
                    raise Conflict(
                        f"quota of pool {owner.name!r} exceeded: {LABELS[field]} would be "
                        f"{used[field] + amount}, the limit is {limit}",
                        {"field": field, "pool": owner.id, "limit": limit, "used": used[field]},
                    )
