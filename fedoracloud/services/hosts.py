"""Hosts: list, detail, move between hardware pools, and record the facts libvirt reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import contains_eager, selectinload
from zope.interface import Interface

from ..models import Host, HostCpu, HostNic, HostState, Pool, PoolKind, Vm
from ..models.host import HOSTNAME_PATTERN, UUID_PATTERN
from ..models.meta import utcnow
from ..virt.facts import HostFacts
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service
from .storage import StorageService

_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_UUID = re.compile(UUID_PATTERN)

SORT_COLUMNS = {
    "hostname": Host.hostname,
    "state": Host.state,
    "memory": Host.memory_mib,
    "cpus": Host.cpu_count,
    "arch": Host.arch,
    "last_seen": Host.last_seen_at,
    "pool": Pool.name,
}


class IHostService(Interface):
    """Marker for the host service."""


def check_hostname(hostname: str) -> str:
    """Return a valid host name (lowercased) or raise InvalidInput saying why."""
    hostname = (hostname or "").strip().lower()
    if not hostname:
        raise InvalidInput("a host needs a host name", {"field": "hostname"})
    if len(hostname) > 253:
        raise InvalidInput("a host name has at most 253 characters", {"field": "hostname"})
    if not _HOSTNAME.fullmatch(hostname):
        raise InvalidInput(
            "a host name is dot-separated labels of letters, digits and inner hyphens,"
            " each at most 63 characters",
            {"field": "hostname"},
        )
    return hostname


def check_uuid(uuid: str) -> str:
    """Return a canonical lowercase UUID or raise InvalidInput."""
    uuid = (uuid or "").strip().lower()
    if not _UUID.fullmatch(uuid):
        raise InvalidInput(f"not a UUID: {uuid[:64]!r}", {"field": "uuid"})
    return uuid


@dataclass
class HostQuery:
    """A host list request: filter, sort, page."""

    q: str = ""
    state: str = ""
    pool_id: int | None = None
    sort: str = "hostname"
    descending: bool = False
    page: int = 1
    per_page: int = 25

    def validate(self) -> HostQuery:
        if self.state and self.state not in {s.value for s in HostState}:
            raise InvalidInput(f"unknown host state {self.state[:32]!r}", {"field": "state"})
        if self.sort not in SORT_COLUMNS:
            raise InvalidInput(
                f"cannot sort hosts by {self.sort[:32]!r}; by one of " + ", ".join(SORT_COLUMNS),
                {"field": "sort"},
            )
        if self.page < 1 or self.page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        if len(self.q) > 253:
            raise InvalidInput("a search has at most 253 characters", {"field": "q"})
        return self


class HostService(Service):
    """Reading and changing hosts."""

    def get(self, host_id: int) -> Host:
        """The host with this id, or NotFound."""
        host = self.dbsession.get(Host, host_id)
        if host is None:
            raise NotFound(f"no host {host_id}")
        return host

    def by_name_or_uuid(self, key: str) -> Host:
        """A host by host name or UUID."""
        host = self.dbsession.scalars(
            select(Host).where(or_(Host.hostname == key.lower(), Host.uuid == key.lower()))
        ).first()
        if host is None:
            raise NotFound(f"no host {key!r}")
        return host

    def search(self, query: HostQuery, visible: Any) -> tuple[list[Host], int]:
        """One page of the hosts in visible pools, filtered and sorted, and the total."""
        query.validate()
        stmt = select(Host).join(Pool, Pool.id == Host.pool_id).where(visible)
        if query.q:
            text = query.q.lower()  # % and _ are literal: autoescape
            stmt = stmt.where(
                or_(
                    Host.hostname.contains(text, autoescape=True),
                    Host.uuid.contains(text, autoescape=True),
                )
            )
        if query.state:
            stmt = stmt.where(Host.state == query.state)
        if query.pool_id is not None:
            pool = self.dbsession.get(Pool, query.pool_id)
            if pool is None:
                raise NotFound(f"no pool {query.pool_id}")
            sub = select(Pool.id).where(Pool.path.startswith(pool.path, autoescape=True))
            stmt = stmt.where(Host.pool_id.in_(sub))
        total = (
            self.dbsession.scalar(
                select(func.count()).select_from(stmt.with_only_columns(Host.id).subquery())
            )
            or 0
        )
        column = SORT_COLUMNS[query.sort]
        order = column.desc() if query.descending else column.asc()
        rows = self.dbsession.scalars(
            # the pool is joined already (visibility): read with the row, not asked again
            stmt.options(selectinload(Host.nics), contains_eager(Host.pool))
            .order_by(order, Host.id)
            .offset((query.page - 1) * query.per_page)
            .limit(query.per_page)
        )
        return list(rows), total

    def vms_on(self, host: Host, visible: Any) -> list[Vm]:
        """The VMs on a host that sit in pools the user may view."""
        return list(
            self.dbsession.scalars(
                select(Vm)
                .join(Pool, Pool.id == Vm.pool_id)
                .where(Vm.host_id == host.id, visible)
                .order_by(Vm.name)
            )
        )

    def move(self, host: Host, target: Pool) -> Host:
        """Move a host to another hardware pool; refused while VMs are placed on it."""
        if target.kind != PoolKind.HARDWARE:
            raise InvalidInput(
                f"a host can only be in a hardware pool; {target.name!r} is a {target.kind} pool",
                {"field": "pool"},
            )
        if target.id == host.pool_id:
            return host
        vms = (
            self.dbsession.scalar(select(func.count()).select_from(Vm).where(Vm.host_id == host.id))
            or 0
        )
        if vms:
            raise Conflict(
                f"host {host.hostname} has {vms} VM{'s' if vms != 1 else ''} on it;"
                " migrate or delete them before moving it to another hardware pool"
            )
        before = {"pool_id": host.pool_id}
        host.pool_id = target.id
        host.pool_kind = target.kind
        self.dbsession.flush()
        self.dbsession.refresh(host)
        record(
            self.dbsession,
            self.actor,
            "host.move",
            "host",
            host.id,
            pool_id=target.id,
            before=before,
            after={"pool_id": target.id},
            remote_addr=self.remote_addr,
        )
        StorageService(self.ctx).queue_define_for_host(host)
        return host

    def register(
        self,
        uuid: str,
        hostname: str,
        pool: Pool,
        libvirt_uri: str,
        state: HostState = HostState.PENDING,
    ) -> Host:
        """Create the host with this UUID, or update its name and URI if it exists."""
        uuid = check_uuid(uuid)
        hostname = check_hostname(hostname)
        if pool.kind != PoolKind.HARDWARE:
            raise InvalidInput("a host can only be in a hardware pool", {"field": "pool"})
        host = self.dbsession.scalars(select(Host).where(Host.uuid == uuid)).first()
        if host is None:
            host = Host(
                uuid=uuid,
                hostname=hostname,
                pool_id=pool.id,
                pool_kind=pool.kind,
                state=state.value,
                libvirt_uri=libvirt_uri,
                # a new host has no CPU or NIC rows: known empty, not read back for the facts
                cpus=[],
                nics=[],
            )
            self.dbsession.add(host)
            self.dbsession.flush()
            record(
                self.dbsession,
                self.actor,
                "host.register",
                "host",
                host.id,
                pool_id=pool.id,
                after={"uuid": uuid, "hostname": hostname},
                remote_addr=self.remote_addr,
            )
        else:
            host.hostname = hostname
            host.libvirt_uri = libvirt_uri
        return host

    def apply_facts(self, host: Host, facts: HostFacts) -> Host:
        """Record what libvirt reported: versions, memory, CPU rows, NIC rows, last seen."""
        host.arch = facts.arch
        host.hypervisor = facts.hypervisor
        host.hypervisor_version = facts.hypervisor_version
        host.libvirt_version = facts.libvirt_version
        host.memory_mib = facts.memory_mib
        host.cpu_mhz = facts.cpu_mhz
        host.cpu_count = len(facts.cpus)
        host.last_seen_at = utcnow()
        existing_cpus = {c.cpu_index: c for c in host.cpus}
        host.cpus = [
            _update(
                existing_cpus.get(c.index) or HostCpu(cpu_index=c.index),
                socket=c.socket,
                core=c.core,
                thread=c.thread,
                vendor=c.vendor,
                model=c.model,
                speed_mhz=c.speed_mhz,
                flags=c.flags,
            )
            for c in facts.cpus
        ]
        existing_nics = {n.name: n for n in host.nics}
        host.nics = [
            _update(
                existing_nics.get(n.name) or HostNic(name=n.name),
                mac=n.mac,
                ip_address=n.ip_address,
                prefix_length=n.prefix_length,
            )
            for n in facts.nics
        ]
        self.dbsession.flush()
        return host


def _update(obj: Any, **values: Any) -> Any:
    for key, value in values.items():
        setattr(obj, key, value)
    return obj
