"""Libvirt connections by URI: a pool with one reused connection per host, keepalive,
connect timeouts and reconnect; libvirt's event loop; errors as one exception type."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import libvirt

_URI = re.compile(
    r"^(?:test:///(?:default|[^\s?#]+\.xml)"
    r"|qemu(?:\+(?:tls|ssh|tcp|unix))?://[A-Za-z0-9.\-\[\]:@]*/(?:system|session)(?:\?[^\s#]*)?)$"
)


class VirtError(Exception):
    """libvirt could not do what was asked; the message says why."""


def check_uri(uri: str) -> str:
    """Return the URI if FedoraCloud accepts it, else raise VirtError."""
    if not _URI.fullmatch(uri or ""):
        raise VirtError(
            f"not a supported libvirt URI: {uri!r} (qemu+tls://HOST/system, qemu+ssh://,"
            " qemu+tcp://, qemu:///system or test:///ABSOLUTE/PATH.xml)"
        )
    return uri


def _silence(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr unless a handler is registered."""


libvirt.registerErrorHandler(_silence, None)


@contextmanager
def connect(uri: str, read_only: bool = False) -> Iterator[libvirt.virConnect]:
    """A connection to one host, closed afterwards."""
    check_uri(uri)
    try:
        conn = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VirtError(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
    try:
        yield conn
    except libvirt.libvirtError as exc:
        raise VirtError(f"{uri}: {exc.get_error_message()}") from exc
    finally:
        conn.close()


class HostUnreachable(VirtError):
    """The host did not answer (refused, timed out, or its connection died)."""


#: libvirt error codes that mean "the connection is gone", not "the call was wrong"
_CONNECTION_ERRORS = frozenset(
    {
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_AUTH_FAILED,
    }
)


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    """True when a libvirt error says the connection to the host is broken."""
    return exc.get_error_code() in _CONNECTION_ERRORS


_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread (once per
    process).  It must run before connections are opened: keepalive and domain events
    are driven by it."""
    global _loop_thread
    with _loop_lock:
        if _loop_thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        _loop_thread = threading.Thread(target=run, name="libvirt-event-loop", daemon=True)
        _loop_thread.start()


CloseListener = Callable[[str, str], None]

_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "I/O error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "the host closed the connection",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timeout",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by FedoraCloud",
}


@dataclass
class _HostEntry:
    """One host's slot in the pool: its connection and its own lock."""

    uri: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    conn: libvirt.virConnect | None = None
    failed_at: float = 0.0
    last_error: str = ""
    listeners: list[CloseListener] = field(default_factory=list)


class ConnectionPool:
    """One libvirt connection per host URI, shared by every thread, opened on first use.

    - Opening a connection runs in a helper thread and gives up after ``connect_timeout``
      seconds, so a host that does not answer costs a caller at most that long.
    - Each host has its own lock, held only while connecting; libvirt calls run without
      any pool lock (libvirt connections are thread-safe), so a slow or dead host never
      blocks calls to other hosts.
    - Keepalive (every ``keepalive_interval`` s, ``keepalive_count`` misses) makes libvirt
      close a connection to a host that stopped answering; calls in flight then fail, the
      close listeners hear of it, and the next :meth:`get` reconnects.
    - After a failed connect, :meth:`get` fails at once for ``retry_after`` seconds instead
      of waiting again on a dead host.
    """

    def __init__(
        self,
        connect_timeout: float = 10.0,
        keepalive_interval: int = 5,
        keepalive_count: int = 3,
        retry_after: float = 5.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostEntry] = {}
        self.opened = 0  # connections opened so far (tests and benchmarks read it)

    def _entry(self, uri: str) -> _HostEntry:
        with self._lock:
            entry = self._hosts.get(uri)
            if entry is None:
                entry = self._hosts[uri] = _HostEntry(check_uri(uri))
            return entry

    def get(self, uri: str) -> libvirt.virConnect:
        """The live connection to a host, opened (or re-opened) if needed.

        Raises HostUnreachable when the host cannot be reached within the timeout."""
        entry = self._entry(uri)
        conn = entry.conn
        if conn is not None and _alive(conn):
            return conn
        if not entry.lock.acquire(timeout=self.connect_timeout):
            raise HostUnreachable(f"{uri}: still connecting after {self.connect_timeout:g} s")
        try:
            conn = entry.conn
            if conn is not None:
                if _alive(conn):
                    return conn
                entry.conn = None
                _close_quietly(conn)
            if entry.failed_at and time.monotonic() - entry.failed_at < self.retry_after:
                raise HostUnreachable(entry.last_error)
            try:
                conn = self._open(uri)
            except HostUnreachable as exc:
                entry.failed_at = time.monotonic()
                entry.last_error = str(exc)
                raise
            entry.failed_at = 0.0
            entry.conn = conn
            with self._lock:
                self.opened += 1
            return conn
        finally:
            entry.lock.release()

    def _open(self, uri: str) -> libvirt.virConnect:
        ensure_event_loop()
        result: dict[str, Any] = {}
        done = threading.Event()
        abandoned = threading.Event()

        def opener() -> None:
            try:
                conn = libvirt.open(uri)
            except libvirt.libvirtError as exc:
                result["error"] = exc.get_error_message()
            else:
                if abandoned.is_set():
                    _close_quietly(conn)
                else:
                    result["conn"] = conn
            done.set()

        threading.Thread(target=opener, name=f"libvirt-connect {uri}", daemon=True).start()
        if not done.wait(self.connect_timeout):
            abandoned.set()
            if done.is_set() and "conn" in result:  # finished in the meantime
                _close_quietly(result["conn"])
            raise HostUnreachable(
                f"cannot connect to {uri}: no answer in {self.connect_timeout:g} s"
            )
        if "error" in result:
            raise HostUnreachable(f"cannot connect to {uri}: {result['error']}")
        conn = result["conn"]
        if not uri.startswith("test:"):
            with suppress(libvirt.libvirtError):  # local drivers need no keepalive
                conn.setKeepAlive(self.keepalive_interval, self.keepalive_count)
        with suppress(libvirt.libvirtError):  # only remote connections can close under us
            conn.registerCloseCallback(self._closed, uri)
        return conn

    def _closed(self, conn: libvirt.virConnect, reason: int, uri: str) -> None:
        entry = self._entry(uri)
        if entry.conn is conn:
            entry.conn = None
        why = _CLOSE_REASONS.get(reason, f"closed ({reason})")
        for listener in list(entry.listeners):
            with suppress(Exception):  # a listener's bug must not kill the event loop
                listener(uri, why)

    def add_close_listener(self, uri: str, listener: CloseListener) -> None:
        """Call ``listener(uri, reason)`` whenever libvirt closes this host's connection."""
        self._entry(uri).listeners.append(listener)

    def remove_close_listener(self, uri: str, listener: CloseListener) -> None:
        """Stop calling a listener added with :meth:`add_close_listener`."""
        entry = self._entry(uri)
        if listener in entry.listeners:
            entry.listeners.remove(listener)

    def drop(self, uri: str) -> None:
        """Close and forget a host's connection (the next get() opens a new one)."""
        entry = self._entry(uri)
        conn, entry.conn = entry.conn, None
        entry.failed_at = 0.0
        if conn is not None:
            _close_quietly(conn)

    def close_all(self) -> None:
        """Close every connection (at shutdown, and between tests)."""
        with self._lock:
            uris = list(self._hosts)
        for uri in uris:
            self.drop(uri)

    def uris(self) -> list[str]:
        """The hosts this pool holds a live connection to."""
        with self._lock:
            return [u for u, e in self._hosts.items() if e.conn is not None]


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def _close_quietly(conn: libvirt.virConnect) -> None:
    with suppress(libvirt.libvirtError):
        conn.unregisterCloseCallback()
    with suppress(libvirt.libvirtError):
        conn.close()


_default_pool: ConnectionPool | None = None


def default_pool() -> ConnectionPool:
    """The process's shared pool (made on first use, never at import time)."""
    global _default_pool
    with _loop_lock:
        if _default_pool is None:
            _default_pool = ConnectionPool()
        return _default_pool
