"""The console proxy for real: websockify with our token plugin on a loopback port, in
front of a real TCG guest's VNC display on the machine's libvirtd, tokens in a real
database (the run's kind) issued by the app's service and consumed by the proxy."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import transaction
from sqlalchemy import select
from websockify.websocket import WebSocket

from alembic import command
from fedoracloud.console_proxy import make_server, start
from fedoracloud.models import (
    ConsoleToken,
    Host,
    PoolKind,
    Vm,
    get_engine,
    get_session_factory,
    get_tm_session,
)
from fedoracloud.models.meta import utcnow
from fedoracloud.services.consoles import TOKEN_PROTOCOL, ConsoleService
from fedoracloud.services.pools import PoolService
from fedoracloud.settings import ConsoleSettings

from ..conftest import alembic_config
from ..console_guest import VncGuest, vnc_guest
from .test_cli import fc, write_ini

pytestmark = pytest.mark.integration


class Proxy:
    """The running proxy, and a way to mint tokens for the guest's VM."""

    def __init__(self, engine: Any, server: Any, vm_id: int, guest: VncGuest, db: str) -> None:
        self.engine = engine
        self.database_url = db
        self.server = server
        self.vm_id = vm_id
        self.guest = guest
        self.url = f"ws://127.0.0.1:{server.port}/"

    def mint(self, expired: bool = False) -> str:
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            session = get_tm_session(get_session_factory(self.engine), manager)
            vm = session.get(Vm, self.vm_id)
            issued = ConsoleService(session, None, "127.0.0.1", ConsoleSettings()).issue(vm)
            if expired:
                row = session.scalars(
                    select(ConsoleToken).order_by(ConsoleToken.id.desc()).limit(1)
                ).one()
                row.expires_at = utcnow() - timedelta(seconds=1)
        return issued.token


@pytest.fixture(scope="module")
def proxy(
    tcg_guest: Any, real_libvirt: str, tmp_path_factory: Any, db_kind: str
) -> Iterator[Proxy]:
    from ..conftest import PG_BASE_URL

    base = tmp_path_factory.mktemp("console")
    if db_kind == "sqlite":
        url = f"sqlite:///{base / 'console.sqlite'}"
        drop = None
    else:
        import secrets

        import sqlalchemy as sa

        name = f"fc_console_{secrets.token_hex(3)}"
        admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    settings = {"sqlalchemy.url": url}
    command.upgrade(alembic_config(settings), "head")
    engine = get_engine(settings)
    try:
        with vnc_guest(tcg_guest, "fc-test-console-i", str(base)) as guest:
            manager = transaction.TransactionManager(explicit=True)
            with manager:
                session = get_tm_session(get_session_factory(engine), manager)
                pools = PoolService(session)
                made = pools.ensure_builtin()
                hardware = pools.create("consoles", PoolKind.HARDWARE, made["hardware"])
                vm_pool = pools.create("console-vms", PoolKind.VM, hardware)
                host = Host(
                    uuid="6f1d2c1e-0000-4000-8000-00000000c0de",
                    hostname="localhost",
                    pool_id=hardware.id,
                    state="available",
                    libvirt_uri=guest.uri,
                )
                session.add(host)
                session.flush()
                vm = Vm(
                    uuid=guest.uuid,
                    name=guest.name,
                    pool_id=vm_pool.id,
                    host_id=host.id,
                    state="running",
                )
                session.add(vm)
                session.flush()
                vm_id = vm.id
            server = make_server(engine, "127.0.0.1", 0)
            thread = start(server)
            try:
                yield Proxy(engine, server, vm_id, guest, url)
            finally:
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
    finally:
        engine.dispose()
        if drop is not None:
            drop()


def open_console(url: str, token: str | None, protocols: list[str] | None = None) -> WebSocket:
    """A WebSocket handshake offering ``binary`` and the token's subprotocol."""
    ws = WebSocket()
    offered = protocols if protocols is not None else ["binary", TOKEN_PROTOCOL + str(token)]
    ws.connect(url, protocols=offered)
    return ws


def rfb_banner(ws: WebSocket, timeout: float = 10.0) -> bytes:
    """The first bytes the VNC server sends through the proxy (its RFB version)."""
    ws.socket.settimeout(timeout)
    data = b""
    while len(data) < 12:
        message = ws.recvmsg()
        if message is None:
            break
        data += message
    return data


def refused(url: str, token: str | None, protocols: list[str] | None = None) -> str:
    with pytest.raises(Exception, match="WebSocket request denied") as denied:
        open_console(url, token, protocols)
    return str(denied.value)


def test_a_valid_token_reaches_the_guests_vnc_once(proxy):
    token = proxy.mint()
    ws = open_console(proxy.url, token)
    try:
        assert ws.protocol.strip() == "binary"  # the token is not echoed back
        assert rfb_banner(ws) == b"RFB 003.008\n"
        # the RFB handshake goes on through the proxy: we speak 3.8, the server offers
        # its security types (1 = None: FedoraCloud's VNC has no password)
        ws.sendmsg(b"RFB 003.008\n")
        message = ws.recvmsg()
        count, types = message[0], message[1:]
        assert count >= 1 and 1 in types, message
    finally:
        ws.shutdown(socket.SHUT_RDWR)
    # the same token again: refused, whether the first connection is still open or not
    assert "403" in refused(proxy.url, token)


def test_expired_unknown_and_missing_tokens_are_refused(proxy):
    assert "403" in refused(proxy.url, proxy.mint(expired=True))
    assert "403" in refused(proxy.url, "A" * 43)
    assert "403" in refused(proxy.url, None, protocols=["binary"])
    # the stock websockify way, the token in the query string, is not accepted here
    token = proxy.mint()
    assert "403" in refused(f"{proxy.url}?token={token}", None, protocols=["binary"])
    # and that token is still good through the handshake header
    ws = open_console(proxy.url, token)
    try:
        assert rfb_banner(ws) == b"RFB 003.008\n"
    finally:
        ws.shutdown(socket.SHUT_RDWR)


def test_racing_connections_with_one_token_get_one_display(proxy):
    token = proxy.mint()
    results: list[str] = []

    def attempt() -> None:
        try:
            ws = open_console(proxy.url, token)
        except Exception as exc:  # the refusal
            results.append(str(exc))
            return
        results.append(rfb_banner(ws).decode())
        ws.shutdown(socket.SHUT_RDWR)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results).count("RFB 003.008\n") == 1, results
    assert sum("403" in r for r in results) == 3, results


def test_nothing_logs_the_token(proxy, caplog):
    token = proxy.mint()
    with caplog.at_level("DEBUG", logger="fedoracloud.console_proxy"):
        ws = open_console(proxy.url, token)
        rfb_banner(ws)
        ws.shutdown(socket.SHUT_RDWR)
        refused(proxy.url, token)
        time.sleep(0.2)  # the handler threads finish their log lines
    text = caplog.text
    assert f"connecting to 127.0.0.1:{proxy.guest.port}" in text
    assert "refused: console token unknown, already used or expired" in text
    assert token not in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_console_proxy_command(proxy, tmp_path):
    ini = write_ini(tmp_path, proxy.database_url)
    bad = fc(ini, "console-proxy", "--listen", "localhost")
    assert bad.returncode == 2
    assert "--listen wants HOST:PORT such as 127.0.0.1:6080" in bad.stderr
    port = free_port()
    command = [sys.executable, "-W", "ignore", "-m", "fedoracloud.cli", "-c", str(ini)]
    process = subprocess.Popen(
        [*command, "console-proxy", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == f"console proxy listening on 127.0.0.1:{port} (Ctrl-C stops it)"
        url = f"ws://127.0.0.1:{port}/"
        token = proxy.mint()
        ws = open_console(url, token)
        try:
            assert rfb_banner(ws) == b"RFB 003.008\n"
        finally:
            ws.shutdown(socket.SHUT_RDWR)
        assert "403" in refused(url, token)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read() if process.stderr else ""
    assert f"connecting to 127.0.0.1:{proxy.guest.port}" in log
    assert token not in log
