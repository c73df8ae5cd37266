"""The CA: its key stays private, it refuses to be replaced, what it signs carries the right
names and usages, and its CRL lists what was revoked; the node agent's checks of its input."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedoracloud.node_agent import EnrollError, check_server, make_csr, make_key
from fedoracloud.node_agent import normalize_fingerprint as agent_fingerprint
from fedoracloud.pki import (
    CLIENT_DN,
    CaError,
    CaSettings,
    CertificateAuthority,
    fingerprint_of,
    load_csr,
    normalize_fingerprint,
)
from fedoracloud.services import InvalidInput
from fedoracloud.services.enrollment import parse_duration


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    settings = SimpleNamespace(
        instance_dir=str(tmp_path), extra={"fedoracloud.ca.node_cert_days": "30"}
    )
    authority = CertificateAuthority(CaSettings.from_settings(settings))
    authority.init()
    return authority


def test_the_key_is_0600_and_the_ca_is_never_replaced(ca: CertificateAuthority) -> None:
    for key in (ca.settings.key_path, ca.settings.client_key_path):
        assert stat.S_IMODE(Path(key).stat().st_mode) == 0o600
    before = Path(ca.settings.cert_path).read_bytes()
    with pytest.raises(CaError, match="already exists"):
        ca.init()
    assert Path(ca.settings.cert_path).read_bytes() == before
    assert "PRIVATE" not in ca.certificate_pem()


def test_a_node_certificate_names_the_host_and_its_address(ca: CertificateAuthority) -> None:
    key = make_key()
    issued = ca.sign_node_certificate(
        load_csr(make_csr(key, "node1.example.org")), "node1.example.org", "192.0.2.7"
    )
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    cert.verify_directly_issued_by(ca.certificate())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node1.example.org"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 30  # fedoracloud.ca.node_cert_days (plus the 5 minutes of clock skew)
    assert issued.serial_hex == format(cert.serial_number, "x")


def test_the_app_client_certificate_has_the_dn_libvirtd_allows(
    ca: CertificateAuthority,
) -> None:
    cert = x509.load_pem_x509_certificate(Path(ca.settings.client_cert_path).read_bytes())
    assert cert.subject.rfc4514_string() == CLIENT_DN
    cert.verify_directly_issued_by(ca.certificate())
    assert Path(ca.settings.client_dir, "cacert.pem").read_text() == ca.certificate_pem()


def test_the_crl_lists_revoked_serials(ca: CertificateAuthority) -> None:
    crl = x509.load_pem_x509_crl(
        ca.crl_pem([("abc123", datetime(2026, 1, 1, tzinfo=UTC))]).encode()
    )
    assert crl.is_signature_valid(ca.certificate().public_key())
    assert crl.get_revoked_certificate_by_serial_number(0xABC123) is not None


def test_fingerprints_are_read_in_any_usual_spelling(ca: CertificateAuthority) -> None:
    fp = fingerprint_of(ca.certificate())
    for spelling in (fp, fp.lower(), fp.replace(":", ""), "sha256:" + fp):
        assert normalize_fingerprint(spelling) == fp == agent_fingerprint(spelling)
    with pytest.raises(ValueError):
        normalize_fingerprint("AB:CD")
    with pytest.raises(EnrollError) as refused:
        agent_fingerprint("not-a-fingerprint")
    assert refused.value.code == 2


def test_the_agent_speaks_plain_http_only_to_loopback() -> None:
    assert check_server("http://127.0.0.1:6543/") == "http://127.0.0.1:6543"
    assert check_server("http://[::1]:6543") == "http://[::1]:6543"
    assert check_server("https://cloud.example.org") == "https://cloud.example.org"
    for url in ("http://cloud.example.org", "http://10.0.0.1", "ftp://127.0.0.1", "nonsense"):
        with pytest.raises(EnrollError):
            check_server(url)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("7d", 604800)]
)
def test_token_lifetimes(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1y", "-1h", "30s", "8d", "1h30m", "1e3"])
def test_token_lifetimes_out_of_range_or_malformed(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize("value", ["0", "-3", "thirty", "3²"])
def test_a_validity_that_is_not_a_positive_whole_number_names_the_setting(
    tmp_path: Path, value: str
) -> None:
    settings = SimpleNamespace(
        instance_dir=str(tmp_path), extra={"fedoracloud.ca.node_cert_days": value}
    )
    with pytest.raises(CaError, match=r"fedoracloud\.ca\.node_cert_days: expected a positive"):
        CaSettings.from_settings(settings)
