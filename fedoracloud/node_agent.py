"""The ``fedoracloud-node`` command that runs on nodes: ``fedoracloud-node enroll``.

It wakes up as oVirt nodes did, fetches the app's CA and checks its fingerprint, makes its
key (0600) and a CSR, sends them with the facts of its local libvirt, waits for an admin to
approve it, and installs its certificate where libvirtd's TLS expects it, under the state
directory (``pki/`` laid out as ``/etc/pki``).  Running it again is safe: an enrolled node
keeps its certificate, and a node still waiting resumes polling.

Only the standard library, ``cryptography`` and ``libvirt-python`` are needed
(``pip install 'fedoracloud[node]'`` installs no web stack).

Exit codes: 0 enrolled, 2 usage, 3 bad token, 4 CA mismatch, 5 server unreachable (or
still busy at the timeout), 6 rejected (by an admin, or the server refused what was sent),
7 still pending at the timeout, 8 local problem (libvirt, state directory).  A busy server
(503, or 429 when it limits this node) is asked again after its ``Retry-After``, within
``--timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import ipaddress
import json
import logging
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

import libvirt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .virt.facts import facts_to_json, read_host_facts

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_BAD_TOKEN = 3
EXIT_CA_MISMATCH = 4
EXIT_UNREACHABLE = 5
EXIT_REJECTED = 6
EXIT_TIMEOUT = 7
EXIT_LOCAL = 8

DEFAULT_STATE_DIR = "/var/lib/fedoracloud-node"
#: answers that mean "not now": the server is busy (503) or limits this node (429)
BUSY_STATUSES = (429, 503)
#: how long to wait on a busy answer without Retry-After, and at most with one
BUSY_WAIT = 5.0
BUSY_WAIT_MAX = 300.0
POLL_SECRET_HEADER = "X-Enrollment-Secret"  # noqa: S105 - a header name

log = logging.getLogger("fedoracloud.node")


class EnrollError(Exception):
    """Enrollment stops with this message and exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NodePaths:
    """Where the agent keeps its files under the state directory (libvirt's TLS layout)."""

    state_dir: str

    def path(self, *parts: str) -> str:
        """A path under the state directory."""
        return os.path.join(self.state_dir, *parts)

    @property
    def ca_cert(self) -> str:
        """``pki/CA/cacert.pem``."""
        return self.path("pki", "CA", "cacert.pem")

    @property
    def server_cert(self) -> str:
        """``pki/libvirt/servercert.pem``."""
        return self.path("pki", "libvirt", "servercert.pem")

    @property
    def server_key(self) -> str:
        """``pki/libvirt/private/serverkey.pem`` (0600)."""
        return self.path("pki", "libvirt", "private", "serverkey.pem")

    @property
    def client_cert(self) -> str:
        """``pki/libvirt/clientcert.pem`` (the same certificate: it has client usage too)."""
        return self.path("pki", "libvirt", "clientcert.pem")

    @property
    def client_key(self) -> str:
        """``pki/libvirt/private/clientkey.pem`` (0600)."""
        return self.path("pki", "libvirt", "private", "clientkey.pem")

    @property
    def enrollment(self) -> str:
        """The pending enrollment's id and poll secret (0600), to resume after a rerun."""
        return self.path("enrollment.json")

    @property
    def host_uuid(self) -> str:
        """The UUID kept for hosts whose libvirt reports none (the test driver)."""
        return self.path("host-uuid")


def _write(path: str, data: bytes, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700 if mode == 0o600 else 0o755, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint ``AB:CD:…``."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def normalize_fingerprint(text: str) -> str:
    """A fingerprint in any usual spelling (``sha256:``, colons, case) as ``AB:CD:…``."""
    raw = text.strip().lower().removeprefix("sha256:").removeprefix("sha256 fingerprint=")
    digits = raw.replace(":", "").replace(" ", "")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise EnrollError(
            f"--ca-fingerprint {text[:80]!r} is not a SHA-256 fingerprint (64 hex digits)",
            EXIT_USAGE,
        )
    return bytes.fromhex(digits).hex(":").upper()


def make_key() -> ec.EllipticCurvePrivateKey:
    """A new node key (EC P-256)."""
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: Any, hostname: str) -> str:
    """A CSR (PEM) for ``CN=hostname`` with a DNS SAN, signed by the key."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def check_server(url: str) -> str:
    """The server URL without trailing slash: https, or plain http only to loopback."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise EnrollError(f"--server {url!r} is not an http(s) URL", EXIT_USAGE)
    if parsed.scheme == "http":
        host = parsed.hostname
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if not loopback:
            raise EnrollError(
                f"--server {url!r}: plain http is only allowed to a loopback address; use https",
                EXIT_USAGE,
            )
    return url.rstrip("/")


class TlsUntrusted(EnrollError):
    """The server's TLS certificate is not trusted (yet)."""


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), between 0
    and BUSY_WAIT_MAX; BUSY_WAIT when it is missing or unreadable."""
    text = (value or "").strip()
    if text.isdecimal():
        return min(float(text), BUSY_WAIT_MAX)
    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return BUSY_WAIT
    return min(max(0.0, when - (time.time() if now is None else now)), BUSY_WAIT_MAX)


class Server:
    """The app's enrollment API over HTTP(S), with the standard library.  Over HTTPS it
    trusts the system's CAs and, once its fingerprint is checked, the app's own CA.

    A busy answer (503, or 429 when the server limits this node) is no refusal: the
    request is sent again after the server's ``Retry-After``, until ``deadline`` (a
    ``time.monotonic()`` value); past it the busy answer is returned."""

    def __init__(self, base: str, timeout: float = 30.0, deadline: float = 0.0) -> None:
        self.base = base
        self.timeout = timeout
        self.deadline = deadline
        self.context: ssl.SSLContext | None = (
            ssl.create_default_context() if base.startswith("https:") else None
        )

    def trust(self, ca_pem: str) -> None:
        """Trust the app's CA (after checking its fingerprint) besides the system's."""
        if self.context is not None:
            self.context = ssl.create_default_context()
            self.context.load_verify_locations(cadata=ca_pem)

    def unverified(self) -> Server:
        """The same server without TLS verification: only to fetch the CA certificate,
        whose fingerprint is then checked."""
        other = Server(self.base, self.timeout, self.deadline)
        other.context = ssl._create_unverified_context()  # noqa: S323
        return other

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text), busy answers waited out until the deadline;
        EnrollError(EXIT_UNREACHABLE) if no answer."""
        while True:
            status, answer, wait = self._exchange(method, path, body, headers)
            left = self.deadline - time.monotonic()
            if status not in BUSY_STATUSES or left <= 0:
                return status, answer
            wait = min(wait, left)
            log.warning(
                "The server is busy (HTTP %d: %s); asking again in %.0f s.",
                status,
                _error_message(answer)[1] or "no reason given",
                wait,
            )
            time.sleep(wait)

    def _exchange(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None
    ) -> tuple[int, Any, float]:
        """One request: (status, parsed JSON or text, seconds its Retry-After asks for)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - the scheme is checked in check_server
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"}
            | (headers or {}),
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                req, timeout=self.timeout, context=self.context
            ) as resp:
                status, raw, answer_headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, raw, answer_headers = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise TlsUntrusted(
                    f"the server at {self.base} has a TLS certificate this node does not"
                    f" trust ({reason.verify_message}); give --ca-fingerprint if it is"
                    " issued by the app's CA",
                    EXIT_UNREACHABLE,
                ) from exc
            raise EnrollError(
                f"cannot reach the server at {self.base}: {reason}", EXIT_UNREACHABLE
            ) from exc
        wait = retry_after(answer_headers.get("Retry-After"))
        if answer_headers.get_content_type() == "application/json":
            try:
                return status, json.loads(raw), wait
            except ValueError:
                pass
        return status, raw.decode("utf-8", "replace"), wait


def _error_message(answer: Any) -> tuple[str, str]:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("code", "")), str(answer["error"].get("message", ""))
    return "", str(answer)[:200]


def read_facts(libvirt_uri: str, hostname: str | None, paths: NodePaths) -> dict[str, Any]:
    """The facts of the local libvirt, with this node's UUID and host name."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly(libvirt_uri)
    except libvirt.libvirtError as exc:
        raise EnrollError(f"cannot read libvirt at {libvirt_uri}: {exc}", EXIT_LOCAL) from exc
    try:
        facts = read_host_facts(conn)
        name = hostname or conn.getHostname()
    except libvirt.libvirtError as exc:
        raise EnrollError(f"libvirt at {libvirt_uri}: {exc}", EXIT_LOCAL) from exc
    finally:
        conn.close()
    host_uuid = facts.uuid if not libvirt_uri.startswith("test:") else None
    if not host_uuid and not libvirt_uri.startswith("test:"):
        try:
            with open("/sys/class/dmi/id/product_uuid") as dmi:
                host_uuid = dmi.read().strip().lower() or None
        except OSError:
            host_uuid = None
    if not host_uuid:
        host_uuid = _kept_uuid(paths)
    return facts_to_json(host_uuid, name.lower(), facts)


def _kept_uuid(paths: NodePaths) -> str:
    """A UUID made once and kept in the state directory (libvirt gave none)."""
    try:
        with open(paths.host_uuid) as kept:
            return str(uuid_module.UUID(kept.read().strip()))
    except (OSError, ValueError):
        made = str(uuid_module.uuid4())
        _write(paths.host_uuid, (made + "\n").encode(), 0o644)
        return made


def _load_key(paths: NodePaths) -> Any:
    """The node's key, made (0600) the first time."""
    if os.path.exists(paths.server_key):
        with open(paths.server_key, "rb") as key_file:
            return serialization.load_pem_private_key(key_file.read(), password=None)
    key = make_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(paths.server_key, pem, 0o600)
    log.info("Made a new key: %s", paths.server_key)
    return key


def _installed(paths: NodePaths, ca: x509.Certificate, key: Any) -> x509.Certificate | None:
    """The installed certificate if it is this key's, issued by this CA and still valid."""
    try:
        with open(paths.server_cert, "rb") as cert_file:
            cert = x509.load_pem_x509_certificate(cert_file.read())
        cert.verify_directly_issued_by(ca)
    except Exception:  # any doubt about the installed certificate: not enrolled
        return None
    same_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not same_key or cert.not_valid_after_utc.timestamp() < time.time():
        return None
    return cert


def fetch_ca(server: Server, expected: str | None, paths: NodePaths) -> x509.Certificate:
    """The server's CA, checked against the fingerprint given (or the one installed); from
    then on the server's TLS certificate may be one the app's CA issued."""
    if expected is None and os.path.exists(paths.ca_cert):
        with open(paths.ca_cert, "rb") as installed:
            expected = fingerprint(x509.load_pem_x509_certificate(installed.read()))
    try:
        status, answer = server.request("GET", "/api/v1/ca.pem")
    except TlsUntrusted:
        if expected is None:
            raise
        status, answer = server.unverified().request("GET", "/api/v1/ca.pem")
    if status != 200 or not isinstance(answer, str):
        _code, message = _error_message(answer)
        raise EnrollError(
            f"the server did not give its CA (HTTP {status}): {message}", EXIT_UNREACHABLE
        )
    try:
        ca = x509.load_pem_x509_certificate(answer.encode())
    except ValueError as exc:
        raise EnrollError("the server's CA is not a PEM certificate", EXIT_CA_MISMATCH) from exc
    got = fingerprint(ca)
    if expected is None:
        log.warning("No --ca-fingerprint given: trusting the server's CA %s on first use.", got)
    elif got != expected:
        raise EnrollError(
            f"CA mismatch: the server's CA has fingerprint {got}, expected {expected};"
            " not enrolling with this server",
            EXIT_CA_MISMATCH,
        )
    else:
        log.info("CA fingerprint checked: %s", got)
    server.trust(answer)
    return ca


def _install(paths: NodePaths, ca_pem: str, cert_pem: str, key: Any) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:
        raise EnrollError(
            f"the certificate received is not issued by the CA: {exc}", EXIT_CA_MISMATCH
        ) from exc
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(paths.ca_cert, ca_pem.encode(), 0o644)
    _write(paths.server_cert, cert_pem.encode(), 0o644)
    _write(paths.client_cert, cert_pem.encode(), 0o644)
    _write(paths.client_key, key_pem, 0o600)
    return cert


def enroll(args: argparse.Namespace) -> int:
    """The enrollment conversation; returns the exit code."""
    paths = NodePaths(os.path.abspath(args.state_dir))
    log.info("Starting wakeup conversation.")
    server = Server(check_server(args.server), deadline=time.monotonic() + args.timeout)
    expected = normalize_fingerprint(args.ca_fingerprint) if args.ca_fingerprint else None
    ca = fetch_ca(server, expected, paths)
    key = _load_key(paths)
    installed = _installed(paths, ca, key)
    if installed is not None:
        log.info(
            "Already enrolled: certificate %x for %s, valid until %s (%s). Nothing to do.",
            installed.serial_number,
            installed.subject.rfc4514_string(),
            installed.not_valid_after_utc.strftime("%Y-%m-%d"),
            paths.server_cert,
        )
        return EXIT_OK
    pending = _pending(paths)
    if pending is None:
        facts = read_facts(args.libvirt_uri, args.hostname, paths)
        log.info(
            "Node %s (UUID %s): %s, %d CPUs, %d MiB, %d NICs, libvirt %s.",
            facts["hostname"],
            facts["uuid"],
            facts["arch"],
            len(facts["cpus"]),
            facts["memory_mib"],
            len(facts["nics"]),
            facts["libvirt_version"],
        )
        if not args.token:
            raise EnrollError("--token is required to enroll", EXIT_USAGE)
        log.info("Sending node details to server.")
        status, answer = server.request(
            "POST",
            "/api/v1/enroll",
            {"token": args.token, "csr": make_csr(key, facts["hostname"]), "facts": facts},
        )
        code, message = _error_message(answer)
        if status in BUSY_STATUSES:
            raise _still_busy(status, message, args)
        if status == 403 and code == "bad_token":
            raise EnrollError(f"bad token: {message}", EXIT_BAD_TOKEN)
        if status != 202 or not isinstance(answer, dict):
            raise EnrollError(
                f"the server refused the enrollment (HTTP {status}): {message}", EXIT_REJECTED
            )
        pending = {"id": answer["id"], "secret": answer["secret"]}
        _write(paths.enrollment, json.dumps(pending).encode(), 0o600)
        log.info("Enrollment %s sent; waiting for an administrator to approve it.", answer["id"])
    else:
        log.info("Enrollment %s already sent; waiting for its approval.", pending["id"])
    return _wait(server, paths, pending, key, args)


def _still_busy(status: int, message: str, args: argparse.Namespace) -> EnrollError:
    return EnrollError(
        f"the server is still busy (HTTP {status}: {message}) after {args.timeout:g} s;"
        " run the same command again later",
        EXIT_UNREACHABLE,
    )


def _pending(paths: NodePaths) -> dict[str, Any] | None:
    try:
        with open(paths.enrollment) as saved:
            data = json.load(saved)
        return data if isinstance(data, dict) and "id" in data and "secret" in data else None
    except (OSError, ValueError):
        return None


def _wait(
    server: Server, paths: NodePaths, pending: dict[str, Any], key: Any, args: argparse.Namespace
) -> int:
    deadline = server.deadline
    while True:
        status, answer = server.request(
            "GET",
            f"/api/v1/enroll/{int(pending['id'])}",
            headers={POLL_SECRET_HEADER: str(pending["secret"])},
        )
        if status == 404:
            os.unlink(paths.enrollment)
            raise EnrollError(
                "the server does not know this enrollment any more; enroll again with a new token",
                EXIT_REJECTED,
            )
        if status != 200 or not isinstance(answer, dict):
            _code, message = _error_message(answer)
            if status in BUSY_STATUSES:
                raise _still_busy(status, message, args)
            raise EnrollError(f"polling failed (HTTP {status}): {message}", EXIT_UNREACHABLE)
        state = answer.get("state")
        if state == "approved":
            log.info("Retrieving certificate.")
            cert = _install(paths, answer["ca_certificate"], answer["certificate"], key)
            os.unlink(paths.enrollment)
            log.info(
                "Enrolled: certificate %x valid until %s installed in %s.",
                cert.serial_number,
                cert.not_valid_after_utc.strftime("%Y-%m-%d"),
                os.path.dirname(paths.server_cert),
            )
            return EXIT_OK
        if state == "denied":
            os.unlink(paths.enrollment)
            raise EnrollError(
                f"rejected by the server: {answer.get('reason') or 'no reason given'}",
                EXIT_REJECTED,
            )
        if time.monotonic() >= deadline:
            raise EnrollError(
                f"still waiting for approval after {args.timeout:g} s; run the same command"
                " again to keep waiting",
                EXIT_TIMEOUT,
            )
        time.sleep(min(args.poll_interval, max(0.0, deadline - time.monotonic())))


def _logging(state_dir: str) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(fmt)
    log.addHandler(err)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        to_file = logging.FileHandler(os.path.join(state_dir, "enroll.log"))
        to_file.setFormatter(fmt)
        log.addHandler(to_file)
    except OSError as exc:
        log.error("cannot write %s/enroll.log: %s", state_dir, exc)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="fedoracloud-node", description="FedoraCloud's node agent."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "enroll",
        help="enroll this node with the FedoraCloud server",
        description="Enroll this node: send its facts and a CSR, wait for approval, install"
        " the certificate for libvirtd's TLS.",
    )
    p.add_argument("--server", required=True, help="the app's URL (https; http only loopback)")
    p.add_argument("--token", default="", help="the one-time token from 'fedoracloud add-host'")
    p.add_argument("--ca-fingerprint", help="the CA's SHA-256 fingerprint, as printed")
    p.add_argument("--libvirt-uri", default="qemu:///system", help="the local libvirt")
    p.add_argument("--hostname", help="this node's host name (default: libvirt's)")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where keys and certs go")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for approval")
    p.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fedoracloud-node``."""
    args = build_parser().parse_args(argv)
    _logging(args.state_dir)
    try:
        return enroll(args)
    except EnrollError as exc:
        log.error("%s", exc)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
