"""Services a fault test may break without touching anybody else's: a PostgreSQL cluster
of its own (initdb in a temp dir, its own port, run as ``postgres``), a libvirtd of its own
(a private mount namespace, its own socket, state and QEMU processes), and a TCP proxy in
front of a shared service (RabbitMQ) that can cut every connection and refuse new ones.

The machine's PostgreSQL, RabbitMQ and libvirtd are never restarted or killed here.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port() -> int:
    """A TCP port nobody listens on right now (bound to port 0 by the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; its value, or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on the port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _as_postgres() -> Callable[[], None]:
    entry = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return demote


class PrivatePostgres:
    """A PostgreSQL 15 cluster of one's own: ``initdb`` into ``base`` (trust auth, loopback
    only, a free port), started, restarted and stopped with ``pg_ctl`` as ``postgres``."""

    def __init__(self, base: str, max_connections: int = 100, include: str = "") -> None:
        self.base = base
        self.include = include
        self.data = os.path.join(base, "data")
        self.socket_dir = os.path.join(base, "run")
        self.log = os.path.join(base, "postgres.log")
        self.port = free_port()
        self.max_connections = max_connections

    def _pg(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            [f"{PG_BIN}/{args[0]}", *args[1:]],
            preexec_fn=_as_postgres(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def init(self) -> PrivatePostgres:
        """initdb and start; returns self."""
        os.makedirs(self.socket_dir, exist_ok=True)
        entry = pwd.getpwnam("postgres")
        os.chown(self.base, entry.pw_uid, entry.pw_gid)
        os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.base, 0o755)  # noqa: S103 - postgres must reach its data directory
        self._pg(
            "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )
        if self.include:  # e.g. deploy/postgresql/fedoracloud.conf, as the database box has
            with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as conf:
                conf.write(f"include '{self.include}'\n")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a", encoding="utf-8") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                f"max_connections = {self.max_connections}\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\n"
            )
        self.start()
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: roll back open transactions, end the sessions)."""
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Restart it, as an admin would (every session is ended)."""
        self._pg(
            "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "restart", "-l", self.log
        )

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of one of its databases."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        """Stop it (if it runs) and delete its files."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class PrivateLibvirtd:
    """A libvirtd of one's own: a private mount namespace where /etc/libvirt, /run/libvirt,
    /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are directories under
    ``base``; reached from here on its own unix socket.  Its guests are QEMU processes that
    outlive it (``kill()`` is a crash of the daemon, not of the host); ``start()`` again
    finds them, as a restarted libvirtd does.  TCG only, no virtlogd (as in
    ``scripts/libvirt-test-env pair-up``)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.process: subprocess.Popen[bytes] | None = None
        self.host_uuid = str(uuid.uuid4())

    @property
    def socket(self) -> str:
        return os.path.join(self.base, "run", "libvirt-sock")

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    def _configure(self) -> None:
        for sub in ("etc", "run", "lib/qemu", "cache/qemu/capabilities", "log/qemu"):
            os.makedirs(os.path.join(self.base, sub), exist_ok=True)
        cache = "/var/cache/libvirt/qemu/capabilities"
        if os.path.isdir(cache):  # QEMU's capabilities, probed once by the machine's daemon
            shutil.copytree(
                cache, os.path.join(self.base, "cache/qemu/capabilities"), dirs_exist_ok=True
            )
        with open(os.path.join(self.base, "etc", "libvirtd.conf"), "w", encoding="utf-8") as conf:
            conf.write(
                "listen_tls = 0\nlisten_tcp = 0\n"
                'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                'unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\n'
                'unix_sock_ro_perms = "0700"\n'
                f'host_uuid = "{self.host_uuid}"\n'
                'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
            )
        with open(os.path.join(self.base, "etc", "qemu.conf"), "w", encoding="utf-8") as conf:
            conf.write(
                'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
                'security_driver = "none"\nstdio_handler = "file"\nnamespaces = [ ]\n'
                "cgroup_controllers = [ ]\n"
            )

    def start(self, timeout: float = 60) -> PrivateLibvirtd:
        """Start (or start again) the daemon and wait until it answers."""
        import libvirt

        if not os.path.exists(os.path.join(self.base, "etc", "libvirtd.conf")):
            self._configure()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        b = self.base
        script = (
            "set -e; "
            f"mount --bind {b}/etc /etc/libvirt; mount --bind {b}/run /run/libvirt; "
            f"mount --bind {b}/lib /var/lib/libvirt; mount --bind {b}/cache /var/cache/libvirt; "
            f"mount --bind {b}/log /var/log/libvirt; "
            "exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid"
        )
        os.makedirs("/run/libvirt", exist_ok=True)
        os.makedirs("/var/cache/libvirt", exist_ok=True)
        os.makedirs("/var/log/libvirt", exist_ok=True)
        os.makedirs("/var/lib/libvirt", exist_ok=True)
        out = open(os.path.join(b, "daemon.out"), "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"libvirtd exited: {self.tail()}")
            if not os.path.exists(self.socket):
                return False
            try:
                libvirt.open(self.uri).close()
            except libvirt.libvirtError:
                return False
            return True

        wait_for(answers, timeout, "the private libvirtd to answer", every=0.2)
        return self

    def tail(self) -> str:
        """The end of the daemon's output and log."""
        text = ""
        for name in ("daemon.out", "log/libvirtd.log"):
            with contextlib.suppress(OSError), open(os.path.join(self.base, name), "rb") as f:
                text += f.read()[-2000:].decode("utf-8", "replace")
        return text

    def kill(self) -> None:
        """SIGKILL the daemon (its guests keep running)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def qemu_pids(self) -> list[int]:
        """The QEMU processes of this daemon's guests (from their pid files)."""
        pids = []
        run = os.path.join(self.base, "run", "qemu")
        for name in os.listdir(run) if os.path.isdir(run) else []:
            if name.endswith(".pid"):
                with contextlib.suppress(OSError, ValueError), open(os.path.join(run, name)) as f:
                    pids.append(int(f.read().strip()))
        return pids

    def destroy(self) -> None:
        """Kill the daemon and its guests; the namespace goes with its last process."""
        import libvirt

        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(libvirt.libvirtError):
                conn = libvirt.open(self.uri)
                for dom in conn.listAllDomains(0):
                    with contextlib.suppress(libvirt.libvirtError):
                        if dom.isActive():
                            dom.destroy()
                        dom.undefine()
                conn.close()
        self.kill()
        for pid in self.qemu_pids():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as comm:
                if "qemu" in comm.read():
                    os.kill(pid, signal.SIGKILL)


class FaultProxy:
    """A TCP proxy on a free loopback port in front of ``upstream``.  ``cut()`` closes every
    connection through it and refuses new ones (as a stopped server does); ``restore()``
    accepts again on the same port."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.connections = 0

    def start(self) -> FaultProxy:
        """Listen and forward."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
                self.connections += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)

    def cut(self) -> None:
        """Stop listening and reset every open connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self.start()

    def close(self) -> None:
        """Stop for good."""
        self.cut()
