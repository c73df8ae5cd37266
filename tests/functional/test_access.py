"""The sysadmin-cloud gate, access requests, the approvals inbox and local approval."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fedoracloud.models import AccessRequest, AuditEvent, RoleGrant, User
from fedoracloud.services.context import ServiceContext

from ..conftest import GROUPS, csrf_token, login


@pytest.mark.parametrize(
    "username, lands, super_admin",
    [
        ("admin", "/pools", True),  # listed in fedoracloud.admins
        ("olga", "/pools", True),  # administrator of sysadmin-cloud
        ("alice", "/pools", False),  # approved member
        ("carol", "/access", False),  # membership not approved yet
        ("eve", "/access", False),  # outsider
    ],
)
def test_the_gate(testapp, tree, username, lands, super_admin):
    login(testapp, username)
    page = testapp.get("/pools")
    if lands == "/access":
        assert page.status_int == 303 and page.location.endswith("/access")
        assert testapp.get("/api/v1/pools", status=403).json["error"]["code"] == "no_access"
        assert testapp.get(f"/pools/{tree['fedora'].id}", status=303).location.endswith("/access")
    else:
        assert page.status_int == 200
        assert ("(super admin)" in page.text) is super_admin


def test_unapproved_member_is_told_why(testapp, tree):
    login(testapp, "carol")
    page = testapp.get("/access")
    assert "waiting for a sponsor" in page.text


def request_access(testapp, reason="I run the Fedora QA VMs"):
    form = testapp.get("/access").forms["request-form"]
    form["reason"] = reason
    return form.submit()


def test_request_approve_and_the_user_sees_exactly_the_granted_pool(testapp, tree, dbsession):
    login(testapp, "eve")
    assert request_access(testapp).status_int == 303
    assert "waiting for an administrator" in testapp.get("/access").text
    # a second request while one is pending is refused
    token = testapp.get("/access").html.find("input", {"name": "csrf_token"})["value"]
    again = testapp.post("/access", {"reason": "again", "csrf_token": token}, status=409)
    assert "already waiting for an administrator" in again.text
    assert dbsession.scalar(select(AccessRequest).where(AccessRequest.state == "pending"))

    testapp.reset()
    login(testapp, "admin")
    inbox = testapp.get("/approvals")
    assert 'data-testid="approvals-count">1<' in inbox.text
    form = inbox.forms[1]
    form["pool"] = str(tree["fedora"].id)
    form["role"] = "user"
    assert "Access approved." in form.submit().follow().text

    eve = dbsession.scalars(select(User).where(User.username == "eve")).one()
    assert eve.local_access
    grant = dbsession.scalars(select(RoleGrant).where(RoleGrant.user_id == eve.id)).one()
    assert (grant.pool_id, grant.role) == (tree["fedora"].id, "user")
    assert dbsession.scalar(select(AuditEvent).where(AuditEvent.action == "access.approve"))

    testapp.reset()
    login(testapp, "eve")
    names = {p["name"] for p in testapp.get("/api/v1/pools").json["items"]}
    assert names == {"fedora", "fedora-vms"}
    testapp.get(f"/pools/{tree['redhat'].id}", status=404)
    assert "redhat" not in testapp.get("/pools").text


def test_deny_needs_a_reason_and_the_user_reads_it(testapp, tree, dbsession):
    login(testapp, "eve")
    request_access(testapp)
    testapp.reset()
    login(testapp, "admin")
    form = testapp.get("/approvals").forms[2]
    form["reason"] = ""
    assert "please give a reason" in form.submit().follow().text
    form = testapp.get("/approvals").forms[2]
    form["reason"] = "Please join sysadmin-cloud through FAS first."
    form.submit()
    testapp.reset()
    login(testapp, "eve")
    page = testapp.get("/access")
    assert "Please join sysadmin-cloud through FAS first." in page.text
    assert testapp.get("/pools").location.endswith("/access")


@pytest.mark.parametrize("reason", ["", " ", "x" * 2001])
def test_bad_reasons_are_refused(testapp, tree, dbsession, reason):
    login(testapp, "eve")
    token = testapp.get("/access").html.find("input", {"name": "csrf_token"})["value"]
    page = testapp.post("/access", {"reason": reason, "csrf_token": token}, status=400)
    assert "reason" in page.text
    assert dbsession.scalar(select(AccessRequest)) is None


def test_non_admins_cannot_see_the_inbox(testapp, tree):
    login(testapp, "alice")
    testapp.get("/approvals", status=403)
    testapp.get("/users", status=403)


def test_revoking_local_access_logs_them_out(testapp, tree, dbsession):
    login(testapp, "eve")
    request_access(testapp)
    testapp.reset()
    login(testapp, "admin")
    form = testapp.get("/approvals").forms[1]
    form["pool"] = str(tree["fedora"].id)
    form.submit()
    testapp.reset()
    login(testapp, "eve")
    assert testapp.get("/pools").status_int == 200
    eve_app_cookies = dict(testapp.cookies)
    testapp.reset()
    login(testapp, "admin")
    eve = dbsession.scalars(select(User).where(User.username == "eve")).one()
    people = testapp.get("/users")
    revoke = next(f for f in people.forms.values() if f.action.endswith(f"/users/{eve.id}/access"))
    revoke.submit()
    assert not eve.local_access
    testapp.reset()
    for name, value in eve_app_cookies.items():
        testapp.set_cookie(name, value)
    assert testapp.get("/pools").status_int == 303  # the session is gone


def test_membership_ttl_rereads_the_groups_file(testapp, tree, app_settings, dbsession):
    from fedoracloud.models import LoginSession

    login(testapp, "bob")
    assert testapp.get("/pools").status_int == 200
    path = app_settings["fedoracloud.htpasswd.groups_file"]
    try:
        with open(path, "w") as out:
            out.write(GROUPS.replace(" bob", ""))
        testapp.get("/pools", status=200)  # within the TTL: the cached membership holds
        for session in dbsession.scalars(select(LoginSession)):
            session.memberships_checked_at = session.memberships_checked_at.replace(year=2000)
        assert testapp.get("/pools").location.endswith("/access")
    finally:
        with open(path, "w") as out:
            out.write(GROUPS)


def test_approving_with_a_bad_role_changes_nothing(testapp, tree, dbsession):
    login(testapp, "eve")
    request_access(testapp)
    testapp.reset()
    login(testapp, "admin")
    form = testapp.get("/approvals").forms[1]
    done = testapp.post(
        form.action,
        {"csrf_token": csrf_token(testapp), "pool": str(tree["fedora"].id), "role": "emperor"},
    )
    assert "unknown role &#39;emperor&#39;" in done.follow().text
    eve = dbsession.scalars(select(User).where(User.username == "eve")).one()
    assert not eve.local_access
    assert dbsession.scalars(select(RoleGrant).where(RoleGrant.user_id == eve.id)).first() is None
    assert dbsession.scalars(select(AccessRequest)).one().state == "pending"


def test_the_inbox_count_includes_pending_hosts(testapp, tree):
    from ..factories import HostFactory

    HostFactory(pool=tree["default"], state="pending")
    HostFactory(pool=tree["default"], state="available")
    login(testapp, "admin")
    assert 'data-testid="approvals-count">1<' in testapp.get("/pools").text


def test_the_inbox_count_is_every_kind_waiting_and_nothing_decided(testapp, tree, dbsession):
    from fedoracloud.models import VmRequest
    from fedoracloud.services.approvals import ApprovalsService

    from ..factories import HostFactory, UserFactory

    asker, denied = UserFactory(username="asker"), UserFactory(username="denied")
    dbsession.flush()
    dbsession.add_all(
        [
            AccessRequest(user_id=asker.id, reason="QA", state="pending"),
            AccessRequest(user_id=denied.id, reason="QA", state="denied"),
        ]
    )
    HostFactory(pool=tree["default"], state="pending")
    HostFactory(pool=tree["default"], state="pending")
    HostFactory(pool=tree["default"], state="maintenance")
    for state in ("pending", "approved", "denied"):
        dbsession.add(
            VmRequest(
                user=asker,
                pool=tree["fedora-vms"],
                name=f"vm-{state}",
                state=state,
                vcpus=1,
                memory_mib=512,
            )
        )
    dbsession.flush()
    assert ApprovalsService(ServiceContext.for_session(dbsession)).pending_count() == 4
    login(testapp, "admin")
    assert 'data-testid="approvals-count">4<' in testapp.get("/pools").text


def test_the_inbox_count_is_asked_once_per_page_and_only_for_super_admins(testapp, tree, dbengine):
    from sqlalchemy import event

    counted: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "access_requests" in statement and "hosts" in statement:
            counted.append(statement)

    event.listen(dbengine, "before_cursor_execute", seen)
    try:
        login(testapp, "alice")  # an approved member: no inbox
        testapp.get("/pools")
        assert counted == []
        testapp.reset()
        login(testapp, "admin")
        counted.clear()
        testapp.get("/pools")
        assert len(counted) == 1
    finally:
        event.remove(dbengine, "before_cursor_execute", seen)
