"""Node enrollment through the API and the pages: tokens, the CA, enrolling, polling,
approving, rejecting, and every bad input of the issue refused with a clear 4xx that
creates nothing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import func, select

from fedoracloud.models import Enrollment, EnrollmentToken, Host
from fedoracloud.models.meta import utcnow
from fedoracloud.node_agent import make_csr, make_key
from fedoracloud.pki import CaSettings, CertificateAuthority, fingerprint_of
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.enrollment import EnrollmentService, ReservedHostname

from ..conftest import csrf_token, login


@pytest.fixture(scope="session")
def ca(app: Any) -> CertificateAuthority:
    """The test instance's CA (made once per run)."""
    authority = CertificateAuthority(CaSettings.from_settings(app.registry["fc_settings"]))
    if not authority.exists():
        authority.init()
    return authority


@pytest.fixture
def service(app: Any, dbsession: Any, tree: dict[str, Any], ca: CertificateAuthority) -> Any:
    return EnrollmentService(ServiceContext(dbsession, app.registry["fc_settings"]))


_ADDR = iter(range(1, 10**6))


@pytest.fixture
def node_app(testapp: Any) -> Any:
    """The test app as seen from a node of its own address (rate limits are per address).

    ``POST /api/v1/enroll`` answers a refusal without raising, after checking everything
    before its first write, so pyramid_tm commits the request: the only row it keeps is the
    attempt that the per-address rate limit counts.  The functional tests' middleware rolls
    every 4xx back, which is right for exception views but not here, so it is taken off."""
    testapp.app = getattr(testapp.app, "app", testapp.app)
    testapp.extra_environ["REMOTE_ADDR"] = f"10.1.{next(_ADDR) % 250}.{next(_ADDR) % 250 + 1}"
    return testapp


def facts(hostname: str | None = None, **changes: Any) -> dict[str, Any]:
    node_uuid = str(uuid.uuid4())
    data: dict[str, Any] = {
        "uuid": node_uuid,
        "hostname": hostname or f"node-{node_uuid[:8]}.cloud.example.org",
        "arch": "x86_64",
        "hypervisor": "qemu",
        "hypervisor_version": "7.2.0",
        "libvirt_version": "9.0.0",
        "memory_mib": 16384,
        "cpu_mhz": 2400,
        "cpus": [
            {"index": i, "socket": i // 4, "core": i % 4, "thread": 0, "vendor": "Intel"}
            for i in range(8)
        ],
        "nics": [
            {
                "name": "eth0",
                "mac": "52:54:00:" + bytes.fromhex(node_uuid[-6:]).hex(":"),
                "ip_address": "10.0.0.5",
                "prefix_length": 24,
            }
        ],
    }
    data.update(changes)
    return data


def body(token: str, node_facts: dict[str, Any], key: Any = None, cn: str | None = None) -> Any:
    key = key or make_key()
    return {"token": token, "csr": make_csr(key, cn or node_facts["hostname"]), "facts": node_facts}


def counts(dbsession: Any) -> tuple[int, int]:
    hosts = dbsession.scalar(select(func.count()).select_from(Host))
    enrollments = dbsession.scalar(select(func.count()).select_from(Enrollment))
    return hosts, enrollments


def poll(app: Any, answer: Any, secret: str | None = None, status: int = 200) -> Any:
    return app.get(
        f"/api/v1/enroll/{answer['id']}",
        headers={"X-Enrollment-Secret": secret if secret is not None else answer["secret"]},
        status=status,
    ).json


def test_ca_certificate_and_crl_are_public(node_app: Any, ca: CertificateAuthority) -> None:
    pem = node_app.get("/api/v1/ca.pem").text
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert fingerprint_of(cert) == ca.fingerprint()
    crl = x509.load_pem_x509_crl(node_app.get("/api/v1/ca.crl").body)
    assert crl.is_signature_valid(cert.public_key())
    assert "PRIVATE" not in pem


def test_enroll_poll_approve_and_retrieve_a_certificate(
    node_app: Any, service: Any, dbsession: Any, tree: dict[str, Any], ca: Any
) -> None:
    issued = service.issue_token(hostname="node1.cloud.example.org")
    node = facts("node1.cloud.example.org")
    key = make_key()
    answer = node_app.post_json("/api/v1/enroll", body(issued.token, node, key), status=202).json
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    assert (host.state, host.pool_id, host.cpu_count, host.memory_mib) == (
        "pending",
        tree["default"].id,
        8,
        16384,
    )
    assert [n.mac for n in host.nics] == [node["nics"][0]["mac"]]
    assert poll(node_app, answer) == {"id": answer["id"], "state": "pending"}
    poll(node_app, answer, secret="wrong", status=404)

    admin = login(node_app, "admin")
    token = csrf_token(admin)
    approved = admin.post_json(
        f"/api/v1/hosts/{host.id}/approve",
        {"pool": tree["fedora"].id},
        headers={"X-CSRF-Token": token},
    ).json
    assert approved["state"] == "available" and approved["pool"] == tree["fedora"].id
    done = poll(node_app, answer)
    assert done["state"] == "approved"
    cert = x509.load_pem_x509_certificate(done["certificate"].encode())
    cert.verify_directly_issued_by(ca.certificate())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node1.cloud.example.org"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == [
        node_app.extra_environ["REMOTE_ADDR"]
    ]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.public_key() == key.public_key()


def test_reenrolling_the_same_uuid_updates_the_host(
    node_app: Any, service: Any, dbsession: Any, ca: Any
) -> None:
    node = facts()
    key = make_key()
    first = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, node, key), status=202
    ).json
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    service.approve(host)
    assert poll(node_app, first)["state"] == "approved"
    # same key again (e.g. a renewal): stays approved, a fresh certificate at once
    node["memory_mib"] = 32768
    again = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, node, key), status=202
    ).json
    assert counts(dbsession)[0] == 1
    dbsession.refresh(host)
    assert (host.state, host.memory_mib) == ("available", 32768)
    assert poll(node_app, again)["state"] == "approved"
    # a new key: back to pending, and the old certificate is revoked once the new is approved
    third = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, node, make_key()), status=202
    ).json
    dbsession.refresh(host)
    assert host.state == "pending"
    assert poll(node_app, third)["state"] == "pending"
    service.approve(host)
    assert poll(node_app, first)["state"] == "denied"  # revoked
    assert counts(dbsession)[0] == 1


def test_reject_revokes_and_the_crl_lists_it(
    node_app: Any, service: Any, dbsession: Any, ca: Any
) -> None:
    node = facts()
    answer = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, node), status=202
    ).json
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    service.approve(host)
    serial = dbsession.get(Enrollment, answer["id"]).cert_serial
    service.reject(host, "decommissioned")
    assert host.state == "rejected"
    assert poll(node_app, answer) == {
        "id": answer["id"],
        "state": "denied",
        "reason": "the certificate was revoked",
    }
    crl = x509.load_pem_x509_crl(node_app.get("/api/v1/ca.crl").body)
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def test_a_pending_host_rejected_hears_the_reason(node_app: Any, service: Any, dbsession: Any):
    node = facts()
    answer = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, node), status=202
    ).json
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    service.reject(host, "not one of ours")
    assert poll(node_app, answer)["reason"] == "not one of ours"


def assert_refused(
    node_app: Any, dbsession: Any, payload: Any, status: int, code: str, words: str
) -> None:
    before = counts(dbsession)
    answer = node_app.post_json("/api/v1/enroll", payload, status=status).json
    assert answer["error"]["code"] == code, answer
    assert words in answer["error"]["message"], answer
    assert counts(dbsession) == before


def test_bad_tokens_are_refused(node_app: Any, service: Any, dbsession: Any) -> None:
    used = service.issue_token()
    node_app.post_json("/api/v1/enroll", body(used.token, facts()), status=202)
    assert_refused(node_app, dbsession, body(used.token, facts()), 403, "bad_token", "already used")
    expired = service.issue_token()
    expired.row.expires_at = utcnow() - timedelta(seconds=1)
    dbsession.flush()
    assert_refused(node_app, dbsession, body(expired.token, facts()), 403, "bad_token", "expired")
    forged = "fcenroll_" + "A" * 43
    assert_refused(node_app, dbsession, body(forged, facts()), 403, "bad_token", "unknown")
    assert_refused(node_app, dbsession, body("hello", facts()), 403, "bad_token", "not an")
    assert_refused(node_app, dbsession, body("", facts()), 403, "bad_token", "required")


@pytest.mark.parametrize(
    ("change", "status", "code", "words"),
    [
        ({"uuid": "not-a-uuid"}, 400, "invalid", "not a UUID"),
        ({"hostname": "<node>.example.org"}, 400, "invalid", "host name"),
        ({"hostname": "node1;rm -rf /"}, 400, "invalid", "host name"),
        ({"hostname": "$(reboot).example.org"}, 400, "invalid", "host name"),
        ({"memory_mib": -1}, 400, "invalid", "memory_mib must be between"),
        ({"memory_mib": "16384"}, 400, "invalid", "whole number"),
        ({"pool": 1}, 400, "invalid", "may not choose its pool"),
        ({"state": "available"}, 400, "invalid", "may not choose its state"),
        ({"owner": "eve"}, 400, "invalid", "may not choose its owner"),
        ({"arch": "x86_64<script>"}, 400, "invalid", "arch"),
        ({"cpus": [{"index": 0, "model": "Xeon`id`"}]}, 400, "invalid", "plain text"),
        ({"nics": [{"name": "eth0", "mac": "zz:zz"}]}, 400, "invalid", "MAC"),
        ({"nics": [{"name": "eth0;ls", "mac": "52:54:00:00:00:01"}]}, 400, "invalid", "name"),
    ],
)
def test_bad_facts_are_refused_and_the_token_still_works(
    node_app: Any, service: Any, dbsession: Any, change: Any, status: int, code: str, words: str
) -> None:
    issued = service.issue_token()
    node = facts(**{"hostname": "node1.cloud.example.org", **change})
    payload = body(issued.token, node, cn="node1.cloud.example.org")
    assert_refused(node_app, dbsession, payload, status, code, words)
    node_app.post_json("/api/v1/enroll", body(issued.token, facts()), status=202)


def test_ten_thousand_nics_are_refused(node_app: Any, service: Any, dbsession: Any) -> None:
    nics = [
        {"name": f"eth{i}", "mac": f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"}
        for i in range(10_000)
    ]
    issued = service.issue_token()
    assert_refused(
        node_app, dbsession, body(issued.token, facts(nics=nics)), 400, "invalid", "at most 64"
    )


def test_a_node_claiming_a_pool_beside_its_facts_is_refused(
    node_app: Any, service: Any, dbsession: Any, tree: dict[str, Any]
) -> None:
    payload = body(service.issue_token().token, facts())
    payload["pool"] = tree["fedora"].id
    assert_refused(node_app, dbsession, payload, 400, "invalid", "may not choose its pool")


def test_hostname_bindings_are_enforced(node_app: Any, service: Any, dbsession: Any) -> None:
    bound = service.issue_token(hostname="node7.cloud.example.org")
    assert_refused(
        node_app, dbsession, body(bound.token, facts()), 403, "hostname_mismatch", "node7"
    )
    # the CSR must name the host the facts name
    assert_refused(
        node_app,
        dbsession,
        body(bound.token, facts("node7.cloud.example.org"), cn="evil.example.org"),
        403,
        "hostname_mismatch",
        "evil.example.org",
    )
    node_app.post_json(
        "/api/v1/enroll", body(bound.token, facts("node7.cloud.example.org")), status=202
    )


def test_garbage_bodies_are_refused(node_app: Any, service: Any, dbsession: Any) -> None:
    token = service.issue_token().token
    payload = body(token, facts())
    payload["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
    assert_refused(node_app, dbsession, payload, 400, "invalid", "not a PEM")
    weak = body(token, facts(), key=ec.generate_private_key(ec.SECP192R1()))
    assert_refused(node_app, dbsession, weak, 400, "invalid", "P-256")
    answer = node_app.post(
        "/api/v1/enroll", "nope", content_type="application/json", status=400
    ).json
    assert answer["error"]["message"] == "the request body is not JSON"


def test_a_flood_is_rate_limited_per_address(node_app: Any, service: Any, dbsession: Any) -> None:
    limit = service.config.rate_limit
    for _ in range(limit):
        node_app.post_json("/api/v1/enroll", {"token": "x"}, status=403)
    answer = node_app.post_json(
        "/api/v1/enroll", body(service.issue_token().token, facts()), status=429
    )
    assert answer.json["error"]["code"] == "rate_limited"
    assert answer.headers["Retry-After"] == str(service.config.rate_window)
    assert counts(dbsession)[0] == 0
    node_app.extra_environ["REMOTE_ADDR"] = "10.250.0.1"  # another node is not held up
    node_app.post_json("/api/v1/enroll", body(service.issue_token().token, facts()), status=202)


def test_the_enrollment_api_reveals_nothing_else(node_app: Any, service: Any) -> None:
    assert node_app.get("/api/v1/enroll/999999", status=404).json["error"]["code"] == "not_found"
    assert node_app.get("/api/v1/enroll/abc", status=404).json["error"]["code"] == "not_found"
    assert node_app.get("/api/v1/hosts", status=401)
    assert node_app.post_json("/api/v1/hosts/1/approve", {}, status=401)


def test_approval_needs_host_approve_on_the_hosts_pool(
    node_app: Any, service: Any, dbsession: Any
) -> None:
    node = facts()
    node_app.post_json("/api/v1/enroll", body(service.issue_token().token, node), status=202)
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    alice = login(node_app, "alice")
    alice.post_json(
        f"/api/v1/hosts/{host.id}/approve",
        {},
        headers={"X-CSRF-Token": csrf_token(alice)},
        status=404,
    )
    assert host.state == "pending"


def test_tokens_are_stored_hashed(service: Any, dbsession: Any) -> None:
    issued = service.issue_token(expires="30m")
    row = dbsession.get(EnrollmentToken, issued.row.id)
    assert issued.token not in row.token_hash and len(row.token_hash) == 64
    assert issued.command.startswith("fedoracloud-node enroll --server ")
    assert f"--token {issued.token} --ca-fingerprint {issued.ca_fingerprint}" in issued.command
    assert timedelta(minutes=29) < row.expires_at - utcnow() <= timedelta(minutes=30)


# -- pages ----------------------------------------------------------------------------------


def test_add_a_host_shows_the_command_once(admin_app: Any, ca: Any) -> None:
    form = admin_app.get("/hosts/add").forms["add-host-form"]
    form["hostname"] = "node9.cloud.example.org"
    form["expires"] = "2h"
    shown = form.submit()
    assert shown.headers["Cache-Control"] == "no-store"
    command = shown.html.find(attrs={"data-testid": "node-command"}).text
    assert "--hostname node9.cloud.example.org" in command
    assert ca.fingerprint() in command
    assert "node-command" not in admin_app.get("/hosts/add").text
    form = admin_app.get("/hosts/add").forms["add-host-form"]
    form["expires"] = "1y"
    refused = form.submit(status=400)
    assert "not a duration" in refused.text


def test_members_see_no_add_host_button(alice_app: Any) -> None:
    assert 'data-testid="add-host"' not in alice_app.get("/hosts").text
    assert "You may not approve hosts" in alice_app.get("/hosts/add").text


def test_approve_and_reject_in_the_inbox_and_on_the_host_page(
    node_app: Any, service: Any, dbsession: Any, tree: dict[str, Any]
) -> None:
    first, second = facts("node1.cloud.example.org"), facts("node2.cloud.example.org")
    for node in (first, second):
        node_app.post_json("/api/v1/enroll", body(service.issue_token().token, node), status=202)
    admin = login(node_app, "admin")
    inbox = admin.get("/approvals")
    assert inbox.html.find(attrs={"data-testid": "pending-host-node1.cloud.example.org"})
    one = dbsession.scalars(select(Host).where(Host.uuid == first["uuid"])).one()
    approve = next(f for f in inbox.forms.values() if f.action.endswith(f"/{one.id}/approve"))
    approve["pool"] = str(tree["redhat"].id)
    approve.submit().follow()
    assert (one.state, one.pool_id) == ("available", tree["redhat"].id)
    two = dbsession.scalars(select(Host).where(Host.uuid == second["uuid"])).one()
    page = admin.get(f"/hosts/{two.id}")
    reject = next(f for f in page.forms.values() if f.action.endswith("/reject"))
    reject["reason"] = "unknown hardware"
    reject.submit().follow()
    assert (two.state, two.state_reason) == ("rejected", "unknown hardware")
    assert (
        "serial"
        in admin.get(f"/hosts/{one.id}").html.find(attrs={"data-testid": "certificate"}).text
    )


def test_every_step_is_audited(node_app: Any, service: Any, dbsession: Any) -> None:
    from fedoracloud.models import AuditEvent

    node = facts()
    node_app.post_json("/api/v1/enroll", body(service.issue_token().token, node), status=202)
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    admin = login(node_app, "admin")
    admin.post_json(
        f"/api/v1/hosts/{host.id}/approve", {}, headers={"X-CSRF-Token": csrf_token(admin)}
    )
    admin.post_json(
        f"/api/v1/hosts/{host.id}/reject",
        {"reason": "moved to another site"},
        headers={"X-CSRF-Token": csrf_token(admin)},
    )
    events = {
        (e.action, e.username)
        for e in dbsession.scalars(select(AuditEvent).where(AuditEvent.target_id == host.id))
        if e.target_type == "host"
    }
    assert {
        ("host.enroll", "system"),
        ("host.approve", "admin"),
        ("host.reject", "admin"),
    } <= events
    issued = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.action == "enrollment_token.issue")
    ).all()
    assert issued


def test_reject_needs_a_reason_and_approve_a_pending_host(
    node_app: Any, service: Any, dbsession: Any
) -> None:
    node = facts()
    node_app.post_json("/api/v1/enroll", body(service.issue_token().token, node), status=202)
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    admin = login(node_app, "admin")
    headers = {"X-CSRF-Token": csrf_token(admin)}
    refused = admin.post_json(
        f"/api/v1/hosts/{host.id}/reject", {"reason": " "}, headers=headers, status=400
    )
    assert "say why" in refused.json["error"]["message"]
    admin.post_json(f"/api/v1/hosts/{host.id}/approve", {}, headers=headers)
    again = admin.post_json(f"/api/v1/hosts/{host.id}/approve", {}, headers=headers, status=409)
    assert "no enrollment waiting" in again.json["error"]["message"]


def test_the_host_list_works_before_the_pool_tree_exists(testapp: Any) -> None:
    page = login(testapp, "admin").get("/hosts")
    assert 'data-testid="add-host"' not in page.text


def test_scripts_issue_tokens_through_the_api(
    testapp: Any, tree: dict[str, Any], ca: Any, dbsession: Any
) -> None:
    admin = login(testapp, "admin")
    headers = {"X-CSRF-Token": csrf_token(admin)}
    answer = admin.post_json(
        "/api/v1/enrollment-tokens",
        {"pool": tree["fedora"].id, "hostname": "node5.cloud.example.org", "expires": "30m"},
        headers=headers,
        status=201,
    )
    assert answer.headers["Cache-Control"] == "no-store"
    data = answer.json
    assert data["pool"] == tree["fedora"].id and data["ca_fingerprint"] == ca.fingerprint()
    assert f"--token {data['token']}" in data["command"]
    refused = admin.post_json(
        "/api/v1/enrollment-tokens", {"pool": tree["fedora-vms"].id}, headers=headers, status=400
    )
    assert "hardware pool" in refused.json["error"]["message"]
    admin.post_json("/api/v1/enrollment-tokens", {"owner": 1}, headers=headers, status=400)


def test_members_cannot_issue_tokens(alice_app: Any, ca: Any) -> None:
    alice_app.post_json(
        "/api/v1/enrollment-tokens",
        {},
        headers={"X-CSRF-Token": csrf_token(alice_app)},
        status=404,
    )


@pytest.mark.parametrize(
    "hostname", ["localhost", "LocalHost", "node.localhost", "localhost.localdomain"]
)
def test_localhost_cannot_enroll(node_app: Any, service: Any, dbsession: Any, hostname) -> None:
    """The probe enrolled a node named ``localhost``: the demo's web certname."""
    payload = body(service.issue_token().token, facts(hostname))
    assert_refused(node_app, dbsession, payload, 409, "reserved_hostname", "is reserved")
    with pytest.raises(ReservedHostname):
        service.issue_token(hostname=hostname)


@pytest.mark.parametrize(
    "hostname, whose",
    [
        ("ui01.fedoracloud.example", "a web server's certname"),
        ("stats01.fedoracloud.example", "the statistics server's certname"),
        ("cloud.fedoraproject.org", "the server's own name"),
        ("enroll.fedoraproject.org", "the server's own name"),
    ],
)
def test_the_clouds_own_machines_cannot_enroll(
    app: Any, dbsession: Any, tree: dict[str, Any], ca: Any, hostname: str, whose: str
) -> None:
    settings = app.registry["fc_settings"]
    settings = replace(
        settings,
        puppet=replace(
            settings.puppet,
            server_name="cloud.fedoraproject.org",
            web_certnames=("ui01.fedoracloud.example", "ui02.fedoracloud.example"),
            collectd_server_certname="stats01.fedoracloud.example",
        ),
        extra={
            **settings.extra,
            "fedoracloud.enroll.server_url": "https://enroll.fedoraproject.org",
        },
    )
    service = EnrollmentService(ServiceContext(dbsession, settings))
    before = counts(dbsession)
    with pytest.raises(ReservedHostname, match=whose):
        service.enroll(body(service.issue_token().token, facts(hostname)), "10.9.9.9")
    with pytest.raises(ReservedHostname, match=whose):
        service.issue_token(hostname=hostname)
    assert counts(dbsession) == before
    service.enroll(body(service.issue_token().token, facts("ui03.fedoracloud.example")), "")


def test_a_host_under_a_reserved_name_cannot_be_approved(
    node_app: Any, service: Any, dbsession: Any
) -> None:
    """A pending host whose name became reserved (enrolled before the rule, or a web box
    added to the settings since) is refused at approval, on the API and in the inbox."""
    node = facts()
    node_app.post_json("/api/v1/enroll", body(service.issue_token().token, node), status=202)
    host = dbsession.scalars(select(Host).where(Host.uuid == node["uuid"])).one()
    host.hostname = "localhost"
    dbsession.flush()
    admin = login(node_app, "admin")
    answer = admin.post_json(
        f"/api/v1/hosts/{host.id}/approve",
        {},
        headers={"X-CSRF-Token": csrf_token(admin)},
        status=409,
    ).json
    assert answer["error"]["code"] == "reserved_hostname"
    inbox = admin.get("/approvals")
    approve = next(f for f in inbox.forms.values() if f.action.endswith(f"/{host.id}/approve"))
    page = approve.submit().maybe_follow()
    assert "is reserved" in page.text
    dbsession.refresh(host)
    assert host.state == "pending"
