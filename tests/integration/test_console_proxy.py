"""The console proxy for real: websockify with our token plugin on a loopback port, in
front of a real TCG guest's VNC display on the machine's libvirtd, tokens in a real
database (the run's kind) issued by the app's service and consumed by the proxy."""

from __future__ import annotations

import re
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
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fedoracloud.console_proxy import ConsoleTokenPlugin, make_server, start
from fedoracloud.models import (
    ConsoleToken,
    PoolKind,
    Vm,
    get_engine,
    get_session_factory,
    get_tm_session,
)
from fedoracloud.models.meta import utcnow
from fedoracloud.services.consoles import TOKEN_PROTOCOL, ConsoleService
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService

from ..console_guest import VncGuest, record_guest, vnc_guest
from ..databases import scratch_database
from .test_cli import write_ini

pytestmark = pytest.mark.integration

#: seconds between the proxy's pings in these tests (websockify checks once a second)
HEARTBEAT = 1


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
            issued = ConsoleService(ServiceContext.for_session(session, None, "127.0.0.1")).issue(
                vm
            )
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
    base = tmp_path_factory.mktemp("console")
    with scratch_database(db_kind, str(base), "fc_console", migrated=True) as url:
        engine = get_engine({"sqlalchemy.url": url})
        try:
            with vnc_guest(tcg_guest, "fc-test-console-i", str(base)) as guest:
                manager = transaction.TransactionManager(explicit=True)
                with manager:
                    session = get_tm_session(get_session_factory(engine), manager)
                    pools = PoolService(ServiceContext.for_session(session))
                    made = pools.ensure_builtin()
                    hardware = pools.create("consoles", PoolKind.HARDWARE, made["hardware"])
                    vm_pool = pools.create("console-vms", PoolKind.VM, hardware)
                    vm_id = record_guest(
                        session, guest, hardware, vm_pool, "6f1d2c1e-0000-4000-8000-00000000c0de"
                    )
                server = make_server(engine, "127.0.0.1", 0, heartbeat=HEARTBEAT)
                thread = start(server)
                try:
                    yield Proxy(engine, server, vm_id, guest, url)
                finally:
                    server.shutdown()
                    server.server_close()
                    thread.join(timeout=5)
        finally:
            engine.dispose()


def open_console(
    url: str, token: str | None, protocols: list[str] | None = None, **kw: Any
) -> ClientConnection:
    """A WebSocket handshake offering ``binary`` and the token's subprotocol."""
    offered = protocols if protocols is not None else ["binary", TOKEN_PROTOCOL + str(token)]
    return connect(url, subprotocols=offered, compression=None, proxy=None, open_timeout=30, **kw)


def rfb_banner(ws: ClientConnection, timeout: float = 30.0) -> bytes:
    """The first bytes the VNC server sends through the proxy (its RFB version)."""
    data = b""
    while len(data) < 12:
        data += ws.recv(timeout=timeout)
    return data


def refused(url: str, token: str | None, protocols: list[str] | None = None, **kw: Any) -> int:
    """The HTTP status that refused the handshake."""
    with pytest.raises(InvalidStatus) as denied, open_console(url, token, protocols, **kw):
        pass
    return int(denied.value.response.status_code)


def test_a_valid_token_reaches_the_guests_vnc_once(proxy):
    token = proxy.mint()
    with open_console(proxy.url, token) as ws:
        assert ws.subprotocol == "binary"  # the token is not echoed back
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "binary"
        assert rfb_banner(ws) == b"RFB 003.008\n"
        # the RFB handshake goes on through the proxy: we speak 3.8, the server offers
        # its security types (1 = None: FedoraCloud's VNC has no password)
        ws.send(b"RFB 003.008\n")
        message = ws.recv(timeout=30)
        count, types = message[0], message[1:]
        assert count >= 1 and 1 in types, message
        # the same token again: refused while the first connection is open …
        assert refused(proxy.url, token) == 403
    # … and after it closed
    assert refused(proxy.url, token) == 403


def test_expired_unknown_and_missing_tokens_are_refused(proxy, caplog):
    assert refused(proxy.url, proxy.mint(expired=True)) == 403
    assert refused(proxy.url, "A" * 43) == 403
    assert refused(proxy.url, None, protocols=["binary"]) == 403
    # without the binary subprotocol the handshake cannot succeed: refused, token kept
    kept = proxy.mint()
    assert refused(proxy.url, None, protocols=[TOKEN_PROTOCOL + kept]) == 400
    with open_console(proxy.url, kept) as ws:
        assert rfb_banner(ws) == b"RFB 003.008\n"
    # the stock websockify way, the token in the query string, is not accepted here
    token = proxy.mint()
    with caplog.at_level("INFO", logger="fedoracloud.console_proxy"):
        assert refused(f"{proxy.url}?token={token}", None, protocols=["binary"]) == 403
    assert '"GET /" 403' in caplog.text  # the request is logged without its query
    assert token not in caplog.text  # so not even a token a client put in the URL
    # and that token is still good through the handshake header
    with open_console(proxy.url, token) as ws:
        assert rfb_banner(ws) == b"RFB 003.008\n"


def test_racing_connections_with_one_token_get_one_display(proxy):
    token = proxy.mint()
    results: list[str] = []

    def attempt() -> None:
        try:
            with open_console(proxy.url, token) as ws:
                results.append(rfb_banner(ws).decode())
        except InvalidStatus as exc:  # the refusal
            results.append(str(exc.response.status_code))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results).count("RFB 003.008\n") == 1, results
    assert results.count("403") == 3, results


def test_nothing_logs_the_token(proxy, caplog):
    token = proxy.mint()
    with caplog.at_level("DEBUG", logger="fedoracloud.console_proxy"):
        with open_console(proxy.url, token) as ws:
            rfb_banner(ws)
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


LISTENING = r"console proxy listening on 127\.0\.0\.1:(\d+) \(Ctrl-C stops it\)"


def test_the_console_proxy_command(proxy, tmp_path):
    ini = write_ini(tmp_path, proxy.database_url)
    # the plugin also reads the database named by an ini (websockify's --token-source)
    plugin = ConsoleTokenPlugin(str(ini))
    assert plugin.lookup(proxy.mint()) == ("127.0.0.1", proxy.guest.port)
    plugin.engine.dispose()
    command = [sys.executable, "-W", "ignore", "-m", "fedoracloud.cli", "-c", str(ini)]
    process = subprocess.Popen(
        [*command, "console-proxy", "--listen", "127.0.0.1:0"],  # it says which port
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        said = re.fullmatch(LISTENING, line.strip())
        if said is None:
            process.kill()
            pytest.fail(f"no 'listening' line: {line!r} {process.communicate()[1]}")
        port = int(said.group(1))
        url = f"ws://127.0.0.1:{port}/"
        token = proxy.mint()
        with open_console(url, token) as ws:
            assert rfb_banner(ws) == b"RFB 003.008\n"
        assert refused(url, token) == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read() if process.stderr else ""
    assert f"connecting to 127.0.0.1:{proxy.guest.port}" in log
    assert token not in log


# -- httpd in front, as on a UI box ----------------------------------------------------------

#: seconds httpd waits on an idle connection (the proxy's pings come more often)
HTTPD_TIMEOUT = 3

APACHE_MODULES = (
    "mpm_event",
    "authz_core",
    "alias",
    "headers",
    "socache_shmcb",
    "ssl",
    "proxy",
    "proxy_http",
    "proxy_wstunnel",
)


def self_signed(directory: Any) -> tuple[str, str]:
    """A certificate and key for localhost (httpd's TLS in the test)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "httpd.crt", directory / "httpd.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def httpd(proxy: Proxy, tmp_path_factory: Any) -> Iterator[tuple[int, Any]]:
    """Debian's apache2 running the UI box's rendered conf, its /console/ proxied to the
    console proxy; yields its HTTPS port and its log directory."""
    import shutil

    from fedoracloud.puppet import ConfigRenderer
    from fedoracloud.settings import PuppetSettings

    if shutil.which("apache2") is None:
        pytest.fail("apache2 is missing: run scripts/install-system-packages test")
    base = tmp_path_factory.mktemp("httpd")
    cert, key = self_signed(base)
    (base / "static").mkdir()
    settings = PuppetSettings.from_dict(
        {
            "fedoracloud.server_name": "localhost",
            "fedoracloud.console_proxy.address": "127.0.0.1",
            "fedoracloud.console_proxy.port": str(proxy.server.port),
            "fedoracloud.web.tls_cert": cert,
            "fedoracloud.web.tls_key": key,
            "fedoracloud.web.static_dir": str(base / "static"),
        }
    )
    (rendered,) = ConfigRenderer(settings).web_files()
    assert f'ProxyPass /console/ "ws://127.0.0.1:{proxy.server.port}/"' in rendered.content
    http_port, https_port = free_port(), free_port()
    # the rendered virtual hosts, on free ports instead of 80 and 443
    vhosts = rendered.content.replace("*:443>", f"*:{https_port}>").replace(
        "*:80>", f"*:{http_port}>"
    )
    (base / "fedoracloud.conf").write_text(vhosts)
    modules = "".join(
        f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n" for m in APACHE_MODULES
    )
    (base / "httpd.conf").write_text(
        f"ServerRoot /etc/apache2\nServerName localhost\nPidFile {base}/httpd.pid\n"
        f"ErrorLog {base}/error.log\nLogLevel info\nMutex file:{base}\n{modules}"
        # a short idle timeout: the console proxy's pings must keep an idle console open
        f"Timeout {HTTPD_TIMEOUT}\n"
        # Debian's combined format, as the UI box's access log writes it
        'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined\n'
        f"CustomLog {base}/access.log combined\n"
        f"Listen 127.0.0.1:{http_port}\nListen 127.0.0.1:{https_port} https\n"
        f"Include {base}/fedoracloud.conf\n"
    )
    process = subprocess.Popen(
        ["apache2", "-X", "-f", str(base / "httpd.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    pytest.fail(f"apache2 did not start: {output}")
                time.sleep(0.05)
        yield https_port, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def unverified_tls() -> Any:
    """A TLS client context for the test's own self-signed certificate."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_httpd_proxies_the_console_and_never_logs_its_token(proxy, httpd):
    port, logs = httpd
    token = proxy.mint()
    url = f"wss://127.0.0.1:{port}/console/"
    tls = {"ssl": unverified_tls(), "server_hostname": "localhost"}
    with open_console(url, token, **tls) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "binary"
        assert rfb_banner(ws) == b"RFB 003.008\n"
        # idle for longer than httpd's Timeout: the proxy's pings keep the tunnel open
        time.sleep(HTTPD_TIMEOUT * 2)
        ws.send(b"RFB 003.008\n")
        assert 1 in ws.recv(timeout=30)[1:]  # the security types: 1 = None
    assert refused(url, token, **tls) == 403  # replayed through httpd
    # httpd writes its access log line when the connection ends
    deadline = time.monotonic() + 30
    while '"GET /console/ HTTP/1.1" 101' not in (access := (logs / "access.log").read_text()):
        assert time.monotonic() < deadline, access
        time.sleep(0.05)
    for log in ("access.log", "error.log"):
        assert token not in (logs / log).read_text()
