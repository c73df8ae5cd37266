"""Live VM state from libvirt's lifecycle events, and the periodic reconcile behind them.

``VmStateRecorder.apply`` turns one event into a committed VM row at once (its own short
transaction).  ``reconcile_host`` is the safety net: the host's facts, its free memory
and its domain list against the VM rows (a domain nobody knows is imported as unmanaged;
a VM whose domain vanished is marked, never deleted).  ``EventService`` runs both for every
approved host and makes sure exactly one process in the cluster listens to each host: on
PostgreSQL it holds an advisory lock per host on a connection of its own; on SQLite the
single demo process is the only one.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..models import Host, HostState, Pool, PoolKind, Task, TaskState, Vm, VmState
from ..models.meta import utcnow
from ..virt.connection import ConnectionPool, HostUnreachable, VirtError
from ..virt.events import EventListener, LifecycleEvent
from ..virt.facts import HostFacts
from ..virt.hypervisor import Hypervisor
from .context import ServiceContext
from .hosts import HostService
from .pools import PoolService

log = logging.getLogger(__name__)

#: hosts the listener watches: approved ones (a pending, disabled or rejected host is not
#: driven at all)
WATCHED_STATES = (
    HostState.AVAILABLE.value,
    HostState.UNAVAILABLE.value,
    HostState.MAINTENANCE.value,
)
#: states a VM sits in while a task works on it; a reconcile leaves them to the task
BUSY_TASK_STATES = (TaskState.QUEUED.value, TaskState.RUNNING.value)
UNMANAGED_POOL = "unmanaged"
#: how long an event waits for SQLite's write lock (a long task holds it) before giving up
LOCKED_RETRY_SECONDS = 120.0
#: a periodic reconcile rewrites a host's CPU and NIC rows every this many passes
FULL_FACTS_EVERY = 10
#: the advisory-lock namespace of the event listeners (a per-host lock is (this, host id))
LOCK_NAMESPACE = zlib.crc32(b"fedoracloud.vm-events") & 0x7FFFFFFF


@dataclass
class Timing:
    """How long events took from libvirt's callback to the committed row (seconds)."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        del self.samples[:-10_000]


class VmStateRecorder:
    """Applies lifecycle events to VM rows, each in a transaction of its own."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self.session_factory = session_factory
        self.timing = Timing()
        self.listeners: list[Callable[[LifecycleEvent, str | None], None]] = []

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end (rolled back on error)."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def apply(self, event: LifecycleEvent) -> str | None:
        """Record one event; returns the VM's new state (None if nothing changed).  On
        SQLite a task holding the database's write lock is waited for."""
        if event.state is None and event.event != "undefined":
            return None  # defined, or leaving by migration: nothing to write
        deadline = time.monotonic() + LOCKED_RETRY_SECONDS
        while True:
            try:
                with self.session() as session:
                    new_state = apply_event(session, event)
                break
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.timing.add(time.time() - event.timestamp)
        for listener in self.listeners:
            listener(event, new_state)
        return new_state


def apply_event(session: Session, event: LifecycleEvent) -> str | None:
    """The row change an event means: the state libvirt reports, on the host that reports
    it (a migrated VM changes host when the destination says it runs)."""
    vm = session.scalars(select(Vm).where(Vm.uuid == event.domain_uuid.lower())).first()
    if vm is None:
        return None
    host = session.scalars(select(Host).where(Host.libvirt_uri == event.host_uri)).first()
    if event.event == "undefined":
        if vm.state != VmState.DELETING and host is not None and vm.host_id == host.id:
            vm.state, vm.state_reason = (
                VmState.UNKNOWN.value,
                (f"its domain was undefined on {host.hostname} outside FedoraCloud"),
            )
            vm.updated_at = utcnow()
            return vm.state
        return None
    state = event.state
    if state is None:
        return None
    if event.detail == "migrated" and event.event not in ("started", "resumed"):
        return None  # the source letting go: the destination's event says where it runs
    if host is not None and vm.host_id != host.id:
        if event.detail != "migrated":
            return None  # a stale copy elsewhere: the VM's own host decides
        vm.host_id = host.id  # the destination took it over
    if vm.state == VmState.SAVED and state == VmState.STOPPED:
        return None  # a saved domain is shut off with its memory in a file
    if vm.state == state:
        return None
    vm.state = state
    vm.state_reason = f"{event.event} ({event.detail})" if event.detail else event.event
    vm.updated_at = utcnow()
    return state


def _busy_vm_ids(session: Session, vm_ids: list[int]) -> set[int]:
    if not vm_ids:
        return set()
    return set(
        session.scalars(
            select(Task.target_id).where(
                Task.target_type == "vm",
                Task.target_id.in_(vm_ids),
                Task.state.in_(BUSY_TASK_STATES),
            )
        )
    )


def unmanaged_pool(session: Session, host: Host) -> Pool:
    """The VM pool of a host's hardware pool where domains found on it are shown (one
    query once it exists)."""
    found = session.scalars(
        select(Pool).where(Pool.parent_id == host.pool_id, Pool.name == UNMANAGED_POOL)
    ).first()
    if found is not None:
        return found
    hardware = session.get(Pool, host.pool_id)
    assert hardware is not None
    pools = PoolService(ServiceContext.for_session(session))
    try:
        with session.begin_nested():
            return pools.ensure_child(
                hardware, UNMANAGED_POOL, PoolKind.VM, "Domains found on hosts, not created here"
            )
    except IntegrityError:  # another host's reconcile made it at the same moment
        return pools.ensure_child(hardware, UNMANAGED_POOL, PoolKind.VM)


def reconcile_host(session: Session, host: Host, hv: Hypervisor) -> dict[str, int]:
    """Bring a host's rows in line with libvirt: facts, free memory, each domain's state;
    unknown domains imported as unmanaged VMs; VMs whose domain vanished marked unknown.
    An unreachable host becomes unavailable and its VMs unknown."""
    try:
        facts, free = read_host(hv)
    except VirtError as exc:
        mark_unreachable(session, host, str(exc))
        return {"updated": 0, "imported": 0, "vanished": 0}
    return apply_reconcile(session, host, facts, free)


def read_host(hv: Hypervisor) -> tuple[HostFacts, int]:
    """What a reconcile needs from libvirt: the host's facts (with its domains) and its
    free memory (read outside any database transaction)."""
    return hv.facts(), hv.free_memory_mib()


def _same_facts(host: Host, facts: HostFacts) -> bool:
    """Whether the host's scalar facts are what libvirt says (its CPU and NIC rows are
    then left as they are: rewriting them is most of a periodic pass's cost)."""
    return (
        host.arch,
        host.hypervisor_version,
        host.libvirt_version,
        host.memory_mib,
        host.cpu_count,
        host.cpu_mhz,
    ) == (
        facts.arch,
        facts.hypervisor_version,
        facts.libvirt_version,
        facts.memory_mib,
        len(facts.cpus),
        facts.cpu_mhz,
    )


def apply_reconcile(
    session: Session, host: Host, facts: HostFacts, free: int, full: bool = True
) -> dict[str, int]:
    """The database half of a reconcile (see ``reconcile_host``); ``full=False`` rewrites
    the CPU and NIC rows only if the host's scalar facts changed."""
    counts = {"updated": 0, "imported": 0, "vanished": 0}
    host.free_memory_mib = free  # written with the facts: one UPDATE
    if full or not _same_facts(host, facts):
        # loopback (00:00:00:00:00:00) is on every host; host NIC MACs are unique
        nics = [n for n in facts.nics if n.mac.strip("0:")]
        HostService(ServiceContext.for_session(session)).apply_facts(
            host, replace(facts, nics=nics)
        )
    else:
        host.last_seen_at = utcnow()
    if host.state == HostState.UNAVAILABLE:
        host.state, host.state_reason = HostState.AVAILABLE.value, ""
    vms = list(session.scalars(select(Vm).where(Vm.host_id == host.id)))
    by_uuid = {vm.uuid: vm for vm in vms}
    busy = _busy_vm_ids(session, [vm.id for vm in vms])
    seen = set()
    strangers = [d for d in facts.domains if d.uuid.lower() not in by_uuid]
    elsewhere: set[str] = set()
    pool: Pool | None = None
    taken: set[str] = set()
    if strangers:  # one query for the lot, not one per domain
        elsewhere = set(
            session.scalars(select(Vm.uuid).where(Vm.uuid.in_([d.uuid.lower() for d in strangers])))
        )
        if len(elsewhere) < len(strangers):
            pool = unmanaged_pool(session, host)
            # only the names the newcomers would clash with (the pool holds every host's)
            taken = set(
                session.scalars(
                    select(Vm.name).where(
                        Vm.pool_id == pool.id, Vm.name.in_({d.name for d in strangers})
                    )
                )
            )
    imported: list[dict[str, Any]] = []
    for domain in facts.domains:
        uuid = domain.uuid.lower()
        seen.add(uuid)
        vm = by_uuid.get(uuid)
        if vm is None:
            if uuid in elsewhere or pool is None:
                continue  # placed on another host (a stale definition here)
            name = domain.name
            if name in taken:
                name = f"{domain.name[:55]}-{uuid[:8]}"
            taken.add(name)
            imported.append(
                {
                    "uuid": uuid,
                    "name": name,
                    "pool_id": pool.id,
                    "pool_kind": pool.kind,
                    "host_id": host.id,
                    "vcpus": max(domain.vcpus, 1),
                    "memory_mib": max(domain.memory_mib, 1),
                    "state": domain.state,
                    "state_reason": f"found on {host.hostname}",
                    "managed": False,
                }
            )
            continue
        if vm.id in busy:
            continue
        if vm.state == VmState.SAVED and domain.state == VmState.STOPPED:
            continue
        if vm.state != domain.state:
            vm.state, vm.state_reason = domain.state, "reconciled with libvirt"
            vm.updated_at = utcnow()
            counts["updated"] += 1
    for vm in vms:
        if vm.uuid in seen or vm.id in busy:
            continue
        if vm.state in (VmState.PENDING, VmState.DELETING) or (
            vm.state == VmState.UNKNOWN and vm.state_reason.startswith("its domain")
        ):
            continue
        vm.state = VmState.UNKNOWN.value
        vm.state_reason = f"its domain is not on {host.hostname} any more"
        vm.updated_at = utcnow()
        counts["vanished"] += 1
    if imported:  # one multi-row INSERT, no ORM objects to track
        session.execute(insert(Vm), imported)
        counts["imported"] = len(imported)
    session.flush()
    return counts


def mark_unreachable(session: Session, host: Host, reason: str) -> None:
    """A host that does not answer: unavailable (if it was available), its VMs unknown."""
    if host.state == HostState.AVAILABLE:
        host.state = HostState.UNAVAILABLE.value
    host.state_reason = reason[:2000]
    for vm in session.scalars(select(Vm).where(Vm.host_id == host.id)):
        if vm.state not in (VmState.PENDING, VmState.DELETING, VmState.UNKNOWN):
            vm.state = VmState.UNKNOWN.value
            vm.state_reason = f"host {host.hostname} does not answer"
            vm.updated_at = utcnow()
    session.flush()


class HostLocks:
    """One advisory lock per host, held on a connection of its own (PostgreSQL); on
    SQLite every lock is granted (one demo process)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self._conn: Any = None
        self.held: set[int] = set()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def acquire(self, host_id: int) -> bool:
        """Take the host's lock if nobody holds it; True if this process holds it."""
        if host_id in self.held:
            return True
        if self.postgresql:
            got = (
                self._connection()
                .execute(
                    text("SELECT pg_try_advisory_lock(:ns, :id)"),
                    {"ns": LOCK_NAMESPACE, "id": host_id},
                )
                .scalar()
            )
            if not got:
                return False
        self.held.add(host_id)
        return True

    def lost(self) -> set[int]:
        """The hosts whose locks died with their connection (PostgreSQL restarted, or the
        network to it broke): PostgreSQL has let them go, so another process may hold them
        now; they are forgotten here, to be taken again (or not) like any other."""
        if not self.postgresql or self._conn is None or not self.held:
            return set()
        try:
            self._conn.execute(text("SELECT 1"))
            return set()
        except Exception:
            lost, self.held = set(self.held), set()
            with suppress(Exception):
                self._conn.invalidate()
            self._conn = None
            return lost

    def release(self, host_id: int) -> None:
        """Let another process take the host."""
        if host_id not in self.held:
            return
        self.held.discard(host_id)
        if self.postgresql and self._conn is not None:
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": LOCK_NAMESPACE, "id": host_id}
            )

    def close(self) -> None:
        """Release everything.  The connection is closed for good, not returned to the
        engine's pool: session-level advisory locks live as long as the connection."""
        self.held.clear()
        if self._conn is not None:
            if self.postgresql:
                with suppress(Exception):  # a dead connection has let go already
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._conn.invalidate()
            self._conn.close()
            self._conn = None


def _sqlite_immediate(engine: Engine) -> Engine:
    """An engine on the same SQLite file whose transactions take the write lock at BEGIN
    (BEGIN IMMEDIATE): a reader that later writes would deadlock with a task's transaction;
    one that waits at BEGIN does not."""
    own = create_engine(engine.url)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(own, "connect", on_connect)
    event.listen(own, "begin", on_begin)
    return own


class EventService:
    """Listens to every approved host this process holds the lock for, reconciles each
    host when its listener (re)connects and every ``reconcile_every`` seconds, and picks up
    new hosts (or ones another process let go) every ``rescan_every`` seconds."""

    def __init__(
        self,
        engine: Engine,
        pool: ConnectionPool | None = None,
        reconcile_every: float = 60.0,
        rescan_every: float = 10.0,
        concurrency: int = 16,
    ) -> None:
        self.engine = engine
        if engine.dialect.name == "sqlite":
            engine = _sqlite_immediate(engine)
        self.session_factory = sessionmaker(bind=engine, expire_on_commit=False)
        self.pool = pool
        self.recorder = VmStateRecorder(self.session_factory)
        self.locks = HostLocks(engine)
        self.reconcile_every = reconcile_every
        self.concurrency = concurrency
        self.rescan_every = rescan_every
        self.listeners: dict[int, EventListener] = {}
        self._uris: dict[int, str] = {}
        self._last_reconcile: dict[int, float] = {}
        #: host id → when its last reconcile finished (time.monotonic())
        self.reconciled: dict[int, float] = {}
        self._passes: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventService:
        """Run in a background thread (the embedded demo worker, tests)."""
        self._thread = threading.Thread(target=self.run, name="vm-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and let the locks go."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for host_id in list(self.listeners):
            self._drop(host_id)
        self.locks.close()

    def run(self) -> None:
        """Until stopped: rescan the hosts, reconcile those that are due."""
        while not self._stop.is_set():
            try:
                self.rescan()
                self.reconcile_due()
            except Exception:
                log.exception("the VM event service's rescan failed")
            self._stop.wait(self.rescan_every)

    def rescan(self) -> None:
        """Watch every approved host whose lock this process gets; drop the others (and the
        ones whose lock was lost with its connection: they are taken again if free)."""
        for host_id in self.locks.lost():
            log.warning("lost the event lock of host %s with its connection", host_id)
            self._drop(host_id)
        with self.recorder.session() as session:
            hosts = {
                h.id: h.libvirt_uri
                for h in session.scalars(select(Host).where(Host.state.in_(WATCHED_STATES)))
                if h.libvirt_uri
            }
        for host_id in list(self.listeners):
            if hosts.get(host_id) != self._uris.get(host_id):
                self._drop(host_id)
        for host_id, uri in hosts.items():
            if host_id in self.listeners or not self.locks.acquire(host_id):
                continue
            self._uris[host_id] = uri
            self.listeners[host_id] = self._listener(host_id, uri).start()

    def _listener(self, host_id: int, uri: str) -> EventListener:
        def on_event(event: LifecycleEvent) -> None:
            self.recorder.apply(event)

        def on_connected(_uri: str) -> None:
            self._passes[host_id] = 0  # a full pass: the host may have changed meanwhile
            self.reconcile(host_id)

        def on_lost(_uri: str, why: str) -> None:
            self.lost(host_id, why)

        return EventListener(
            uri, on_event, on_connected=on_connected, on_lost=on_lost, pool=self.pool
        )

    def _drop(self, host_id: int) -> None:
        listener = self.listeners.pop(host_id, None)
        if listener is not None:
            listener.stop()
        self._uris.pop(host_id, None)
        self.locks.release(host_id)

    def reconcile_due(self) -> None:
        """Reconcile the watched hosts not reconciled for ``reconcile_every`` seconds."""
        now = time.monotonic()
        due = [
            h
            for h in list(self.listeners)
            if now - self._last_reconcile.get(h, 0.0) >= self.reconcile_every
        ]
        self.reconcile_many(due)

    def reconcile_many(self, host_ids: list[int]) -> dict[str, int]:
        """Reconcile hosts, ``concurrency`` at a time (a dead host costs its own thread
        its connect timeout, not the others); the summed counts."""
        total = {"updated": 0, "imported": 0, "vanished": 0}

        def one(host_id: int) -> dict[str, int]:
            try:
                return self.reconcile(host_id)
            except Exception:
                log.exception("reconciling host %s failed", host_id)
                return {}

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as workers:
            for counts in workers.map(one, host_ids):
                for key, value in counts.items():
                    total[key] = total.get(key, 0) + value
        return total

    def reconcile(self, host_id: int) -> dict[str, int]:
        """Reconcile one host now (its own transaction)."""
        self._last_reconcile[host_id] = time.monotonic()
        with self.recorder.session() as session:
            host = session.get(Host, host_id)
            if host is None:
                return {}
            uri = host.libvirt_uri
        facts: tuple[HostFacts, int] | None = None
        try:
            facts = read_host(Hypervisor(uri, self.pool))
        except VirtError as exc:
            failure = str(exc)
        with self.recorder.session() as session:
            host = session.get(Host, host_id)
            if host is None:
                return {}
            if facts is None:
                mark_unreachable(session, host, failure)
                counts: dict[str, int] = {}
            else:
                passes = self._passes.get(host_id, 0)
                self._passes[host_id] = passes + 1
                # every tenth pass (and the first after a connect) rewrites CPUs and NICs
                full = passes % FULL_FACTS_EVERY == 0
                counts = apply_reconcile(session, host, *facts, full=full)
        self.reconciled[host_id] = time.monotonic()
        return counts

    def lost(self, host_id: int, reason: str) -> None:
        """The listener lost its host: unavailable, VMs unknown (until it comes back)."""
        with self.recorder.session() as session:
            host = session.get(Host, host_id)
            if host is not None:
                mark_unreachable(session, host, reason)


__all__ = [
    "EventService",
    "HostLocks",
    "HostUnreachable",
    "VmStateRecorder",
    "apply_event",
    "mark_unreachable",
    "reconcile_host",
]
