"""A fuzz pass (hypothesis) over the parsers of untrusted input: a node's facts, its CSR, the
domain XML read back from libvirt, the host facts read from libvirt's XML, ENC certnames
and Cobbler's answers.  The property is the same for each: a valid result, or the parser's
own clear error (InvalidInput, InvalidDomainSpec, VirtError, RenderError, CobblerError) —
never another exception.  Each finding fixed has an example below (``@example``) that
failed before the fix.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import xmlrpc.server
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fedoracloud import cobbler
from fedoracloud.puppet import RenderError, check_certname
from fedoracloud.services import ServiceError
from fedoracloud.services.enrollment import EnrollmentService, parse_facts
from fedoracloud.virt.connection import VirtError
from fedoracloud.virt.domain import InvalidDomainSpec, parse_domain_xml
from fedoracloud.virt.facts import read_host_facts

#: CI replays the same examples every run (a finding there is a regression, not luck);
#: elsewhere each run explores new ones
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=bool(os.environ.get("CI")),
)
#: signing a CSR per example is slow: fewer of those
FUZZ_CSR = settings(FUZZ, max_examples=25)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)

VALID_FACTS: dict[str, Any] = {
    "uuid": "6b8c2f4e-52a1-4a6e-9d3b-1f2e3d4c5b6a",
    "hostname": "node1.cloud.example.org",
    "arch": "x86_64",
    "memory_mib": 16384,
    "cpu_mhz": 2400,
    "hypervisor": "qemu",
    "hypervisor_version": "8.2.0",
    "libvirt_version": "10.0.0",
    "cpus": [{"index": 0, "socket": 0, "core": 0, "thread": 0, "vendor": "Intel"}],
    "nics": [{"name": "eth0", "mac": "52:54:00:12:34:56", "ip_address": "192.0.2.7"}],
}


# -- a node's facts (services/enrollment.py) ------------------------------------------------


@FUZZ
@given(data=json_values)
def test_any_json_as_facts_is_refused_clearly(data):
    with contextlib.suppress(ServiceError):
        parse_facts(data)


@FUZZ
@given(
    key=st.sampled_from(sorted(VALID_FACTS)),
    value=json_values,
    nested=st.sampled_from(["cpus", "nics", None]),
    nested_key=st.text(max_size=12),
)
@example(key="memory_mib", value=2**70, nested=None, nested_key="")
@example(key="cpus", value=[{"index": 0}, {"index": 0}], nested=None, nested_key="")
def test_facts_with_one_field_changed_are_parsed_or_refused(key, value, nested, nested_key):
    facts = {**VALID_FACTS, key: value}
    if nested is not None:
        facts[nested] = [{**VALID_FACTS[nested][0], nested_key: value}]
    try:
        report = parse_facts(facts)
    except ServiceError:
        return
    assert report.hostname == facts["hostname"]


# -- a node's CSR (pki.py, and the enrollment's check of it) --------------------------------

KEYS = {
    "ec-p256": ec.generate_private_key(ec.SECP256R1()),
    "ec-p192": ec.generate_private_key(ec.SECP192R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    # weak keys on purpose: the enrollment must refuse them with a message
    "rsa-1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
    "dsa-1024": dsa.generate_private_key(key_size=1024),  # noqa: S505
}


def _csr_pem(key: Any, name: str) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def _check_csr(pem: Any) -> None:
    service = EnrollmentService.__new__(EnrollmentService)  # _csr reads no state
    with contextlib.suppress(ServiceError):
        service._csr(pem, "node1.cloud.example.org")


@FUZZ
@given(pem=json_values)
def test_anything_as_a_csr_is_refused_clearly(pem):
    _check_csr(pem)


@FUZZ_CSR
@given(
    key=st.sampled_from(sorted(KEYS)),
    name=st.text(st.characters(codec="ascii"), min_size=1, max_size=64),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=3),
)
def test_a_damaged_or_odd_csr_is_refused_clearly(key, name, flips):
    pem = _csr_pem(KEYS[key], name)
    lines = pem.splitlines()
    der = bytearray(base64.b64decode("".join(line for line in lines if "-----" not in line)))
    for position, xor in flips:
        der[position % len(der)] ^= xor
    body = base64.encodebytes(bytes(der)).decode()
    _check_csr(f"{lines[0]}\n{body}{lines[-1]}\n")


# -- domain XML read back from libvirt (virt/domain.py) --------------------------------------

TAGS = ["name", "uuid", "vcpu", "memory", "os", "type", "boot", "kernel", "devices", "disk"]
TAGS += ["source", "target", "driver", "host", "interface", "mac", "model", "graphics"]
TAGS += ["listen", "serial", "log", "readonly", "initrd", "cmdline"]
ATTRS = ["type", "dev", "bus", "file", "name", "protocol", "port", "unit", "address", "arch"]
texts = st.text(max_size=12) | st.sampled_from(["1", "²", "-3", "kvm", "KiB", "GiB", " 7 "])


@st.composite
def elements(draw: Any, depth: int = 0) -> ET.Element:
    element = ET.Element(draw(st.sampled_from(TAGS)))
    for attr in draw(st.lists(st.sampled_from(ATTRS), max_size=3, unique=True)):
        element.set(attr, draw(texts))
    element.text = draw(st.none() | texts)
    if depth < 3:
        element.extend(draw(st.lists(elements(depth + 1), max_size=3)))
    return element


@st.composite
def domains(draw: Any) -> str:
    root = ET.Element("domain")
    if draw(st.booleans()):
        root.set("type", draw(texts))
    root.extend(draw(st.lists(elements(), max_size=5)))
    devices = ET.SubElement(root, "devices")
    devices.extend(draw(st.lists(elements(1), max_size=4)))
    return ET.tostring(root, encoding="unicode")


def _unicode_safe(text: str) -> str:
    return "".join(c for c in text if c.isprintable())


@FUZZ
@given(xml=domains())
@example(xml="<domain><vcpu>²</vcpu></domain>")
@example(xml="<domain><memory unit='KiB'>lots</memory></domain>")
@example(xml="<domain><memory unit='KiB'>²</memory></domain>")
@example(
    xml="<domain><devices><disk type='network'><source><host port='²'/></source>"
    "<target dev='vda'/></disk></devices></domain>"
)
def test_domain_xml_is_read_or_refused_clearly(xml):
    try:
        spec = parse_domain_xml(xml)
    except InvalidDomainSpec:
        return
    assert spec.vcpus >= 0 and spec.memory_mib >= 0


@FUZZ
@given(text=st.text(max_size=200))
@example(text="<domain>")
@example(text="<!DOCTYPE d [<!ENTITY a 'x'>]><domain>&a;</domain>")
def test_any_text_as_domain_xml_is_read_or_refused_clearly(text):
    with contextlib.suppress(InvalidDomainSpec):
        parse_domain_xml(_unicode_safe(text))


# -- host facts from libvirt's XML (virt/facts.py) -------------------------------------------


class _Interface:
    def __init__(self, xml: str) -> None:
        self.xml = xml

    def XMLDesc(self, flags: int) -> str:
        return self.xml

    def name(self) -> str:
        return "eth0"

    def MACString(self) -> str:
        return "52:54:00:12:34:56"


class _Connection:
    """What read_host_facts asks a libvirt connection, answering the XML under test."""

    def __init__(self, capabilities: str, interface: str) -> None:
        self.capabilities = capabilities
        self.interface = interface

    def getInfo(self) -> list[Any]:
        return ["x86_64", 16384, 2, 2400, 1, 1, 2, 1]

    def getCapabilities(self) -> str:
        return self.capabilities

    def listAllInterfaces(self, flags: int) -> list[_Interface]:
        return [_Interface(self.interface)]

    def listAllDomains(self, flags: int) -> list[Any]:
        return []

    def getType(self) -> str:
        return "QEMU"

    def getVersion(self) -> int:
        return 8_002_000

    def getLibVersion(self) -> int:
        return 10_000_000


CAPS = "<capabilities><host><uuid>{u}</uuid><cpu><vendor>{v}</vendor></cpu></host></capabilities>"
IFACE = "<interface><protocol family='ipv4'><ip address='{a}' prefix='{p}'/></protocol></interface>"
xml_text = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12)


@FUZZ
@given(
    caps=st.one_of(
        st.builds(lambda u, v: CAPS.format(u=u, v=v), xml_text, xml_text),
        st.text(max_size=60),
    ),
    iface=st.one_of(
        st.builds(lambda a, p: IFACE.format(a=a, p=p), xml_text, xml_text),
        st.text(max_size=60),
    ),
)
@example(caps=CAPS.format(u="x", v="y"), iface=IFACE.format(a="192.0.2.1", p="²"))
@example(caps="not xml", iface="<interface/>")
@example(caps=CAPS.format(u="x", v="y"), iface="<interface")
def test_host_facts_from_libvirt_xml_are_read_or_refused_clearly(caps, iface):
    caps, iface = _unicode_safe(caps), _unicode_safe(iface)
    try:
        facts = read_host_facts(_Connection(caps, iface))
    except VirtError:
        return
    assert facts.memory_mib == 16384


# -- ENC certnames (puppet) ------------------------------------------------------------------


@FUZZ
@given(name=st.text(max_size=300))
@example(name="NODE1.example.org")
@example(name="node1.example.org\n")
def test_any_certname_is_checked_or_refused_clearly(name):
    try:
        checked = check_certname(name)
    except RenderError:
        return
    assert checked == checked.strip().lower() and "/" not in checked and " " not in checked


# -- Cobbler's answers (cobbler.py, over XML-RPC on loopback) --------------------------------

xmlrpc_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=8), inner
        )
    ),
    max_leaves=10,
)


class _Cobbler:
    """A Cobbler that answers get_profiles / get_images with whatever the test sets."""

    def __init__(self) -> None:
        self.answer: Any = []

    def get_profiles(self) -> Any:
        return self.answer

    def get_images(self) -> Any:
        return self.answer


@pytest.fixture(scope="module")
def cobbler_server() -> Iterator[tuple[str, _Cobbler]]:
    class Handler(xmlrpc.server.SimpleXMLRPCRequestHandler):
        rpc_paths = ("/cobbler_api",)

    server = xmlrpc.server.SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=Handler, logRequests=False, allow_none=True
    )
    answers = _Cobbler()
    server.register_instance(answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cobbler_api", answers
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str) -> cobbler.CobblerClient:
    return cobbler.CobblerClient(
        cobbler.CobblerSettings(url=url, username="cobbler", password="cobbler")
    )


def test_the_loopback_cobbler_answers(cobbler_server):
    url, answers = cobbler_server
    answers.answer = [{"name": "f40-x86_64", "distro": "f40"}]
    assert _client(url).get_profiles() == [{"name": "f40-x86_64", "distro": "f40"}]


@FUZZ
@given(answer=xmlrpc_values)
@example(answer=7)
@example(answer=["a profile name"])
@example(answer={"name": "f40"})
def test_cobbler_answers_are_read_or_refused_clearly(cobbler_server, answer):
    url, answers = cobbler_server
    answers.answer = answer
    client = _client(url)
    for read in (client.get_profiles, client.get_images):
        try:
            items = read()
        except cobbler.CobblerError:
            continue
        assert isinstance(items, list) and all(isinstance(i, dict) for i in items)


def test_a_csr_of_another_version_is_refused_clearly():
    """Found by the fuzz pass: cryptography raises InvalidVersion (not a ValueError) for a
    CSR whose version is not 1 (0 in DER)."""
    pem = _csr_pem(KEYS["ec-p256"], "node1.cloud.example.org")
    lines = pem.splitlines()
    der = base64.b64decode("".join(line for line in lines if "-----" not in line))
    assert b"\x02\x01\x00" in der  # version INTEGER 0, the first of the request info
    odd = der.replace(b"\x02\x01\x00", b"\x02\x01\x25", 1)
    body = base64.encodebytes(odd).decode()
    service = EnrollmentService.__new__(EnrollmentService)
    with pytest.raises(ServiceError, match="not a PEM certificate request"):
        service._csr(f"{lines[0]}\n{body}{lines[-1]}\n", "node1.cloud.example.org")
