"""Connections: one per host and reused, a dead or silent host never blocks the others,
a closed connection is re-opened, and a host that goes away is noticed (close callback,
keepalive) by the event listener, which reconnects when it comes back.

Dead hosts are real sockets: a TCP listener that accepts and never answers, a closed port,
and a TCP relay to the real libvirtd that the test cuts, freezes and restores.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

import pytest

from fedoracloud.virt.connection import ConnectionPool, HostUnreachable
from fedoracloud.virt.events import EventListener
from fedoracloud.virt.hypervisor import Hypervisor


class SilentHost:
    """A TCP port that accepts connections and never says a word (a hung host)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.server.accept()[0])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone won't)
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_host():
    host = SilentHost()
    yield host
    host.close()


def test_one_connection_per_host_reused_by_every_call():
    pool = ConnectionPool()
    try:
        first, second = Hypervisor("test:///default", pool), Hypervisor("test:///default", pool)
        for _ in range(20):
            first.domains()
            second.free_memory_mib()
        assert pool.opened == 1
        assert pool.uris() == ["test:///default"]
    finally:
        pool.close_all()


def test_a_closed_connection_is_reopened():
    pool = ConnectionPool()
    try:
        hv = Hypervisor("test:///default", pool)
        hv.domains()
        pool.get("test:///default").close()  # behind the pool's back
        assert [d.name for d in hv.domains()] == ["test"]
        assert pool.opened == 2
    finally:
        pool.close_all()


def test_a_silent_host_times_out_without_blocking_other_hosts(silent_host):
    pool = ConnectionPool(connect_timeout=3, retry_after=60)
    dead = Hypervisor(f"qemu+tcp://127.0.0.1:{silent_host.port}/system", pool)
    alive = Hypervisor("test:///default", pool)
    errors: list[Exception] = []

    def call_dead() -> None:
        try:
            dead.domains()
        except HostUnreachable as exc:
            errors.append(exc)

    waiting = threading.Thread(target=call_dead)
    waiting.start()
    while not silent_host.accepted:  # the dead host's connect is now hanging
        time.sleep(0.01)
    for _ in range(50):
        assert alive.domains()[0].name == "test"
    assert waiting.is_alive(), "calls to a healthy host waited for the dead one"
    waiting.join()
    assert "no answer in 3 s" in str(errors[0])
    # within retry_after, callers are told at once instead of waiting again
    with pytest.raises(HostUnreachable, match="no answer"):
        dead.facts()
    assert len(silent_host.accepted) == 1
    pool.close_all()


def test_a_refused_host_is_reported_clearly():
    port = socket.create_server(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    pool = ConnectionPool(connect_timeout=5)
    with pytest.raises(HostUnreachable, match=f"cannot connect to qemu\\+tcp://127.0.0.1:{number}"):
        Hypervisor(f"qemu+tcp://127.0.0.1:{number}/system", pool).facts()


class Relay:
    """A TCP relay to the real libvirtd's unix socket, which the test can cut or freeze."""

    def __init__(self, target: str = "/run/libvirt/libvirt-sock", port: int = 0) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self.frozen = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client = self.server.accept()[0]
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(self.target)
                self.pairs.append((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The host goes away: the listener closes and every connection drops."""
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone won't)
        self.server.close()
        for a, b in self.pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.mark.integration
def test_the_listener_notices_a_lost_host_and_reconnects_when_it_returns(real_libvirt):
    relay = Relay()
    uri = f"qemu+tcp://127.0.0.1:{relay.port}/system"
    pool = ConnectionPool(connect_timeout=5, retry_after=0)
    seen: queue.Queue[tuple[str, str]] = queue.Queue()
    listener = EventListener(
        uri,
        lambda event: None,
        on_connected=lambda u: seen.put(("connected", u)),
        on_lost=lambda u, why: seen.put(("lost", why)),
        pool=pool,
        backoff=(0.2, 0.5),
    ).start()
    try:
        assert seen.get(timeout=10) == ("connected", uri)
        assert Hypervisor(uri, pool).facts().hypervisor == "qemu"
        relay.cut()
        kind, why = seen.get(timeout=10)
        assert kind == "lost"
        assert why  # e.g. "the host closed the connection"
        with pytest.raises(HostUnreachable):
            Hypervisor(uri, pool).domains()
        relay = Relay(port=relay.port)  # the host is back
        deadline = time.monotonic() + 15
        while (item := seen.get(timeout=15))[0] != "connected":
            assert time.monotonic() < deadline
        assert item == ("connected", uri)
        assert Hypervisor(uri, pool).facts().hypervisor == "qemu"
    finally:
        listener.stop()
        relay.cut()
        pool.close_all()


@pytest.mark.integration
def test_keepalive_closes_the_connection_to_a_frozen_host(real_libvirt):
    relay = Relay()
    uri = f"qemu+tcp://127.0.0.1:{relay.port}/system"
    pool = ConnectionPool(connect_timeout=5, keepalive_interval=1, keepalive_count=2)
    lost: queue.Queue[str] = queue.Queue()
    pool.add_close_listener(uri, lambda u, why: lost.put(why))
    try:
        Hypervisor(uri, pool).facts()
        relay.frozen.set()  # the host hangs: nothing comes back, the sockets stay open
        assert lost.get(timeout=15) == "keepalive timeout"
        assert pool.uris() == []
    finally:
        relay.frozen.clear()
        relay.cut()
        pool.close_all()
