"""Granting and revoking roles on pools: pages, API, the user picker and the rules."""

from __future__ import annotations

import pytest
import webtest
from sqlalchemy import select

from fedoracloud import main
from fedoracloud.models import AuditEvent, RoleGrant, User

from ..conftest import csrf_token, login


def api(testapp, method, url, body=None, status=None):
    headers = {"X-CSRF-Token": csrf_token(testapp)}
    call = getattr(testapp, f"{method}_json" if body is not None else method)
    if body is not None:
        return call(url, body, headers=headers, status=status or "*")
    return call(url, headers=headers, status=status or "*")


def user_named(dbsession, username):
    return dbsession.scalars(select(User).where(User.username == username)).first()


def members_logged_in(testapp, *names):
    """Log each person in once, so FedoraCloud knows them and their groups."""
    for name in names:
        login(testapp, name)
        testapp.reset()


def test_super_admin_grants_and_the_grantee_sees_the_subtree(testapp, tree, dbsession):
    members_logged_in(testapp, "alice")
    login(testapp, "admin")
    made = api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['fedora'].id}/grants",
        {"user": "alice", "role": "monitor"},
        status=201,
    )
    assert made.json["role"] == "monitor" and made.json["user"] == "alice"
    listed = testapp.get(f"/api/v1/pools/{tree['fedora-vms'].id}/grants").json["items"]
    assert [(g["user"], g["inherited_from"]) for g in listed] == [("alice", tree["fedora"].id)]
    page = testapp.get(f"/pools/{tree['fedora-vms'].id}/permissions")
    assert "inherited from" in page.text
    testapp.reset()
    login(testapp, "alice")
    assert {p["name"] for p in testapp.get("/api/v1/pools").json["items"]} == {
        "fedora",
        "fedora-vms",
    }
    testapp.get(f"/api/v1/pools/{tree['redhat'].id}", status=404)
    # monitor may view but not manage permissions
    testapp.get(f"/pools/{tree['fedora'].id}/permissions", status=403)


def test_admin_on_a_pool_cannot_grant_above_their_role_or_outside(testapp, tree, dbsession):
    members_logged_in(testapp, "alice", "bob")
    login(testapp, "admin")
    api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['fedora'].id}/grants",
        {"user": "alice", "role": "admin"},
        status=201,
    )
    testapp.reset()
    login(testapp, "alice")
    too_high = api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['fedora'].id}/grants",
        {"user": "bob", "role": "super_admin"},
        status=400,
    )
    assert "above your own role" in too_high.json["error"]["message"]
    hidden = api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['redhat'].id}/grants",
        {"user": "bob", "role": "user"},
        status=404,
    )
    assert hidden.json["error"]["code"] == "not_found"
    ok = api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['fedora-vms'].id}/grants",
        {"user": "bob", "role": "user"},
        status=201,
    )
    assert ok.json["role"] == "user"
    own = api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['fedora-vms'].id}/grants",
        {"user": "alice", "role": "monitor"},
        status=400,
    )
    assert "your own grants" in own.json["error"]["message"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"user": "carol", "role": "user"}, 404, "no grantable person"),  # unapproved
        ({"user": "eve", "role": "user"}, 404, "no grantable person"),  # outsider
        ({"user": "nobody", "role": "user"}, 404, "no grantable person"),
        ({"user": "alice", "role": "emperor"}, 400, "unknown role"),
        ({"group": "Bad Group!", "role": "user"}, 400, "group name"),
        ({"group": "x" * 65, "role": "user"}, 400, "group name"),
        ({"role": "user"}, 400, "either a user or a group"),
        ({"user": ["alice"], "role": "user"}, 400, "must be a username"),
        ({"user": "alice", "role": 3}, 400, "'role' must be a string"),
    ],
)
def test_bad_grants_are_refused_and_nothing_written(
    testapp, tree, dbsession, body, status, message
):
    members_logged_in(testapp, "alice", "carol", "eve")
    login(testapp, "admin")
    before = dbsession.scalars(select(RoleGrant)).all()
    answer = api(testapp, "post", f"/api/v1/pools/{tree['fedora'].id}/grants", body, status=status)
    assert message in answer.json["error"]["message"]
    assert dbsession.scalars(select(RoleGrant)).all() == before


def test_group_grants_reach_members(testapp, tree, dbsession):
    login(testapp, "admin")
    api(
        testapp,
        "post",
        f"/api/v1/pools/{tree['redhat'].id}/grants",
        {"group": "fedora-packagers", "role": "user"},
        status=201,
    )
    testapp.reset()
    login(testapp, "alice")  # alice is in fedora-packagers
    assert {p["name"] for p in testapp.get("/api/v1/pools").json["items"]} == {
        "redhat",
        "redhat-vms",
    }


def test_revoke(testapp, tree, dbsession):
    members_logged_in(testapp, "alice")
    login(testapp, "admin")
    root = tree["root"].id
    alice = api(
        testapp,
        "post",
        f"/api/v1/pools/{root}/grants",
        {"user": "alice", "role": "super_admin"},
        status=201,
    ).json
    # a grant id under another pool's URL is a 404
    api(testapp, "delete", f"/api/v1/pools/{tree['fedora'].id}/grants/{alice['id']}", status=404)
    api(testapp, "delete", f"/api/v1/pools/{root}/grants/{alice['id']}", status=204)
    assert dbsession.get(RoleGrant, alice["id"]) is None
    actions = [e.action for e in dbsession.scalars(select(AuditEvent))]
    assert actions.count("grant.add") == 1 and actions.count("grant.revoke") == 1


def test_grant_and_revoke_through_the_page(testapp, tree, dbsession):
    members_logged_in(testapp, "bob")
    login(testapp, "admin")
    page = testapp.get(f"/pools/{tree['fedora'].id}/permissions")
    form = (
        page.forms["grant-form"]
        if "grant-form" in page.forms
        else next(f for f in page.forms.values() if "user" in f.fields and "role" in f.fields)
    )
    form["user"] = "bob"
    form["role"] = "user"
    assert "Role granted." in form.submit().follow().text
    page = testapp.get(f"/pools/{tree['fedora'].id}/permissions")
    revoke = next(f for f in page.forms.values() if f.action.endswith("/revoke"))
    assert "Grant revoked." in revoke.submit().follow().text
    assert dbsession.scalars(select(RoleGrant)).first() is None


def test_user_picker_offers_only_grantable_people(testapp, tree):
    members_logged_in(testapp, "alice", "bob", "carol", "eve")
    login(testapp, "admin")
    people = {p["username"] for p in testapp.get("/api/v1/users").json["items"]}
    assert {"alice", "bob", "olga", "admin"} <= people
    assert not {"carol", "eve"} & people
    assert [p["username"] for p in testapp.get("/api/v1/users?q=bo").json["items"]] == ["bob"]
    testapp.get("/api/v1/users?q=" + "x" * 65, status=400)
    groups = {g["name"] for g in testapp.get("/api/v1/groups").json["items"]}
    assert {"sysadmin-cloud", "fedora-packagers"} <= groups


def test_sessions_continue_on_another_app_instance(testapp, tree, app_settings, tm, dbsession):
    """Two UI boxes sharing the database: log in on one, carry on with the other."""
    login(testapp, "alice")
    other = webtest.TestApp(
        main({}, **app_settings),
        extra_environ={
            "HTTP_HOST": "example.com",
            "tm.active": True,
            "tm.manager": tm,
            "app.dbsession": dbsession,
        },
    )
    for name, value in testapp.cookies.items():
        other.set_cookie(name, value)
    assert other.get("/pools").status_int == 200
    token = csrf_token(other)
    other.post("/logout", {"csrf_token": token}, status=303)
    assert testapp.get("/pools").status_int == 303  # logged out on the first box too
