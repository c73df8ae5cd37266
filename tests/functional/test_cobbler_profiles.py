"""Profiles through the real app: the cache's page and API, the refresh from the loopback
Cobbler (a task), a pool's choice and what its subtree inherits, and who may change it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fedoracloud import cobbler
from fedoracloud.models import AuditEvent, CobblerProfile, PoolProfile, Task
from fedoracloud.services.cobbler import ProfileService, run_refresh
from fedoracloud.services.context import ServiceContext

from ..cobbler_server import FakeCobbler
from ..conftest import login
from .conftest import api_headers, assert_api_error, by_testid, flashes, grant, session_csrf


@pytest.fixture
def profiles(dbsession):
    return {p.name: p for p in ProfileService(ServiceContext.for_session(dbsession)).seed_demo()}


@pytest.fixture
def fake_cobbler():
    with FakeCobbler() as server:
        server.add_profile("Fedora-42-x86_64")
        server.add_profile("CentOS-Stream-9-x86_64", distro="CentOS-Stream-9-x86_64")
        server.add_image("memtest86")
        previous = cobbler.configure(
            cobbler.CobblerSettings(url=server.url, username="cobbler", password="cobbler-password")
        )
        try:
            yield server
        finally:
            cobbler.configure(previous)


def test_everyone_let_in_sees_the_cache(alice_app, profiles):
    page = alice_app.get("/profiles")
    assert by_testid(page, "profile-Fedora-40-x86_64") is not None
    assert "No Cobbler is linked" in page.text
    assert by_testid(page, "refresh-form") is None
    listed = alice_app.get("/api/v1/profiles").json
    assert {p["name"] for p in listed["items"]} == set(profiles)
    assert listed["total"] == 4


def test_refresh_without_a_cobbler_is_refused_with_the_reason(admin_app, profiles):
    answer = admin_app.post_json(
        "/api/v1/profiles/refresh", {}, headers=api_headers(admin_app), expect_errors=True
    )
    assert_api_error(answer, 409, "conflict", "no Cobbler is linked")


def test_refresh_from_cobbler_updates_the_cache(admin_app, dbsession, profiles, fake_cobbler):
    answer = admin_app.post_json("/api/v1/profiles/refresh", {}, headers=api_headers(admin_app))
    assert answer.status_int == 202 and answer.json["kind"] == "cobbler.refresh"
    task = dbsession.get(Task, answer.json["id"])
    assert run_refresh(task, dbsession) == (
        "2 profiles and 1 images listed by Cobbler (1 new, 2 no longer listed)"
    )
    dbsession.expire_all()
    rows = {p.name: p for p in dbsession.scalars(select(CobblerProfile))}
    assert rows["Fedora-42-x86_64"].present and rows["Fedora-42-x86_64"].refreshed_at
    assert rows["CentOS-Stream-9-x86_64"].present  # listed again: kept, same row
    assert not rows["Fedora-40-x86_64"].present  # Cobbler no longer lists it: kept, marked
    assert rows["memtest86"].kind == "image" and rows["memtest86"].present
    page = admin_app.get("/profiles")
    assert by_testid(page, "refresh-form") is not None
    assert "last refreshed" in page.text
    visible = admin_app.get("/api/v1/profiles").json["items"]
    assert "Fedora-40-x86_64" not in {p["name"] for p in visible}
    everything = admin_app.get("/api/v1/profiles?all=true").json["items"]
    assert "Fedora-40-x86_64" in {p["name"] for p in everything}


def test_a_member_cannot_refresh(alice_app, profiles, fake_cobbler):
    answer = alice_app.post_json(
        "/api/v1/profiles/refresh", {}, headers=api_headers(alice_app), expect_errors=True
    )
    assert_api_error(answer, 403, "forbidden")


def test_a_pool_admin_allows_profiles_and_the_subtree_inherits(testapp, dbsession, tree, profiles):
    grant(dbsession, "alice", tree["fedora"], "admin")
    app = login(testapp, "alice")
    fedora40 = profiles["Fedora-40-x86_64"]
    response = app.post(
        f"/pools/{tree['fedora'].id}/profiles",
        {"csrf_token": session_csrf(app), "profile": str(fedora40.id)},
    )
    landed = response.follow()
    assert flashes(landed, "success") == ["Pool fedora allows Fedora-40-x86_64."]
    below = app.get(f"/pools/{tree['fedora-vms'].id}/profiles")
    assert "fedora (above)" in by_testid(below, "allowed-by-Fedora-40-x86_64").get_text()
    inherited = app.get(f"/api/v1/pools/{tree['fedora-vms'].id}/profiles").json["items"]
    assert [(p["name"], p["allowed_on"]["name"]) for p in inherited] == [
        ("Fedora-40-x86_64", "fedora")
    ]
    centos = profiles["CentOS-Stream-9-x86_64"]
    answer = app.put_json(
        f"/api/v1/pools/{tree['fedora-vms'].id}/profiles",
        {"profiles": [centos.id]},
        headers=api_headers(app),
    )
    assert sorted(p["name"] for p in answer.json["items"]) == [
        "CentOS-Stream-9-x86_64",
        "Fedora-40-x86_64",
    ]
    assert [
        p.name
        for p in ProfileService(ServiceContext.for_session(dbsession)).allowed(tree["fedora"])
    ] == ["Fedora-40-x86_64"]
    event = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.action == "pool.profiles").order_by(AuditEvent.id)
    ).all()
    assert [e.after["profiles"] for e in event] == [
        ["Fedora-40-x86_64"],
        ["CentOS-Stream-9-x86_64"],
    ]


def test_who_may_change_a_pools_profiles(testapp, dbsession, tree, profiles):
    grant(dbsession, "alice", tree["fedora"], "user")
    app = login(testapp, "alice")
    fedora40 = profiles["Fedora-40-x86_64"]
    page = app.get(f"/pools/{tree['fedora'].id}/profiles")
    assert page.html.find("input", {"type": "checkbox"}) is None
    form = app.post(
        f"/pools/{tree['fedora'].id}/profiles",
        {"csrf_token": session_csrf(app), "profile": str(fedora40.id)},
        expect_errors=True,
    )
    assert form.status_int == 403
    answer = app.put_json(
        f"/api/v1/pools/{tree['redhat'].id}/profiles",
        {"profiles": [fedora40.id]},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 404, "not_found")
    app.get(f"/pools/{tree['redhat'].id}/profiles", status=404)
    assert dbsession.scalars(select(PoolProfile)).all() == []


def test_bad_profile_lists_are_refused(admin_app, dbsession, tree, profiles):
    url = f"/api/v1/pools/{tree['fedora'].id}/profiles"
    for body, message in (
        ({"profiles": [999999]}, "no profile 999999"),
        ({"profiles": "all"}, "must be a list"),
        ({"profiles": [True]}, "profiles"),
    ):
        answer = admin_app.put_json(url, body, headers=api_headers(admin_app), expect_errors=True)
        assert answer.status_int == 400, body
        assert message in answer.json["error"]["message"], answer.json
    assert dbsession.scalars(select(PoolProfile)).all() == []
