"""VM requests through the real app: the form, bad input (nothing created), the API, the
approvals inbox and the navigation's counts, approving with changes, denying, and who
may see a request."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select

from fedoracloud.models import AuditEvent, Network, RoleGrant, StoragePool, Task, VmRequest
from fedoracloud.services.cobbler import ProfileService
from fedoracloud.services.context import ServiceContext

from ..conftest import login
from ..factories import HostFactory, VmFactory
from .conftest import (
    after_redirect,
    api_headers,
    assert_api_error,
    by_testid,
    flashes,
    grant,
    session_csrf,
    text_of,
)


@pytest.fixture
def world(dbsession, tree):
    """fedora (alice: user; bob: admin) with a host, dir storage, a guest network and the
    demo's profiles, of which Fedora-40 is allowed on fedora."""
    HostFactory(pool=tree["fedora"], cpu_count=8, memory_mib=16384)
    storage = StoragePool(name="vmdisks", kind="dir", target_path="/vmdisks")
    storage.hardware_pools.append(tree["fedora"])
    network = Network(name="public", bridge="br0", cidr="209.132.181.0/24", usage="guest")
    network.hardware_pools.append(tree["fedora"])
    dbsession.add_all([storage, network])
    profiles = {
        p.name: p for p in ProfileService(ServiceContext.for_session(dbsession)).seed_demo()
    }
    ProfileService(ServiceContext.for_session(dbsession)).set_allowed(
        tree["fedora"], [profiles["Fedora-40-x86_64"].id]
    )
    grant(dbsession, "alice", tree["fedora"], "user")
    grant(dbsession, "bob", tree["fedora"], "admin")
    return {"network": network, "profiles": profiles, "pool": tree["fedora-vms"]}


def form_fields(world: dict[str, Any], **changes: str) -> dict[str, str]:
    return {
        "name": "web01",
        "profile": str(world["profiles"]["Fedora-40-x86_64"].id),
        "vcpus": "2",
        "memory_mib": "2048",
        "storage_gib": "20",
        "network": str(world["network"].id),
        "reason": "docs build server",
        **changes,
    }


def body(world: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "web01",
        "pool": world["pool"].id,
        "profile": world["profiles"]["Fedora-40-x86_64"].id,
        "vcpus": 2,
        "memory_mib": 2048,
        "storage_gib": 20,
        "network": world["network"].id,
        "reason": "docs build server",
    }
    data.update(changes)
    return data


def requests_count(dbsession: Any) -> int:
    dbsession.expire_all()
    return dbsession.scalar(select(func.count(VmRequest.id))) or 0


def submit_form(app: Any, world: dict[str, Any], **changes: str) -> Any:
    url = f"/pools/{world['pool'].id}/vm-requests"
    return app.post(
        url, {"csrf_token": session_csrf(app), **form_fields(world, **changes)}, expect_errors=True
    )


def test_alice_requests_a_vm_through_the_form(testapp, world, dbsession):
    app = login(testapp, "alice")
    pool_page = app.get(f"/pools/{world['pool'].id}")
    assert by_testid(pool_page, "request-vm") is not None
    form_page = app.get(f"/pools/{world['pool'].id}/vm-requests")
    options = [o.get_text(strip=True) for o in form_page.html.select("#profile option")]
    assert options == ["Fedora-40-x86_64"]  # only what the pool allows
    assert [o.get_text(strip=True) for o in form_page.html.select("#network option")] == [
        "public (209.132.181.0/24)"
    ]
    page = after_redirect(submit_form(app, world))
    assert flashes(page, "success") == [
        "Your request for web01 was sent to the admins of fedora-vms."
    ]
    assert text_of(page, "fact-state") == "pending"
    req = dbsession.scalars(select(VmRequest)).one()
    assert (req.vcpus, req.memory_mib, req.storage_gib, req.profile) == (
        2,
        2048,
        20,
        "Fedora-40-x86_64",
    )
    event = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.action == "vm_request.submit")
    ).one()
    assert event.username == "alice" and event.after["name"] == "web01"
    listed = app.get("/vm-requests")
    assert text_of(listed, f"state-{req.id}") == "pending"


def test_bad_input_gets_a_clear_error_and_creates_nothing(testapp, world, dbsession, tree):
    VmFactory(name="taken", pool=world["pool"])
    other = world["profiles"]["CentOS-Stream-9-x86_64"].id
    app = login(testapp, "alice")
    cases = [
        ({"vcpus": "0"}, "vCPUs: 1 to 256, not 0"),
        ({"vcpus": "16"}, "vcpus: 16 is more than the largest host"),
        ({"memory_mib": "100"}, "memory (MiB): 256 to"),
        ({"memory_mib": "999999"}, "more than the largest host"),
        ({"storage_gib": "0"}, "disk size (GiB): 1 to"),
        ({"storage_gib": "lots"}, "disk size (GiB): a whole number"),
        ({"profile": str(other)}, "profile 'CentOS-Stream-9-x86_64' is not allowed in pool"),
        ({"name": "taken"}, "pool 'fedora-vms' already has a VM named 'taken'"),
        ({"name": "bad name!"}, "a VM name may hold only"),
        ({"reason": ""}, "please give a reason"),
        ({"network": "999999"}, "no guest network 999999"),
    ]
    for changes, message in cases:
        response = submit_form(app, world, **changes)
        assert response.status_int in (400, 409), (changes, response.status_int)
        assert message in text_of(response, "form-error"), (
            changes,
            text_of(response, "form-error"),
        )
    assert requests_count(dbsession) == 0


def test_a_quota_exceeded_is_refused(testapp, world, dbsession, tree):
    from fedoracloud.services.quotas import QuotaService

    QuotaService(ServiceContext.for_session(dbsession)).set(tree["fedora"], {"memory_mib": 1024})
    app = login(testapp, "alice")
    answer = app.post_json(
        "/api/v1/vm-requests", body(world), headers=api_headers(app), expect_errors=True
    )
    assert_api_error(answer, 409, "conflict", "quota of pool 'fedora' exceeded: memory (MiB)")
    assert requests_count(dbsession) == 0


def test_a_second_request_for_the_same_name_is_refused(testapp, world, dbsession):
    app = login(testapp, "alice")
    headers = api_headers(app)
    assert app.post_json("/api/v1/vm-requests", body(world), headers=headers).status_int == 201
    answer = app.post_json("/api/v1/vm-requests", body(world), headers=headers, expect_errors=True)
    assert_api_error(answer, 409, "conflict", "a VM named 'web01' is already requested")
    assert requests_count(dbsession) == 1


def test_the_api_follows_a_request(testapp, world, dbsession):
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app))
    assert made.status_int == 201
    data = made.json
    assert data["state"] == "pending" and data["user"] == "alice"
    assert made.headers["Location"].endswith(f"/api/v1/vm-requests/{data['id']}")
    assert app.get(f"/api/v1/vm-requests/{data['id']}").json["name"] == "web01"
    assert [r["id"] for r in app.get("/api/v1/vm-requests").json["items"]] == [data["id"]]
    answer = app.post_json(
        "/api/v1/vm-requests",
        {**body(world), "colour": "red"},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "unknown fields: colour")


def test_admins_see_it_in_the_inbox_and_the_count(testapp, world, dbsession):
    app = login(testapp, "alice")
    app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app))
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "bob")  # admin of fedora
    page = app.get("/vm-requests")
    assert text_of(page, "vm-requests-count") == "1"
    assert "web01" in text_of(page, "waiting-vm-requests")
    assert [r["name"] for r in app.get("/api/v1/vm-requests?waiting=true").json["items"]] == [
        "web01"
    ]
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "admin")  # super admin: the approvals inbox
    inbox = app.get("/approvals")
    assert "web01" in text_of(inbox, "pending-vm-requests")
    assert int(text_of(inbox, "approvals-count")) >= 1


def test_approving_with_changes_queues_provisioning(testapp, world, dbsession, tree):
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "bob")
    page = app.get(f"/vm-requests/{made['id']}")
    assert by_testid(page, "approve-form") is not None
    response = app.post(
        f"/vm-requests/{made['id']}/approve",
        {"csrf_token": session_csrf(app), "vcpus": "1", "memory_mib": "1024"},
    )
    landed = after_redirect(response)
    assert flashes(landed, "success")[0].startswith("Request for web01 approved; provisioning")
    assert text_of(landed, "fact-state") == "approved"
    live = landed.html.find(id="vm-request-live")  # the page follows the provisioning
    assert live["data-live-url"].endswith(f"/api/v1/vm-requests/{made['id']}")
    assert live["data-live-final"] == "provisioned,failed,denied"
    req = dbsession.get(VmRequest, made["id"])
    dbsession.refresh(req)
    assert (req.vcpus, req.memory_mib, req.storage_gib) == (1, 1024, 20)
    task = dbsession.get(Task, req.task_id)
    assert task.kind == "vm_request.provision" and task.target_type == "vm_request"
    event = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.action == "vm_request.approve")
    ).one()
    assert event.before["vcpus"] == 2 and event.after["vcpus"] == 1
    assert event.username == "bob"
    again = app.post(f"/vm-requests/{made['id']}/approve", {"csrf_token": session_csrf(app)})
    assert flashes(after_redirect(again), "danger") == ["this request was already approved"]


def test_deny_needs_a_reason_and_the_requester_reads_it(testapp, world, dbsession):
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "bob")
    url = f"/api/v1/vm-requests/{made['id']}/deny"
    answer = app.post_json(url, {}, headers=api_headers(app), expect_errors=True)
    assert_api_error(answer, 400, "invalid", "please give a reason")
    denied = app.post_json(url, {"reason": "use the shared builder"}, headers=api_headers(app))
    assert denied.json["state"] == "denied"
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "alice")
    page = app.get(f"/vm-requests/{made['id']}")
    assert text_of(page, "fact-state") == "denied"
    assert "use the shared builder" in text_of(page, "fact-decided-by")


def test_only_the_requester_and_the_pools_admins_see_a_request(testapp, world, dbsession, tree):
    bobs = dbsession.scalars(select(RoleGrant).where(RoleGrant.role == "admin")).one()
    bobs.role = "user"  # bob: same pool, user role, not his request
    dbsession.flush()
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "bob")
    app.get(f"/vm-requests/{made['id']}", status=404)
    answer = app.get(f"/api/v1/vm-requests/{made['id']}", expect_errors=True)
    assert_api_error(answer, 404, "not_found")
    assert app.get("/api/v1/vm-requests").json["items"] == []
    assert app.get("/api/v1/vm-requests?waiting=true").json["items"] == []


def test_the_requester_cannot_approve_her_own(testapp, world, dbsession):
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    answer = app.post_json(
        f"/api/v1/vm-requests/{made['id']}/approve",
        {},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 403, "forbidden")
    withdrawn = app.post(f"/vm-requests/{made['id']}/withdraw", {"csrf_token": session_csrf(app)})
    assert text_of(after_redirect(withdrawn), "fact-state") == "denied"


def test_approving_into_a_pool_the_requester_cannot_use_is_refused(testapp, world, dbsession, tree):
    from fedoracloud.services.pools import PoolService

    elsewhere = PoolService(ServiceContext.for_session(dbsession)).create(
        "private-vms", "vm", tree["fedora"]
    )
    grant(dbsession, "alice", tree["fedora-vms"], "user")
    dbsession.execute(
        delete(RoleGrant).where(RoleGrant.pool_id == tree["fedora"].id, RoleGrant.role == "user")
    )
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    app.post("/logout", {"csrf_token": session_csrf(app)})
    app = login(testapp, "bob")
    answer = app.post_json(
        f"/api/v1/vm-requests/{made['id']}/approve",
        {"pool": elsewhere.id},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "alice may not request VMs in pool 'private-vms'")
    dbsession.expire_all()
    assert dbsession.get(VmRequest, made["id"]).state == "pending"


def test_a_requester_who_lost_the_right_to_request_is_not_approved(testapp, world, dbsession):
    app = login(testapp, "alice")
    made = app.post_json("/api/v1/vm-requests", body(world), headers=api_headers(app)).json
    app.post("/logout", {"csrf_token": session_csrf(app)})
    alices = dbsession.scalars(select(RoleGrant).where(RoleGrant.role == "user")).one()
    dbsession.delete(alices)
    dbsession.flush()
    app = login(testapp, "bob")
    answer = app.post_json(
        f"/api/v1/vm-requests/{made['id']}/approve",
        {},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "alice may not request VMs in pool 'fedora-vms'")
    dbsession.expire_all()
    assert dbsession.get(VmRequest, made["id"]).state == "pending"
    assert dbsession.scalar(select(func.count(Task.id))) == 0


def test_the_form_lives_on_vm_pools_only(testapp, world, tree):
    app = login(testapp, "alice")
    url = f"/pools/{tree['fedora'].id}/vm-requests"
    assert app.get(url).status_int == 303
    answer = app.post(url, {"csrf_token": session_csrf(app), **form_fields(world)})
    assert flashes(after_redirect(answer), "danger") == ["VMs are requested in VM pools."]
    api = app.post_json(
        "/api/v1/vm-requests",
        body(world, pool=tree["fedora"].id),
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(api, 400, "invalid", "VMs are requested in VM pools")


def test_digits_that_are_not_decimal_are_refused(testapp, world, dbsession):
    app = login(testapp, "alice")
    response = submit_form(app, world, vcpus="²")
    assert response.status_int == 400
    assert "vCPUs: a whole number" in text_of(response, "form-error")
    assert requests_count(dbsession) == 0


def test_the_navigation_marks_vm_requests_not_vms(testapp, world):
    app = login(testapp, "alice")
    page = app.get("/vm-requests")
    current = [a["data-testid"] for a in page.html.select("a.pf-m-current")]
    assert current == ["nav-vm-requests"]
    assert [a["data-testid"] for a in app.get("/vms").html.select("a.pf-m-current")] == ["nav-vms"]
