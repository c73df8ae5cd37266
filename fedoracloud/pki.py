"""The app's certificate authority: node certificates for libvirtd TLS, the app's own client
certificate, revocation and the CRL (docs/architecture.md §5).

The CA lives in one directory (setting ``fedoracloud.ca.dir``, default ``INSTANCE_DIR/ca``)::

    CA_DIR/cacert.pem                  the CA certificate (served at /api/v1/ca.pem)
    CA_DIR/private/cakey.pem           its key, mode 0600, never served
    CLIENT_DIR/cacert.pem              the app's libvirt client files, as libvirt's
    CLIENT_DIR/clientcert.pem          ``?pkipath=CLIENT_DIR`` expects them
    CLIENT_DIR/clientkey.pem           (setting ``fedoracloud.ca.client_dir``,
                                       default ``CA_DIR/libvirt-client``)

For the Puppet side and libvirtd's TLS: ``CaSettings.from_settings(settings)`` gives the
paths, ``CertificateAuthority(ca_settings).fingerprint()`` the CA's SHA-256 fingerprint,
``CLIENT_DN`` the app's client certificate DN for ``tls_allowed_dn_list``, and
``services.enrollment.host_certificate(dbsession, host)`` an approved host's certificate.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .models.meta import utcnow

#: the app's libvirt client certificate subject (one RDN, so every tool prints it alike)
CLIENT_CN = "fedoracloud-app"
CLIENT_DN = f"CN={CLIENT_CN}"
CA_CN = "FedoraCloud CA"


class CaError(Exception):
    """The CA is missing, already exists, or refuses a request; the message says which."""


def _int_setting(extra: dict[str, Any], key: str, default: int) -> int:
    raw = str(extra.get(key, "") or "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) < 1:
        raise CaError(f"setting {key}: expected a positive whole number, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class CaSettings:
    """Where the CA lives and how long what it signs stays valid."""

    ca_dir: str
    client_dir: str
    node_cert_days: int = 365
    ca_days: int = 3650

    @classmethod
    def from_settings(cls, settings: Any) -> CaSettings:
        """From the app's typed Settings (``fedoracloud.ca.*`` in the ini)."""
        extra = settings.extra
        ca_dir = str(extra.get("fedoracloud.ca.dir", "") or "") or os.path.join(
            settings.instance_dir, "ca"
        )
        client_dir = str(extra.get("fedoracloud.ca.client_dir", "") or "") or os.path.join(
            ca_dir, "libvirt-client"
        )
        return cls(
            ca_dir=os.path.abspath(ca_dir),
            client_dir=os.path.abspath(client_dir),
            node_cert_days=_int_setting(extra, "fedoracloud.ca.node_cert_days", 365),
            ca_days=_int_setting(extra, "fedoracloud.ca.ca_days", 3650),
        )

    @property
    def cert_path(self) -> str:
        """The CA certificate."""
        return os.path.join(self.ca_dir, "cacert.pem")

    @property
    def key_path(self) -> str:
        """The CA key (0600)."""
        return os.path.join(self.ca_dir, "private", "cakey.pem")

    @property
    def client_cert_path(self) -> str:
        """The app's libvirt client certificate."""
        return os.path.join(self.client_dir, "clientcert.pem")

    @property
    def client_key_path(self) -> str:
        """The app's libvirt client key (0600)."""
        return os.path.join(self.client_dir, "clientkey.pem")


def fingerprint_of(cert: x509.Certificate) -> str:
    """A certificate's SHA-256 fingerprint as ``AB:CD:…`` (as ``openssl x509 -fingerprint``)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def normalize_fingerprint(text: str) -> str:
    """A fingerprint typed by a person (``sha256:``, colons, any case) in ``AB:CD:…`` form."""
    raw = text.strip().lower().removeprefix("sha256:").removeprefix("sha256 fingerprint=")
    digits = raw.replace(":", "").replace(" ", "")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError("a SHA-256 fingerprint is 64 hexadecimal digits")
    return bytes.fromhex(digits).hex(":").upper()


def _write_atomic(path: str, data: bytes, mode: int) -> None:
    """Write the whole file under a temporary name (with ``mode`` from the start), flush it
    to disk, then rename it over ``path``: a full disk or a write error leaves the previous
    file (or none) and no temporary file, and says so as a CaError."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:  # a write to a nearly full disk may be short
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CaError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_private(path: str, data: bytes) -> None:
    """Write a secret file with mode 0600 from the start (never world-readable, not even
    briefly), replacing any previous file atomically."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _write_atomic(path, data, 0o600)


def write_public(path: str, data: bytes) -> None:
    """Write a public file (a certificate) atomically, mode 0644."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _write_atomic(path, data, 0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA signed."""

    pem: str
    serial_hex: str
    not_after: datetime


class CertificateAuthority:
    """The CA on disk: create it, describe it, sign node and client certificates, make CRLs."""

    def __init__(self, settings: CaSettings) -> None:
        self.settings = settings

    def exists(self) -> bool:
        """Whether ``ca init`` has run."""
        return os.path.exists(self.settings.cert_path) and os.path.exists(self.settings.key_path)

    def init(self, common_name: str = CA_CN) -> x509.Certificate:
        """Make the CA key and self-signed certificate, and the app's client certificate.
        Refuses to replace an existing CA (every node certificate hangs on it)."""
        if os.path.exists(self.settings.cert_path) or os.path.exists(self.settings.key_path):
            raise CaError(
                f"a CA already exists in {self.settings.ca_dir}; nodes trust it, so it is kept"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FedoraCloud"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        now = utcnow()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=self.settings.ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        os.makedirs(self.settings.ca_dir, mode=0o755, exist_ok=True)
        try:
            write_private(self.settings.key_path, _key_pem(key))
            write_public(self.settings.cert_path, cert.public_bytes(serialization.Encoding.PEM))
            self.ensure_client_certificate()
        except CaError:  # a disk full half-way: no half-made CA stays behind
            for path in (self.settings.key_path, self.settings.cert_path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        return cert

    def _load(self) -> tuple[x509.Certificate, Any]:
        if not self.exists():
            raise CaError(
                f"there is no CA in {self.settings.ca_dir} yet; run 'fedoracloud ca init'"
            )
        with open(self.settings.cert_path, "rb") as cert_file:
            cert = x509.load_pem_x509_certificate(cert_file.read())
        with open(self.settings.key_path, "rb") as key_file:
            key = serialization.load_pem_private_key(key_file.read(), password=None)
        return cert, key

    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        if not os.path.exists(self.settings.cert_path):
            raise CaError(
                f"there is no CA in {self.settings.ca_dir} yet; run 'fedoracloud ca init'"
            )
        with open(self.settings.cert_path, "rb") as cert_file:
            return x509.load_pem_x509_certificate(cert_file.read())

    def certificate_pem(self) -> str:
        """The CA certificate as PEM (public; nodes fetch it)."""
        return self.certificate().public_bytes(serialization.Encoding.PEM).decode()

    def fingerprint(self) -> str:
        """The CA certificate's SHA-256 fingerprint, ``AB:CD:…``."""
        return fingerprint_of(self.certificate())

    def describe(self) -> dict[str, str]:
        """Subject, validity, fingerprint and paths, for ``fedoracloud ca show``."""
        cert = self.certificate()
        return {
            "subject": cert.subject.rfc4514_string(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256_fingerprint": fingerprint_of(cert),
            "certificate": self.settings.cert_path,
            "key": self.settings.key_path,
            "client_certificate": self.settings.client_cert_path,
            "client_key": self.settings.client_key_path,
            "client_dn": CLIENT_DN,
        }

    def _builder(
        self, subject: x509.Name, public_key: Any, ca_cert: x509.Certificate, days: int
    ) -> x509.CertificateBuilder:
        now = utcnow()
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # libvirt (9.0) refuses a certificate without keyEncipherment at
                    # both ends of its TLS, whatever the key type
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    def sign_node_certificate(
        self, csr: x509.CertificateSigningRequest, hostname: str, address: str | None
    ) -> IssuedCertificate:
        """Sign a node's CSR: CN and a DNS SAN of its host name, an IP SAN of its management
        address, server and client usage (libvirtd TLS both ways), the configured validity."""
        ca_cert, ca_key = self._load()
        if not csr.is_signature_valid:
            raise CaError("the certificate request's signature does not match its key")
        names: list[x509.GeneralName] = [x509.DNSName(hostname)]
        if address:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]),
                csr.public_key(),
                ca_cert,
                self.settings.node_cert_days,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return IssuedCertificate(
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            serial_hex=format(cert.serial_number, "x"),
            not_after=cert.not_valid_after_utc,
        )

    def ensure_client_certificate(self) -> str:
        """Make (once) the app's own client certificate for reaching libvirtd over TLS, in
        the directory layout libvirt's ``?pkipath=`` expects; returns that directory."""
        paths = self.settings
        if os.path.exists(paths.client_cert_path) and os.path.exists(paths.client_key_path):
            return paths.client_dir
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_CN)]),
                key.public_key(),
                ca_cert,
                self.settings.node_cert_days,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_private(paths.client_key_path, _key_pem(key))
        write_public(paths.client_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        write_public(
            os.path.join(paths.client_dir, "cacert.pem"),
            ca_cert.public_bytes(serialization.Encoding.PEM),
        )
        return paths.client_dir

    def crl_pem(self, revoked: list[tuple[str, datetime]], valid_hours: int = 24) -> str:
        """A CRL listing the revoked serials (hex) with their revocation times, signed now."""
        ca_cert, ca_key = self._load()
        now = utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(hours=valid_hours))
        )
        for serial_hex, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial_hex, 16))
                .revocation_date(when)
                .build()
            )
        crl = builder.sign(ca_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode()


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR; ValueError if it is not one (a version other than 1 included)."""
    try:
        return x509.load_pem_x509_csr(pem.encode())
    except x509.InvalidVersion as exc:
        raise ValueError(str(exc)) from None


def csr_common_name(csr: x509.CertificateSigningRequest) -> str:
    """The CSR's CN (empty if none)."""
    values = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def public_key_sha256(csr: x509.CertificateSigningRequest) -> str:
    """SHA-256 of the CSR's public key (DER SubjectPublicKeyInfo), hex: a key's identity."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return digest.finalize().hex()
