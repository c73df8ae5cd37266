"""Node enrollment end to end, as an admin and a node do it: the app served on loopback by
``fedoracloud serve`` (on the database under test), ``fedoracloud ca init`` and ``add-host``,
``fedoracloud-node enroll`` as a process against a fake libvirt host, approval with
``fedoracloud host approve``, and the certificate checked by ``openssl verify``."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from passlib.apache import HtpasswdFile

from fedoracloud.demo import DemoHost, host_xml
from fedoracloud.models import HostState
from fedoracloud.node_agent import make_csr, make_key

from ..cli import fedoracloud
from ..databases import scratch_database

pytestmark = pytest.mark.integration

RATE_LIMIT = 25
NODE = [sys.executable, "-W", "ignore", "-m", "fedoracloud.node_agent"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """A served FedoraCloud and the commands that act on it."""

    def __init__(self, root: Path, ini: Path, url: str) -> None:
        self.root = root
        self.ini = ini
        self.url = url

    def fc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``fedoracloud -c INI ARGS…`` (in this process; the server runs in its own)."""
        return fedoracloud("-c", str(self.ini), *args)

    def add_host(self, *args: str) -> dict[str, Any]:
        done = self.fc("add-host", "--json", "--server", self.url, *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def fake_host(self, hostname: str, index: int) -> str:
        path = self.root / f"{hostname}.xml"
        path.write_bytes(host_xml(DemoHost(hostname, "", "", HostState.PENDING, ()), index))
        return f"test://{path}"

    def node(self, command: str, state_dir: Path, *extra: str, background: bool = False) -> Any:
        """Run the node command ``add-host`` printed (plus test options)."""
        args = [*command.split()[1:], "--state-dir", str(state_dir), *extra]
        if background:
            return subprocess.Popen(
                NODE + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        return subprocess.run(NODE + args, capture_output=True, text=True, timeout=120)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:  # noqa: S310
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(  # noqa: S310
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def hosts(self, state: str = "") -> list[str]:
        done = self.fc("host", "list", *(["--state", state] if state else []))
        assert done.returncode == 0, done.stderr
        return [line.split()[2] for line in done.stdout.splitlines() if line.strip()]


class BusyFront:
    """A front server for the app that answers ``busy[(method, path prefix)]``'s statuses
    first (with ``Retry-After: 1`` and the app's JSON error), one per request, then passes
    the requests through to the app; ``busy_answers`` lists what it answered itself."""

    def __init__(self, app_url: str, busy: dict[tuple[str, str], list[int]]) -> None:
        self.app_url = app_url
        self.busy = {key: list(statuses) for key, statuses in busy.items()}
        self.busy_answers: list[tuple[str, str, int]] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                front.handle(self)

            def do_POST(self) -> None:
                front.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        for (method, prefix), statuses in self.busy.items():
            if request.command == method and request.path.startswith(prefix) and statuses:
                status = statuses.pop(0)
                self.busy_answers.append((method, request.path, status))
                code = "unavailable" if status == 503 else "rate_limited"
                answer = json.dumps({"error": {"code": code, "message": f"busy ({status})"}})
                self.reply(request, status, answer.encode(), "application/json", "1")
                return
        forwarded = urllib.request.Request(  # noqa: S310 - the app on loopback
            self.app_url + request.path,
            data=body,
            method=request.command,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as resp:  # noqa: S310
                status, raw, ctype = resp.status, resp.read(), resp.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            status, raw, ctype = exc.code, exc.read(), exc.headers["Content-Type"]
        self.reply(request, status, raw, ctype or "text/plain", None)

    @staticmethod
    def reply(
        request: BaseHTTPRequestHandler, status: int, raw: bytes, ctype: str, wait: str | None
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", ctype)
        request.send_header("Content-Length", str(len(raw)))
        if wait is not None:
            request.send_header("Retry-After", wait)
        request.end_headers()
        request.wfile.write(raw)

    def __enter__(self) -> BusyFront:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: Any, db_kind: str) -> Iterator[Site]:
    """``initdb``, ``ca init`` and ``serve`` on a fresh database of the kind under test."""
    root = tmp_path_factory.mktemp("enroll")
    with scratch_database(db_kind, str(root), "fc_enroll") as url:
        htpasswd = HtpasswdFile(str(root / "htpasswd"), new=True)
        htpasswd.set_password("admin", "admin-password")
        htpasswd.save()
        port = free_port()
        settings = {
            "use": "egg:fedoracloud",
            "sqlalchemy.url": url,
            "fedoracloud.session_secret": "enroll-test-secret-0123456789",
            "fedoracloud.secure_cookies": "false",
            "fedoracloud.htpasswd.file": str(root / "htpasswd"),
            "fedoracloud.instance_dir": str(root / "var"),
            "fedoracloud.admins": "admin",
            "fedoracloud.enroll.rate_limit": str(RATE_LIMIT),
            "fedoracloud.enroll.auto_approve": "auto*.cloud.example.org",
        }
        ini = root / "test.ini"
        ini.write_text("[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        site = Site(root, ini, f"http://127.0.0.1:{port}")
        for step in (["initdb"], ["ca", "init"]):
            done = site.fc(*step)
            assert done.returncode == 0, done.stderr
        server = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore",
                "-m",
                "fedoracloud.cli",
                "-c",
                str(ini),
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if site.get("/api/v1/ca.pem")[0] == 200:
                        break
                except OSError:
                    pass
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            yield site
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_for(predicate: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def openssl_verify(ca: Path, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *extra, str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ca_show_prints_the_fingerprint_and_keeps_the_key_private(site: Site) -> None:
    shown = site.fc("ca", "show")
    assert shown.returncode == 0, shown.stderr
    info = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    fingerprint = info["sha256_fingerprint"].strip()
    assert info["subject"].strip() == "CN=FedoraCloud CA,O=FedoraCloud"
    key = Path(info["key"].strip())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(info["client_key"].strip()).stat().st_mode) == 0o600
    x509 = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            info["certificate"].strip(),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert x509.stdout.strip().endswith("=" + fingerprint)
    again = site.fc("ca", "init")
    assert again.returncode == 1 and "already exists" in again.stderr
    for path in ("/api/v1/ca.pem", "/static/../var/ca/private/cakey.pem", "/api/v1/ca.key"):
        assert b"PRIVATE KEY" not in site.get(path)[1]


def test_a_node_enrolls_waits_is_approved_and_installs_its_certificate(
    site: Site, tmp_path: Path
) -> None:
    issued = site.add_host("--hostname", "node1.cloud.example.org", "--expires", "10m")
    assert set(issued) >= {"token", "expires", "ca_fingerprint", "command"}
    uri = site.fake_host("node1.cloud.example.org", 1)
    state = tmp_path / "state"
    agent = site.node(
        issued["command"], state, "--libvirt-uri", uri, "--poll-interval", "0.2",
        "--timeout", "60", background=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "node1.cloud.example.org" in site.hosts("pending"), "the pending host")
        shown = json.loads(site.fc("host", "show", "node1.cloud.example.org").stdout)
        assert (shown["state"], shown["pool"], shown["cpus"]) == (
            "pending",
            "root/hardware/default",
            8,
        )
        assert [n["mac"] for n in shown["nics"]] == ["52:54:00:fc:01:01", "52:54:00:fc:01:02"]
        approved = site.fc("host", "approve", "node1.cloud.example.org")
        assert approved.returncode == 0, approved.stderr
        _out, err = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 0, err
    lines = [line.split(" ", 3)[-1] for line in err.splitlines()]
    for said in (
        "Starting wakeup conversation.",
        "Sending node details to server.",
        "Retrieving certificate.",
    ):
        assert said in lines
    assert (
        lines.index("Starting wakeup conversation.")
        < lines.index("Sending node details to server.")
        < lines.index("Retrieving certificate.")
    )
    assert "Retrieving certificate." in (state / "enroll.log").read_text()
    pki = state / "pki"
    for key in (pki / "libvirt/private/serverkey.pem", pki / "libvirt/private/clientkey.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    verified = openssl_verify(pki / "CA/cacert.pem", pki / "libvirt/servercert.pem")
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stderr
    ca_file = Path(site.root / "var/ca/cacert.pem")
    assert openssl_verify(ca_file, pki / "libvirt/clientcert.pem").returncode == 0
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(pki / "libvirt/servercert.pem")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:node1.cloud.example.org" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text

    # running it again is safe: nothing is sent, the certificate stays
    before = (pki / "libvirt/servercert.pem").read_bytes()
    again = site.node(issued["command"], state, "--libvirt-uri", uri)
    assert again.returncode == 0, again.stderr
    assert "Already enrolled" in again.stderr
    assert (pki / "libvirt/servercert.pem").read_bytes() == before
    assert site.hosts().count("node1.cloud.example.org") == 1

    # rejecting revokes: the CRL served says so to openssl
    rejected = site.fc("host", "reject", "node1.cloud.example.org", "--reason", "retired")
    assert rejected.returncode == 0, rejected.stderr
    status, crl = site.get("/api/v1/ca.crl")
    assert status == 200
    (tmp_path / "crl.pem").write_bytes(crl)
    revoked = openssl_verify(
        ca_file, pki / "libvirt/servercert.pem", "-crl_check", "-CRLfile", str(tmp_path / "crl.pem")
    )
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr


def test_the_agent_says_what_went_wrong(site: Site, tmp_path: Path) -> None:
    uri = site.fake_host("node2.cloud.example.org", 2)
    issued = site.add_host("--hostname", "node2.cloud.example.org")
    wrong = issued["command"].replace(issued["ca_fingerprint"], "AB:" * 31 + "AB")
    mismatch = site.node(wrong, tmp_path / "a", "--libvirt-uri", uri)
    assert mismatch.returncode == 4 and "CA mismatch" in mismatch.stderr

    unreachable = site.node(
        issued["command"].replace(site.url, f"http://127.0.0.1:{free_port()}"),
        tmp_path / "b",
        "--libvirt-uri",
        uri,
    )
    assert unreachable.returncode == 5 and "cannot reach the server" in unreachable.stderr

    plain = site.node(
        issued["command"].replace(site.url, "http://fedoracloud.example.org"),
        tmp_path / "c",
        "--libvirt-uri",
        uri,
    )
    assert plain.returncode == 2 and "only allowed to a loopback" in plain.stderr

    # waiting times out (exit 7); the same command resumes, and a rejection ends it (exit 6)
    state = tmp_path / "d"
    timeout = site.node(
        issued["command"], state, "--libvirt-uri", uri, "--timeout", "0.5", "--poll-interval", "0.1"
    )
    assert timeout.returncode == 7 and "still waiting for approval" in timeout.stderr
    agent = site.node(
        issued["command"], state, "--libvirt-uri", uri, "--poll-interval", "0.2",
        "--timeout", "60", background=True,
    )  # fmt: skip
    try:
        rejected = site.fc("host", "reject", "node2.cloud.example.org", "--reason", "wrong rack")
        assert rejected.returncode == 0, rejected.stderr
        _out, err = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 6 and "rejected by the server: wrong rack" in err
    assert "already sent" in err

    # the token was used: another node with it is refused
    reused = site.node(issued["command"], tmp_path / "e", "--libvirt-uri", uri)
    assert (
        reused.returncode == 3 and "bad token" in reused.stderr and "already used" in reused.stderr
    )


def test_auto_approval_only_for_bound_tokens_matching_the_patterns(
    site: Site, tmp_path: Path
) -> None:
    uri = site.fake_host("auto1.cloud.example.org", 3)
    bound = site.add_host("--hostname", "auto1.cloud.example.org")
    done = site.node(bound["command"], tmp_path / "a", "--libvirt-uri", uri, "--timeout", "30")
    assert done.returncode == 0, done.stderr
    # approved at once; serve's event listener may already have found that its libvirt
    # (qemu+tls://auto1…, no such machine here) does not answer and marked it unavailable
    approved = site.hosts("available") + site.hosts("unavailable")
    assert "auto1.cloud.example.org" in approved
    assert "auto1.cloud.example.org" not in site.hosts("pending")
    uri = site.fake_host("auto2.cloud.example.org", 4)
    unbound = site.add_host()
    waiting = site.node(
        unbound["command"], tmp_path / "b", "--libvirt-uri", uri, "--hostname",
        "auto2.cloud.example.org", "--timeout", "0.5", "--poll-interval", "0.1",
    )  # fmt: skip
    assert waiting.returncode == 7, waiting.stderr
    assert "auto2.cloud.example.org" in site.hosts("pending")


def test_a_busy_server_is_asked_again_after_its_retry_after(site: Site, tmp_path: Path) -> None:
    """503 and 429 are no refusal: the agent waits for Retry-After and asks again."""
    uri = site.fake_host("busy1.cloud.example.org", 5)
    issued = site.add_host("--hostname", "busy1.cloud.example.org")
    busy = {
        ("GET", "/api/v1/ca.pem"): [503],
        ("POST", "/api/v1/enroll"): [503, 429],
        ("GET", "/api/v1/enroll/"): [429, 503],
    }
    with BusyFront(site.url, busy) as front:
        command = issued["command"].replace(site.url, front.url)
        agent = site.node(
            command, tmp_path / "a", "--libvirt-uri", uri, "--poll-interval", "0.2",
            "--timeout", "60", background=True,
        )  # fmt: skip
        try:
            wait_for(lambda: "busy1.cloud.example.org" in site.hosts("pending"), "the enrollment")
            wait_for(lambda: len(front.busy_answers) == 5, "the busy polls")
            approved = site.fc("host", "approve", "busy1.cloud.example.org")
            assert approved.returncode == 0, approved.stderr
            _out, err = agent.communicate(timeout=60)
        finally:
            agent.kill()
    assert agent.returncode == 0, err
    assert [status for _method, _path, status in front.busy_answers] == [503, 503, 429, 429, 503]
    assert err.count("The server is busy") == 5
    assert "HTTP 429: busy (429)" in err and "asking again in 1 s" in err
    assert "Enrolled: certificate" in err

    # busy until the timeout: exit 5, nothing enrolled, and the same command may run again
    uri = site.fake_host("busy2.cloud.example.org", 6)
    issued = site.add_host("--hostname", "busy2.cloud.example.org")
    with BusyFront(site.url, {("POST", "/api/v1/enroll"): [503] * 10}) as front:
        command = issued["command"].replace(site.url, front.url)
        gave_up = site.node(command, tmp_path / "b", "--libvirt-uri", uri, "--timeout", "2.5")
    assert gave_up.returncode == 5, gave_up.stderr
    assert "the server is still busy (HTTP 503: busy (503)) after 2.5 s" in gave_up.stderr
    assert 2 <= len(front.busy_answers) <= 4
    assert "busy2.cloud.example.org" not in site.hosts()


def test_bad_input_over_the_wire_creates_nothing_and_a_flood_is_limited(site: Site) -> None:
    before = site.hosts()
    issued = site.add_host()
    key = make_key()
    facts = {
        "uuid": "not-a-uuid",
        "hostname": "bad.cloud.example.org",
        "arch": "x86_64",
        "memory_mib": 1024,
    }
    csr = make_csr(key, "bad.cloud.example.org")
    status, answer = site.post(
        "/api/v1/enroll", {"token": issued["token"], "csr": csr, "facts": facts}
    )
    assert status == 400 and "not a UUID" in answer["error"]["message"]
    status, answer = site.post(
        "/api/v1/enroll",
        {
            "token": issued["token"],
            "csr": csr,
            "facts": {**facts, "uuid": str(uuid.uuid4()), "pool": 1},
        },
    )
    assert status == 400 and "may not choose its pool" in answer["error"]["message"]
    codes = [
        site.post("/api/v1/enroll", {"token": "fcenroll_forged", "csr": "", "facts": {}})[0]
        for _ in range(RATE_LIMIT)
    ]
    assert codes[-1] == 429 and set(codes) <= {403, 429}
    assert site.hosts() == before


def test_the_first_add_host_makes_the_ca_and_bad_options_say_why(tmp_path: Path) -> None:
    htpasswd = HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    htpasswd.set_password("admin", "admin-password")
    htpasswd.save()
    ini = tmp_path / "new.ini"
    ini.write_text(
        "[app:main]\nuse = egg:fedoracloud\n"
        f"sqlalchemy.url = sqlite:///{tmp_path / 'new.sqlite'}\n"
        "fedoracloud.session_secret = new-site-secret-0123456789\n"
        f"fedoracloud.htpasswd.file = {tmp_path / 'htpasswd'}\n"
        f"fedoracloud.instance_dir = {tmp_path / 'var'}\n"
    )
    site = Site(tmp_path, ini, "http://127.0.0.1:1")
    assert site.fc("initdb").returncode == 0
    first = site.fc("add-host")
    assert first.returncode == 0, first.stderr
    assert "made the CA in" in first.stderr
    assert "fedoracloud-node enroll --server " in first.stdout
    assert (tmp_path / "var/ca/private/cakey.pem").stat().st_mode & 0o077 == 0
    for args, words in (
        (["add-host", "--expires", "1y"], "not a duration"),
        (["add-host", "--pool", "root/hardware/nowhere"], "nowhere"),
        (["add-host", "--hostname", "bad;host"], "host name"),
        (["host", "list", "--state", "sleeping"], "unknown host state"),
        (["host", "approve", "ghost.example.org"], "no host"),
    ):
        done = site.fc(*args)
        assert done.returncode == 1 and words in done.stderr, (args, done.stderr)


def test_over_https_the_agent_trusts_the_app_ca_once_its_fingerprint_matches(
    tmp_path: Path,
) -> None:
    """A server whose TLS certificate the app's CA issued: with the fingerprint the agent
    fetches the CA, checks it, then trusts it for the rest; without it, it refuses."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    from cryptography.hazmat.primitives import serialization

    from fedoracloud.node_agent import main as node_main
    from fedoracloud.pki import CaSettings, CertificateAuthority, load_csr

    ca = CertificateAuthority(
        CaSettings.from_settings(SimpleNamespace(instance_dir=str(tmp_path), extra={}))
    )
    ca.init()
    key = make_key()
    issued = ca.sign_node_certificate(
        load_csr(make_csr(key, "localhost")), "localhost", "127.0.0.1"
    )
    (tmp_path / "web.pem").write_text(issued.pem)
    (tmp_path / "web.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca.certificate_pem().encode()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, ca_pem, "application/x-pem-file")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            error = {"code": "bad_token", "message": "unknown enrollment token", "details": {}}
            self._send(403, json.dumps({"error": error}).encode(), "application/json")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "web.pem", tmp_path / "web.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{httpd.server_address[1]}"
    common = ["enroll", "--server", url, "--token", "fcenroll_x", "--hostname", "n1.example.org"]
    common += ["--libvirt-uri", "test:///default"]
    try:
        untrusted = node_main([*common, "--state-dir", str(tmp_path / "a")])
        assert untrusted == 5
        assert "does not trust" in (tmp_path / "a/enroll.log").read_text()
        trusted = node_main(
            [*common, "--state-dir", str(tmp_path / "b"), "--ca-fingerprint", ca.fingerprint()]
        )
        assert trusted == 3  # it got as far as the server's answer about the token
        log = (tmp_path / "b/enroll.log").read_text()
        assert "CA fingerprint checked" in log and "Sending node details to server." in log
        wrong = node_main(
            [*common, "--state-dir", str(tmp_path / "c"), "--ca-fingerprint", "AB" * 32]
        )
        assert wrong == 4
    finally:
        httpd.shutdown()
        httpd.server_close()
