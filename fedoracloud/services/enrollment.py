"""Node enrollment (docs/architecture.md §5): one-time tokens, nodes enrolling with a CSR and their
facts, admins approving or rejecting hosts, certificates signed and revoked by the app's CA.

Nothing a node sends decides its pool, owner or state: the token decides the pool, an admin
the state.  For the Puppet side: ``host_certificate(dbsession, host)`` is an approved host's
current certificate (PEM) and ``is_approved(host)`` says whether the host is approved.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from zope.interface import Interface

from ..models import Enrollment, EnrollmentToken, Host, HostNic, HostState, Pool, PoolKind
from ..models.enrollment import EnrollAttempt
from ..models.meta import utcnow
from ..pki import CaError, CaSettings, CertificateAuthority, csr_common_name, load_csr
from ..pki import public_key_sha256 as key_sha256
from ..virt.facts import CpuFact, HostFacts, NicFact
from . import Conflict, InvalidInput, NotFound, ServiceError
from .audit import record
from .context import Service, ServiceContext
from .hosts import HostService, check_hostname, check_uuid
from .pools import PoolService
from .storage import StorageService

TOKEN_PREFIX = "fcenroll_"  # noqa: S105 - a prefix, not a secret
MAX_NICS = 64
MAX_CPUS = 4096
MAX_MEMORY_MIB = 64 * 1024 * 1024  # 64 TiB
MAX_CSR_CHARS = 16_000
MIN_TOKEN_SECONDS = 60
MAX_TOKEN_SECONDS = 7 * 24 * 3600
_DURATION = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ARCH = re.compile(r"^[a-z0-9_]{1,32}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+_-]{0,32}$")
_NIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,31}$")
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
#: free text from a node (CPU vendor, model, flags): printable, no markup or shell characters
_TEXT = re.compile(r"^[A-Za-z0-9 ._,()/+@:=-]*$")
_FACT_FIELDS = frozenset(
    {
        "uuid",
        "hostname",
        "arch",
        "hypervisor",
        "hypervisor_version",
        "libvirt_version",
        "memory_mib",
        "cpu_mhz",
        "cpus",
        "nics",
    }
)
_CPU_FIELDS = frozenset({"index", "socket", "core", "thread", "vendor", "model", "speed_mhz"})
_CPU_FIELDS_ALL = _CPU_FIELDS | {"flags"}
_NIC_FIELDS = frozenset({"name", "mac", "ip_address", "prefix_length"})
#: what a node might try to decide for itself; named in the refusal
_CLAIMS = frozenset({"pool", "pool_id", "state", "owner", "owner_id", "approved", "role"})


class BadToken(ServiceError):
    """The enrollment token is unknown, forged, expired or used."""

    status = 403
    code = "bad_token"


class HostnameMismatch(ServiceError):
    """The node's name is not the one the token is bound to."""

    status = 403
    code = "hostname_mismatch"


class RateLimited(ServiceError):
    """Too many enrollment requests from one address."""

    status = 429
    code = "rate_limited"


class ReservedHostname(ServiceError):
    """The name is one of the cloud's own machines (or ``localhost``): a node enrolled
    under it would be given that machine's certificate and Puppet classes."""

    status = 409
    code = "reserved_hostname"


class CaUnavailable(ServiceError):
    """The CA is not set up."""

    status = 503
    code = "ca_unavailable"


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a token or poll secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` as seconds, between a minute and a week."""
    match = _DURATION.match((text or "").strip().lower())
    if not match:
        raise InvalidInput(
            f"not a duration: {text[:32]!r} (say 30m, 1h or 2d)", {"field": "expires"}
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_TOKEN_SECONDS <= seconds <= MAX_TOKEN_SECONDS:
        raise InvalidInput(
            "an enrollment token lives between 1 minute and 7 days", {"field": "expires"}
        )
    return seconds


@dataclass(frozen=True)
class EnrollmentSettings:
    """The ``fedoracloud.enroll.*`` settings."""

    default_pool: str = "root/hardware/default"
    rate_limit: int = 30
    rate_window: int = 60
    auto_approve: tuple[str, ...] = ()
    server_url: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> EnrollmentSettings:
        """From the app's typed Settings."""
        extra = settings.extra

        def number(key: str, default: int) -> int:
            raw = str(extra.get(key, "") or "").strip()
            if not raw:
                return default
            if not raw.isdecimal() or int(raw) < 1:
                raise InvalidInput(f"setting {key}: expected a positive whole number")
            return int(raw)

        return cls(
            default_pool=str(extra.get("fedoracloud.enroll.default_pool", "") or "")
            or cls.default_pool,
            rate_limit=number("fedoracloud.enroll.rate_limit", cls.rate_limit),
            rate_window=number("fedoracloud.enroll.rate_window", cls.rate_window),
            auto_approve=tuple(
                str(extra.get("fedoracloud.enroll.auto_approve", "") or "")
                .replace(",", " ")
                .split()
            ),
            server_url=str(extra.get("fedoracloud.enroll.server_url", "") or "").rstrip("/"),
        )


@dataclass(frozen=True)
class NodeReport:
    """What a node sent, validated."""

    uuid: str
    hostname: str
    facts: HostFacts


@dataclass(frozen=True)
class IssuedToken:
    """A new enrollment token (shown once) and how to use it."""

    token: str
    row: EnrollmentToken
    ca_fingerprint: str
    command: str
    pool_path: str


def _int(value: Any, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"facts: {field} must be a whole number", {"field": field})
    if not low <= value <= high:
        raise InvalidInput(
            f"facts: {field} must be between {low} and {high}, not {value}", {"field": field}
        )
    return value


def _str(value: Any, field: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"facts: {field} must be {what}, not {shown}", {"field": field})
    return value


def _fields(data: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} must be a JSON object", {"field": where})
    claims = sorted(set(data) & _CLAIMS)
    if claims:
        raise InvalidInput(
            f"a node may not choose its {', '.join(claims)}: an administrator decides that",
            {"field": claims[0]},
        )
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown fields: " + ", ".join(u[:32] for u in unknown[:5]),
            {"field": unknown[0][:32]},
        )
    return data


def parse_facts(data: Any) -> NodeReport:
    """Validate the facts a node sent (UUID, host name, sizes, CPUs, NICs, versions): a clear
    InvalidInput for anything malformed, oversized or containing markup/shell characters."""
    data = _fields(data, _FACT_FIELDS, "facts")
    for required in ("uuid", "hostname", "arch", "memory_mib"):
        if required not in data:
            raise InvalidInput(f"facts: {required} is missing", {"field": required})
    if not isinstance(data["uuid"], str):
        raise InvalidInput("facts: uuid must be a string", {"field": "uuid"})
    if not isinstance(data["hostname"], str):
        raise InvalidInput("facts: hostname must be a string", {"field": "hostname"})
    uuid = check_uuid(data["uuid"])
    hostname = check_hostname(data["hostname"])
    arch = _str(data["arch"], "arch", _ARCH, "an architecture such as x86_64")
    cpus_raw = data.get("cpus", [])
    nics_raw = data.get("nics", [])
    if not isinstance(cpus_raw, list) or len(cpus_raw) > MAX_CPUS:
        raise InvalidInput(f"facts: cpus must be a list of at most {MAX_CPUS}", {"field": "cpus"})
    if not isinstance(nics_raw, list) or len(nics_raw) > MAX_NICS:
        raise InvalidInput(
            f"facts: nics must be a list of at most {MAX_NICS} interfaces", {"field": "nics"}
        )
    cpus = []
    for i, raw in enumerate(cpus_raw):
        cpu = _fields(raw, _CPU_FIELDS_ALL, f"facts.cpus[{i}]")
        cpus.append(
            CpuFact(
                index=_int(cpu.get("index", i), "cpus.index", 0, MAX_CPUS),
                socket=_int(cpu.get("socket", 0), "cpus.socket", 0, MAX_CPUS),
                core=_int(cpu.get("core", 0), "cpus.core", 0, MAX_CPUS),
                thread=_int(cpu.get("thread", 0), "cpus.thread", 0, MAX_CPUS),
                vendor=_str(cpu.get("vendor", ""), "cpus.vendor", _TEXT, "plain text")[:64],
                model=_str(cpu.get("model", ""), "cpus.model", _TEXT, "plain text")[:128],
                speed_mhz=_int(cpu.get("speed_mhz", 0), "cpus.speed_mhz", 0, 1_000_000),
                flags=_str(cpu.get("flags", ""), "cpus.flags", _TEXT, "plain text")[:8000],
            )
        )
    if len({c.index for c in cpus}) != len(cpus):
        raise InvalidInput("facts: two CPUs have the same index", {"field": "cpus"})
    nics = []
    for i, raw in enumerate(nics_raw):
        nic = _fields(raw, _NIC_FIELDS, f"facts.nics[{i}]")
        mac = _str(
            str(nic.get("mac", "")).lower() if isinstance(nic.get("mac"), str) else None,
            "nics.mac",
            _MAC,
            "a MAC address such as 52:54:00:12:34:56",
        )
        address = nic.get("ip_address")
        if address is not None:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidInput(
                    f"facts: nics.ip_address {str(address)[:40]!r} is not an IP address",
                    {"field": "nics.ip_address"},
                ) from None
        prefix = nic.get("prefix_length")
        nics.append(
            NicFact(
                name=_str(nic.get("name"), "nics.name", _NIC_NAME, "an interface name"),
                mac=mac,
                ip_address=address,
                prefix_length=_int(prefix, "nics.prefix_length", 0, 128)
                if prefix is not None
                else None,
            )
        )
    if len({n.name for n in nics}) != len(nics) or len({n.mac for n in nics}) != len(nics):
        raise InvalidInput("facts: two interfaces share a name or a MAC", {"field": "nics"})
    facts = HostFacts(
        arch=arch,
        hypervisor=_str(data.get("hypervisor", ""), "hypervisor", _ARCH, "a name such as qemu")
        if data.get("hypervisor", "")
        else "",
        hypervisor_version=_str(
            data.get("hypervisor_version", ""), "hypervisor_version", _VERSION, "a version"
        ),
        libvirt_version=_str(
            data.get("libvirt_version", ""), "libvirt_version", _VERSION, "a version"
        ),
        memory_mib=_int(data["memory_mib"], "memory_mib", 0, MAX_MEMORY_MIB),
        cpu_mhz=_int(data.get("cpu_mhz", 0), "cpu_mhz", 0, 1_000_000),
        cpus=cpus,
        nics=nics,
        uuid=uuid,
    )
    return NodeReport(uuid=uuid, hostname=hostname, facts=facts)


def is_approved(host: Host) -> bool:
    """Whether an admin approved the host (it is neither pending nor rejected)."""
    return host.state not in (HostState.PENDING, HostState.REJECTED)


def host_certificate(dbsession: Session, host: Host) -> Enrollment | None:
    """The host's current certificate: its newest approved, unrevoked enrollment (``cert_pem``,
    ``cert_serial``, ``cert_not_after``), or None."""
    return dbsession.scalars(
        select(Enrollment)
        .where(
            Enrollment.host_id == host.id,
            Enrollment.state == "approved",
            Enrollment.revoked_at.is_(None),
            Enrollment.cert_pem.isnot(None),
        )
        .order_by(Enrollment.id.desc())
    ).first()


class IEnrollmentService(Interface):
    """Marker for pyramid-services: ``request.find_service(IEnrollmentService)``."""


class EnrollmentService(Service):
    """Issuing tokens, enrolling nodes, approving and rejecting hosts, revoking certificates."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.config = EnrollmentSettings.from_settings(ctx.settings)
        self.ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))

    def reserved_names(self) -> dict[str, str]:
        """The names no node may enroll or be approved under, each with whose name it is:
        ``localhost`` (and ``*.localhost``), the server's own name, the web boxes' and the
        statistics box's certnames."""
        puppet = self.settings.puppet
        names = {"localhost": "localhost", "localhost.localdomain": "localhost"}
        names[puppet.server_name.lower()] = "the server's own name"
        if self.config.server_url:
            host = urlsplit(self.config.server_url).hostname
            if host:
                names[host.lower()] = "the server's own name"
        for certname in puppet.web_certnames:
            names[certname] = "a web server's certname"
        if puppet.collectd_server_certname:
            names[puppet.collectd_server_certname.lower()] = "the statistics server's certname"
        return names

    def check_not_reserved(self, hostname: str) -> None:
        """Refuse a host name that belongs to the cloud's own machines (ReservedHostname)."""
        name = hostname.lower().rstrip(".")
        whose = self.reserved_names().get(name)
        if whose is None and name.endswith(".localhost"):
            whose = "localhost"
        if whose is not None:
            raise ReservedHostname(
                f"host name {hostname!r} is reserved ({whose}): no node may enroll under it",
                {"field": "hostname"},
            )

    # -- tokens -----------------------------------------------------------------------------

    def _fingerprint(self) -> str:
        try:
            return self.ca.fingerprint()
        except CaError as exc:
            raise CaUnavailable(str(exc)) from exc

    def issue_token(
        self,
        pool: Pool | None = None,
        hostname: str | None = None,
        expires: str = "1h",
        server_url: str = "",
    ) -> IssuedToken:
        """A one-time token (stored hashed), optionally bound to a host name, landing hosts in
        ``pool`` (default: the configured default hardware pool); with the node's command."""
        pools = PoolService(self.ctx)
        seconds = parse_duration(expires)
        if hostname:
            hostname = check_hostname(hostname)
            self.check_not_reserved(hostname)
        target = pool or pools.by_path_names(self.config.default_pool)
        if target.kind != PoolKind.HARDWARE:
            raise InvalidInput(
                f"hosts enroll into a hardware pool; {target.name!r} is a {target.kind} pool",
                {"field": "pool"},
            )
        fingerprint = self._fingerprint()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = getattr(self.actor, "user", None)
        row = EnrollmentToken(
            token_hash=hash_secret(token),
            hostname=hostname or None,
            pool_id=target.id,
            created_by_id=user.id if user is not None else None,
            expires_at=utcnow() + timedelta(seconds=seconds),
        )
        self.dbsession.add(row)
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "enrollment_token.issue",
            "enrollment_token",
            row.id,
            pool_id=target.id,
            after={"hostname": row.hostname, "expires_at": row.expires_at.isoformat()},
            remote_addr=self.remote_addr,
        )
        url = server_url or self.config.server_url or "https://fedoracloud.example.org"
        command = (
            f"fedoracloud-node enroll --server {url} --token {token} --ca-fingerprint {fingerprint}"
        )
        if hostname:
            command += f" --hostname {hostname}"
        return IssuedToken(token, row, fingerprint, command, pools.name_path(target))

    # -- rate limiting ----------------------------------------------------------------------

    def note_attempt(self, remote_addr: str) -> None:
        """Count one enrollment request from an address; RateLimited past the limit.  The
        count lives in the database, so it holds across UI boxes."""
        now = utcnow()
        since = now - timedelta(seconds=self.config.rate_window)
        addr = (remote_addr or "unknown")[:45]
        if secrets.randbelow(50) == 0:  # now and then, forget old attempts
            self.dbsession.execute(delete(EnrollAttempt).where(EnrollAttempt.at < since))
        count = (
            self.dbsession.scalar(
                select(func.count())
                .select_from(EnrollAttempt)
                .where(EnrollAttempt.remote_addr == addr, EnrollAttempt.at >= since)
            )
            or 0
        )
        self.dbsession.add(EnrollAttempt(remote_addr=addr, at=now))
        self.dbsession.flush()
        if count >= self.config.rate_limit:
            raise RateLimited(
                f"too many enrollment requests from {addr}: at most {self.config.rate_limit}"
                f" every {self.config.rate_window} s; wait and try again",
                {"retry_after": self.config.rate_window},
            )

    # -- enrolling --------------------------------------------------------------------------

    def _token(self, token: Any) -> EnrollmentToken:
        if not isinstance(token, str) or not token:
            raise BadToken("an enrollment token is required")
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise BadToken(
                "this is not an enrollment token; ask an admin for 'fedoracloud add-host'"
            )
        row = self.dbsession.scalars(
            select(EnrollmentToken).where(EnrollmentToken.token_hash == hash_secret(token))
        ).first()
        if row is None:
            raise BadToken("unknown enrollment token; ask an admin for a new one")
        if row.used_at is not None:
            raise BadToken("this enrollment token was already used; ask an admin for a new one")
        if row.expires_at <= utcnow():
            raise BadToken(
                f"this enrollment token expired at {row.expires_at:%Y-%m-%d %H:%M} UTC;"
                " ask an admin for a new one"
            )
        return row

    def _csr(self, csr_pem: Any, hostname: str) -> x509.CertificateSigningRequest:
        if not isinstance(csr_pem, str) or not csr_pem.strip():
            raise InvalidInput("a certificate request (csr, PEM) is required", {"field": "csr"})
        if len(csr_pem) > MAX_CSR_CHARS:
            raise InvalidInput("the certificate request is too large", {"field": "csr"})
        try:
            csr = load_csr(csr_pem)
        except ValueError:
            raise InvalidInput("csr is not a PEM certificate request", {"field": "csr"}) from None
        try:
            signed = csr.is_signature_valid
            key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidInput(
                f"csr is not a usable certificate request: {str(exc)[:100]}", {"field": "csr"}
            ) from None
        if not signed:
            raise InvalidInput("the certificate request's signature is wrong", {"field": "csr"})
        if not (
            (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size >= 256)
            or (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048)
        ):
            raise InvalidInput(
                "the certificate request needs an EC (P-256 or larger) or RSA (2048+) key",
                {"field": "csr"},
            )
        name = csr_common_name(csr).lower()
        if name != hostname:
            raise HostnameMismatch(
                f"the certificate request names {name[:64]!r} but the node says it is"
                f" {hostname!r}; they must be the same",
                {"field": "csr"},
            )
        return csr

    def enroll(self, body: Any, remote_addr: str) -> tuple[Enrollment, str]:
        """A node enrolls: check the token, the CSR and the facts, use the token up, and
        record the host (``pending`` in the token's pool, or its existing record for a known
        UUID).  Returns the enrollment and the secret the node polls with.  Every check comes
        before the first write, so a refusal leaves the database as it was."""
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object")
        _fields(body, frozenset({"token", "csr", "facts"}), "the request")
        token = self._token(body.get("token"))
        report = parse_facts(body.get("facts"))
        if token.hostname and token.hostname != report.hostname:
            raise HostnameMismatch(
                f"this token is for host {token.hostname!r}, not {report.hostname!r}",
                {"field": "hostname"},
            )
        self.check_not_reserved(report.hostname)
        csr = self._csr(body.get("csr"), report.hostname)
        try:
            address: str | None = str(ipaddress.ip_address(remote_addr))
        except ValueError:
            address = None
        self._check_conflicts(report)
        self._fingerprint()  # the CA must be there to sign, should this be auto-approved
        now = utcnow()
        used = self.dbsession.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.id == token.id, EnrollmentToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise BadToken("this enrollment token was already used; ask an admin for a new one")
        # the row says so already: keep the loaded object in step without writing it again
        set_committed_value(token, "used_at", now)
        hosts = HostService(replace(self.ctx, remote_addr=remote_addr))
        host = self.dbsession.scalars(select(Host).where(Host.uuid == report.uuid)).first()
        key_hash = key_sha256(csr)
        current = host_certificate(self.dbsession, host) if host is not None else None
        same_key = current is not None and current.public_key_sha256 == key_hash
        before = {"state": host.state, "hostname": host.hostname} if host is not None else None
        uri = self.settings.libvirt.uri_template.format(hostname=report.hostname)
        if host is None:
            pool = self.dbsession.get(Pool, token.pool_id) if token.pool_id else None
            pool = pool or PoolService(self.ctx).by_path_names(self.config.default_pool)
            host = hosts.register(report.uuid, report.hostname, pool, uri, HostState.PENDING)
        else:
            host.hostname = report.hostname
            host.libvirt_uri = uri
            if not (same_key and is_approved(host)):
                host.state = HostState.PENDING.value
                host.state_reason = "enrolled again with a new key; waiting for approval"
        host.management_address = address
        hosts.apply_facts(host, report.facts)
        for older in self.dbsession.scalars(
            select(Enrollment).where(Enrollment.host_id == host.id, Enrollment.state == "pending")
        ):
            older.state = "denied"
            older.decision_reason = "superseded by a newer enrollment"
            older.decided_at = now
        secret = secrets.token_urlsafe(32)
        enrollment = Enrollment(
            host_id=host.id,
            token_id=token.id,
            state="pending",
            csr_pem=body["csr"],
            public_key_sha256=key_hash,
            poll_secret_hash=hash_secret(secret),
            remote_addr=(remote_addr or "")[:45],
        )
        self.dbsession.add(enrollment)
        self.dbsession.flush()
        record(
            self.dbsession,
            None,
            "host.enroll",
            "host",
            host.id,
            pool_id=host.pool_id,
            before=before,
            after={"state": host.state, "hostname": host.hostname, "uuid": host.uuid},
            remote_addr=remote_addr,
        )
        if same_key and is_approved(host):
            self._sign(host, enrollment, None, "same key as the approved certificate")
        elif token.hostname and any(
            fnmatch.fnmatchcase(report.hostname, p) for p in self.config.auto_approve
        ):
            self.approve(host, reason="auto-approved: host name matches the ini's patterns")
        return enrollment, secret

    def _check_conflicts(self, report: NodeReport) -> None:
        macs = [n.mac for n in report.facts.nics]
        if macs:
            taken = self.dbsession.execute(
                select(HostNic.mac, Host.hostname)
                .join(Host, Host.id == HostNic.host_id)
                .where(HostNic.mac.in_(macs), Host.uuid != report.uuid)
            ).first()
            if taken is not None:
                raise Conflict(
                    f"MAC {taken[0]} already belongs to host {taken[1]}", {"field": "nics"}
                )
        other = self.dbsession.scalars(
            select(Host).where(
                Host.hostname == report.hostname,
                Host.uuid != report.uuid,
                Host.state != HostState.REJECTED.value,
            )
        ).first()
        if other is not None:
            raise Conflict(
                f"host name {report.hostname!r} is already enrolled with another UUID",
                {"field": "hostname"},
            )

    def poll(self, enrollment_id: str, secret: str) -> Enrollment:
        """The enrollment a node asks about, if the secret is right; NotFound otherwise (the
        same answer for a wrong id and a wrong secret)."""
        missing = NotFound("no such enrollment")
        if not enrollment_id.isdecimal() or len(enrollment_id) > 18 or not secret:
            raise missing
        enrollment = self.dbsession.get(Enrollment, int(enrollment_id))
        if enrollment is None or not hmac.compare_digest(
            enrollment.poll_secret_hash, hash_secret(secret[:128])
        ):
            raise missing
        return enrollment

    # -- decisions --------------------------------------------------------------------------

    def pending_enrollment(self, host: Host) -> Enrollment | None:
        """The host's enrollment waiting for a decision."""
        return self.dbsession.scalars(
            select(Enrollment)
            .where(Enrollment.host_id == host.id, Enrollment.state == "pending")
            .order_by(Enrollment.id.desc())
        ).first()

    def _sign(self, host: Host, enrollment: Enrollment, actor: Any, reason: str) -> None:
        try:
            issued = self.ca.sign_node_certificate(
                load_csr(enrollment.csr_pem), host.hostname, host.management_address
            )
        except CaError as exc:
            raise CaUnavailable(str(exc)) from exc
        now = utcnow()
        user = getattr(actor, "user", None)
        enrollment.state = "approved"
        enrollment.cert_pem = issued.pem
        enrollment.cert_serial = issued.serial_hex
        enrollment.cert_not_after = issued.not_after
        enrollment.decided_at = now
        enrollment.decided_by_id = user.id if user is not None else None
        enrollment.decision_reason = reason
        for old in self.dbsession.scalars(
            select(Enrollment).where(
                Enrollment.host_id == host.id,
                Enrollment.id != enrollment.id,
                Enrollment.state == "approved",
                Enrollment.revoked_at.is_(None),
                Enrollment.public_key_sha256 != enrollment.public_key_sha256,
            )
        ):
            old.revoked_at = now

    def approve(
        self, host: Host, pool: Pool | None = None, reason: str = "", actor: Any = None
    ) -> Host:
        """Approve a pending host (in ``pool`` if given, a hardware pool): the CA signs its
        certificate, which the node's agent then retrieves."""
        enrollment = self.pending_enrollment(host)
        if enrollment is None or host.state != HostState.PENDING:
            raise Conflict(f"host {host.hostname} has no enrollment waiting for approval")
        self.check_not_reserved(host.hostname)
        actor = actor if actor is not None else self.actor
        before = {"state": host.state, "pool_id": host.pool_id}
        if pool is not None and pool.id != host.pool_id:
            HostService(replace(self.ctx, actor=actor)).move(host, pool)
        self._sign(host, enrollment, actor, reason[:2000])
        host.state = HostState.AVAILABLE.value
        host.state_reason = ""
        self.dbsession.flush()
        StorageService(replace(self.ctx, actor=actor)).queue_define_for_host(host)
        record(
            self.dbsession,
            actor,
            "host.approve",
            "host",
            host.id,
            pool_id=host.pool_id,
            before=before,
            after={
                "state": host.state,
                "pool_id": host.pool_id,
                "certificate_serial": enrollment.cert_serial,
            },
            remote_addr=self.remote_addr,
        )
        return host

    def reject(self, host: Host, reason: str, actor: Any = None) -> Host:
        """Reject a host with a reason: its waiting enrollment is denied and every certificate
        it holds is revoked (the CRL lists them)."""
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("say why the host is rejected", {"field": "reason"})
        if len(reason) > 2000:
            raise InvalidInput("a reason has at most 2000 characters", {"field": "reason"})
        if host.state == HostState.REJECTED:
            raise Conflict(f"host {host.hostname} is already rejected")
        actor = actor if actor is not None else self.actor
        now = utcnow()
        user = getattr(actor, "user", None)
        before = {"state": host.state}
        for enrollment in self.dbsession.scalars(
            select(Enrollment).where(Enrollment.host_id == host.id, Enrollment.state == "pending")
        ):
            enrollment.state = "denied"
            enrollment.decision_reason = reason
            enrollment.decided_at = now
            enrollment.decided_by_id = user.id if user is not None else None
        revoked = self.revoke_host(host)
        host.state = HostState.REJECTED.value
        host.state_reason = reason
        self.dbsession.flush()
        record(
            self.dbsession,
            actor,
            "host.reject",
            "host",
            host.id,
            pool_id=host.pool_id,
            before=before,
            after={"state": host.state, "reason": reason, "revoked": revoked},
            remote_addr=self.remote_addr,
        )
        return host

    def revoke_host(self, host: Host) -> list[str]:
        """Revoke every certificate the host holds (call before deleting a host); returns
        the revoked serials."""
        now = utcnow()
        serials = []
        for enrollment in self.dbsession.scalars(
            select(Enrollment).where(
                Enrollment.host_id == host.id,
                Enrollment.cert_serial.isnot(None),
                Enrollment.revoked_at.is_(None),
            )
        ):
            enrollment.revoked_at = now
            serials.append(str(enrollment.cert_serial))
        return serials

    def crl_pem(self) -> str:
        """The CA's current CRL (PEM): every revoked node certificate still within validity."""
        now = utcnow()
        rows = self.dbsession.execute(
            select(Enrollment.cert_serial, Enrollment.revoked_at).where(
                Enrollment.revoked_at.isnot(None),
                Enrollment.cert_serial.isnot(None),
                Enrollment.cert_not_after > now,
            )
        ).all()
        revoked: list[tuple[str, datetime]] = [(str(s), r) for s, r in rows if r is not None]
        try:
            return self.ca.crl_pem(revoked)
        except CaError as exc:
            raise CaUnavailable(str(exc)) from exc

    def pending_hosts(self, visible: Any) -> list[tuple[Host, Enrollment | None]]:
        """Hosts waiting for approval in pools matching ``visible``, oldest first, each with
        its waiting enrollment."""
        hosts = list(
            self.dbsession.scalars(
                select(Host)
                .join(Pool, Pool.id == Host.pool_id)
                .where(Host.state == HostState.PENDING.value, visible)
                .order_by(Host.created_at, Host.id)
                .limit(500)
            )
        )
        return [(h, self.pending_enrollment(h)) for h in hosts]
