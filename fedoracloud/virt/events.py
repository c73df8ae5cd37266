"""Lifecycle events: libvirt tells us when a domain starts, stops, pauses … on a host.

An :class:`EventListener` watches one host: it registers for libvirt's lifecycle events
on the host's shared connection (driven by libvirt's default event loop, one thread per
process, see ``connection.ensure_event_loop``) and hands each :class:`LifecycleEvent` to
the caller's ``on_event`` from a delivery thread of its own, so a slow consumer (a
database commit) never stalls libvirt's loop or another host.  When the connection dies
(keepalive timeout, the host closed it) ``on_lost(uri, reason)`` is called and the
listener reconnects with backoff; ``on_connected(uri)`` is called on every (re)connect,
which is when the caller should reconcile (events may have been missed meanwhile).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import libvirt

from .connection import ConnectionPool, VirtError, default_pool

log = logging.getLogger(__name__)

_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}

_DETAILS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: ("added", "updated", "renamed", "from snapshot"),
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: ("removed", "renamed"),
    libvirt.VIR_DOMAIN_EVENT_STARTED: ("booted", "migrated", "restored", "from snapshot", "wakeup"),
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: (
        "paused",
        "migrated",
        "I/O error",
        "watchdog",
        "restored",
        "from snapshot",
        "API error",
        "postcopy",
        "postcopy failed",
    ),
    libvirt.VIR_DOMAIN_EVENT_RESUMED: ("unpaused", "migrated", "from snapshot", "postcopy"),
    libvirt.VIR_DOMAIN_EVENT_STOPPED: (
        "shutdown",
        "destroyed",
        "crashed",
        "migrated",
        "saved",
        "failed",
        "from snapshot",
    ),
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: ("finished", "guest", "host"),
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: ("memory", "disk"),
    libvirt.VIR_DOMAIN_EVENT_CRASHED: ("panicked", "crashloaded"),
}


def event_state(event: str, detail: str) -> str | None:
    """The VM state an event puts the domain in on this host, or None when the event
    does not say (defined/undefined, or it left this host by migration)."""
    if event == "started" or event == "resumed":
        return "running"
    if event in ("suspended", "pmsuspended"):
        return "paused"
    if event == "shutdown":
        return "shutting_down" if detail != "finished" else None
    if event == "stopped":
        return {"migrated": None, "saved": "saved", "crashed": "failed", "failed": "failed"}.get(
            detail, "stopped"
        )
    if event == "crashed":
        return "failed"
    return None


@dataclass(frozen=True)
class LifecycleEvent:
    """One lifecycle event of one domain on one host."""

    host_uri: str
    domain_uuid: str
    domain_name: str
    #: libvirt's event: defined, undefined, started, suspended, resumed, stopped, shutdown …
    event: str
    #: libvirt's detail: booted, migrated, destroyed, saved, paused …
    detail: str
    #: the FedoraCloud VM state it means (running, paused, stopped …), None if none
    state: str | None
    #: when libvirt's callback ran (time.time())
    timestamp: float


EventCallback = Callable[[LifecycleEvent], None]
HostCallback = Callable[[str], None]
LostCallback = Callable[[str, str], None]


class EventListener:
    """Watches one host's lifecycle events until :meth:`stop` (see the module doc)."""

    def __init__(
        self,
        uri: str,
        on_event: EventCallback,
        *,
        on_connected: HostCallback | None = None,
        on_lost: LostCallback | None = None,
        pool: ConnectionPool | None = None,
        backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.uri = uri
        self.pool = pool if pool is not None else default_pool()
        self.on_event = on_event
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.backoff = backoff
        self.connected = threading.Event()
        self._queue: queue.Queue[LifecycleEvent | None] = queue.Queue()
        self._lost = threading.Event()
        self._lost_reason = "connection lost"
        self._stop = threading.Event()
        self._callback_id: int | None = None
        self._conn: libvirt.virConnect | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> EventListener:
        """Start watching (returns at once; :attr:`connected` is set once registered)."""
        self.pool.add_close_listener(self.uri, self._closed)
        for target, name in ((self._supervise, "watch"), (self._deliver, "deliver")):
            thread = threading.Thread(target=target, name=f"events-{name} {self.uri}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Block until the listener has registered on the host (or the timeout)."""
        return self.connected.wait(timeout)

    def stop(self) -> None:
        """Stop watching: deregister, and end both threads."""
        self._stop.set()
        self._lost.set()
        self._queue.put(None)
        self.pool.remove_close_listener(self.uri, self._closed)
        for thread in self._threads:
            thread.join(timeout=5)
        self._deregister()

    def _deregister(self) -> None:
        conn, callback_id = self._conn, self._callback_id
        self._conn = self._callback_id = None
        if conn is not None and callback_id is not None:
            with suppress(libvirt.libvirtError):  # a dead connection took it with it
                conn.domainEventDeregisterAny(callback_id)

    def _lifecycle(
        self, _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int, _o: object
    ) -> None:
        now = time.time()
        name = _EVENTS.get(event, str(event))
        details = _DETAILS.get(event, ())
        detail_name = details[detail] if 0 <= detail < len(details) else str(detail)
        self._queue.put(
            LifecycleEvent(
                self.uri,
                dom.UUIDString(),
                dom.name(),
                name,
                detail_name,
                event_state(name, detail_name),
                now,
            )
        )

    def _closed(self, uri: str, reason: str) -> None:
        self._lost_reason = reason
        self._lost.set()

    def _supervise(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                conn = self.pool.get(self.uri)
                self._callback_id = conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
                )
                self._conn = conn
            except (VirtError, libvirt.libvirtError) as exc:
                reason = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else exc
                self._report_lost(str(reason))
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            self._lost.clear()
            self.connected.set()
            if self.on_connected is not None:
                try:
                    self.on_connected(self.uri)
                except Exception:
                    log.exception("on_connected for %s failed", self.uri)
            while not self._lost.wait(1.0):
                if not _alive(conn):
                    self._lost_reason = "the connection died"
                    break
            if self._stop.is_set():
                return
            self.connected.clear()
            self._deregister()
            self._report_lost(self._lost_reason)
            self._stop.wait(delay)

    def _report_lost(self, reason: str) -> None:
        if self.on_lost is not None:
            try:
                self.on_lost(self.uri, reason)
            except Exception:
                log.exception("on_lost for %s failed", self.uri)

    def _deliver(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.on_event(event)
            except Exception:
                log.exception("handling %s on %s failed", event, self.uri)


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False
