"""The audit log: ``/audit`` and ``/api/v1/audit`` (filters, pages, who reads what)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent

from ..conftest import login
from .conftest import assert_api_error, by_testid, grant, location_path, text_of, user_named

JANUARY = {"from": "2024-01-01", "to": "2024-01-31"}
EVENT_KEYS = {
    "id",
    "at",
    "user",
    "user_id",
    "action",
    "target_type",
    "target_id",
    "pool",
    "pool_name",
    "remote_addr",
    "before",
    "after",
}


def event(dbsession, username, action, target_type, target_id, pool, day, **values):
    """An audit event on a day of January 2024 (at noon UTC)."""
    user = user_named(dbsession, username) if username != "system" else None
    row = AuditEvent(
        at=datetime(2024, 1, day, 12, tzinfo=UTC),
        user_id=user.id if user else None,
        username=username,
        action=action,
        target_type=target_type,
        target_id=target_id,
        pool_id=pool.id if pool is not None else None,
        **values,
    )
    dbsession.add(row)
    dbsession.flush()
    return row


@pytest.fixture
def events(tree, dbsession):
    """Six events of January 2024, one a day, in fedora, redhat and no pool."""
    return {
        "create": event(
            dbsession,
            "admin",
            "pool.create",
            "pool",
            tree["fedora"].id,
            tree["fedora"],
            1,
            after={"name": "fedora"},
            remote_addr="10.0.0.1",
        ),
        "rename": event(
            dbsession,
            "admin",
            "pool.rename",
            "pool",
            tree["redhat"].id,
            tree["redhat"],
            2,
            before={"name": "rh"},
            after={"name": "redhat"},
        ),
        "move": event(dbsession, "bob", "host.move", "host", 7, tree["fedora-vms"], 3),
        "token": event(dbsession, "alice", "token.create", "token", 3, None, 4),
        "register": event(dbsession, "system", "host.register", "host", 8, tree["default"], 5),
        "pooled": event(dbsession, "admin", "pooling.x", "pool", 1, tree["redhat"], 6),
    }


def actions(page) -> list[str]:
    """The action column of the audit table, top to bottom."""
    table = by_testid(page, "audit-table")
    if table is None:
        return []
    return [
        row.find_all("td")[2].get_text(strip=True)
        for row in table.find_all(attrs={"data-testid": "audit-row"})
    ]


def api_actions(app, params) -> list[str]:
    return [item["action"] for item in app.get("/api/v1/audit", params).json["items"]]


# -- who may come -------------------------------------------------------------------------------


def test_anonymous_is_asked_to_log_in(testapp, events):
    assert location_path(testapp.get("/audit", status=303)) == "/login?next=%2Faudit"
    assert_api_error(testapp.get("/api/v1/audit", status=401), 401, "unauthorized")


def test_an_outsider_is_sent_to_the_access_page(testapp, events):
    login(testapp, "eve")
    assert location_path(testapp.get("/audit", status=303)) == "/access"
    assert_api_error(testapp.get("/api/v1/audit", status=403), 403, "no_access")


def test_the_super_admin_reads_every_event_newest_first(admin_app, events, dbsession):
    page = admin_app.get("/audit", JANUARY)
    expected = [
        "pooling.x",
        "host.register",
        "token.create",
        "host.move",
        "pool.rename",
        "pool.create",
    ]
    assert actions(page) == expected
    assert text_of(page, "total") == "6 events"
    assert api_actions(admin_app, JANUARY) == expected
    everything = dbsession.scalar(select(func.count()).select_from(AuditEvent))
    assert admin_app.get("/api/v1/audit").json["total"] == everything > 6


def test_a_member_without_grants_reads_only_their_own_events(alice_app, events):
    page = alice_app.get("/audit", JANUARY)
    assert actions(page) == ["token.create"]
    everything = alice_app.get("/api/v1/audit").json["items"]
    assert {item["user"] for item in everything} == {"alice"}  # e.g. her login, her token
    assert "token.create" in {item["action"] for item in everything}


def test_a_member_reads_the_events_of_the_pools_they_may_view(alice_app, tree, dbsession, events):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    assert api_actions(alice_app, JANUARY) == ["token.create", "host.move", "pool.create"]
    bob = alice_app.get("/audit", {**JANUARY, "user": "bob"})
    assert actions(bob) == ["host.move"]


def test_someone_elses_events_in_pools_one_cannot_view_stay_hidden(
    testapp, tree, dbsession, events
):
    grant(dbsession, "bob", tree["redhat"], "admin")
    login(testapp, "bob")
    assert api_actions(testapp, JANUARY) == ["pooling.x", "host.move", "pool.rename"]
    assert api_actions(testapp, {**JANUARY, "user": "alice"}) == []


# -- what a row shows ---------------------------------------------------------------------------


def test_a_row_shows_who_what_when_target_where_and_the_change(admin_app, tree, events):
    page = admin_app.get("/audit", {**JANUARY, "action": "pool.rename"})
    [row] = by_testid(page, "audit-table").find_all(attrs={"data-testid": "audit-row"})
    cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
    assert cells == [
        "2024-01-02 12:00:00",
        "admin",
        "pool.rename",
        f"pool {tree['redhat'].id}",
        "redhat",
        "—",
        '{"name": "rh"}',
        '{"name": "redhat"}',
    ]
    assert row.find("a")["href"] == f"http://example.com/pools/{tree['redhat'].id}"
    created = admin_app.get("/audit", {**JANUARY, "action": "pool.create"})
    assert "10.0.0.1" in text_of(created, "audit-table")


def test_before_and_after_are_escaped(admin_app, tree, dbsession):
    event(
        dbsession,
        "admin",
        "pool.rename",
        "pool",
        1,
        tree["fedora"],
        9,
        after={"name": "<script>alert(1)</script>"},
    )
    page = admin_app.get("/audit", JANUARY)
    assert "<script>alert(1)" not in page.text
    assert "alert(1)" in text_of(page, "audit-table")


def test_the_api_shows_every_field(admin_app, tree, events):
    data = admin_app.get("/api/v1/audit", {**JANUARY, "action": "pool.create"}).json
    assert set(data) == {"items", "next", "total"}
    [item] = data["items"]
    assert set(item) == EVENT_KEYS
    assert item == {
        "id": events["create"].id,
        "at": "2024-01-01T12:00:00+00:00",
        "user": "admin",
        "user_id": events["create"].user_id,
        "action": "pool.create",
        "target_type": "pool",
        "target_id": tree["fedora"].id,
        "pool": tree["fedora"].id,
        "pool_name": "fedora",
        "remote_addr": "10.0.0.1",
        "before": None,
        "after": {"name": "fedora"},
    }


def test_real_actions_are_logged(alice_app, dbsession):
    alice_app.post_json(
        "/api/v1/tokens",
        {"name": "logged"},
        headers={
            "X-CSRF-Token": alice_app.get("/tokens").html.find("input", {"name": "csrf_token"})[
                "value"
            ]
        },
        status=201,
    )
    [item] = alice_app.get("/api/v1/audit", {"action": "token."}).json["items"]
    assert (item["user"], item["action"], item["after"]["name"]) == (
        "alice",
        "token.create",
        "logged",
    )
    assert item["remote_addr"] == ""  # WebTest sends no REMOTE_ADDR


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"user": "admin"}, ["pooling.x", "pool.rename", "pool.create"]),
        ({"user": "system"}, ["host.register"]),
        ({"user": "nobody"}, []),
        ({"action": "pool."}, ["pool.rename", "pool.create"]),
        ({"action": "pool"}, ["pooling.x", "pool.rename", "pool.create"]),
        ({"action": "host.move"}, ["host.move"]),
        ({"action": "%"}, []),
        ({"action": "pool_"}, []),
        ({"target_type": "host"}, ["host.register", "host.move"]),
        ({"target_type": "token"}, ["token.create"]),
        ({"from": "2024-01-03", "to": "2024-01-04"}, ["token.create", "host.move"]),
        ({"from": "2024-01-06", "to": "2024-01-06"}, ["pooling.x"]),
        ({"user": "admin", "action": "pool.", "to": "2024-01-01"}, ["pool.create"]),
    ],
)
def test_filters(admin_app, events, params, expected):
    params = {**JANUARY, **params}
    assert actions(admin_app.get("/audit", params)) == expected
    assert api_actions(admin_app, params) == expected


def test_dates_alone_bound_one_side(admin_app, events):
    assert api_actions(admin_app, {"to": "2024-01-01"}) == ["pool.create"]
    later = admin_app.get("/api/v1/audit", {"from": "2024-01-06"}).json["items"]
    assert later[-1]["action"] == "pooling.x"
    assert min(item["at"] for item in later) == "2024-01-06T12:00:00+00:00"


def test_the_filter_form_keeps_its_values(admin_app, events):
    page = admin_app.get(
        "/audit",
        {
            "user": "bob",
            "action": "host.",
            "target_type": "host",
            "from": "2024-01-02",
            "to": "2024-01-09",
        },
    )
    form = next(f for f in page.forms.values() if f.action == "http://example.com/audit")
    assert [form[k].value for k in ("user", "action", "target_type", "from", "to")] == [
        "bob",
        "host.",
        "host",
        "2024-01-02",
        "2024-01-09",
    ]
    options = [o[0] for o in form["target_type"].options]
    assert options[0] == "" and options[1:] == sorted(options[1:])
    assert {"host", "pool", "token"} <= set(options)


def test_no_match_says_so(admin_app, events):
    page = admin_app.get("/audit", {**JANUARY, "user": "nobody"})
    assert "No event matches these filters." in text_of(page, "empty-state")


# -- pages --------------------------------------------------------------------------------------


def test_pages_go_from_newest_to_oldest_and_keep_the_filters(admin_app, tree, dbsession):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(25):
        dbsession.add(
            AuditEvent(
                at=start + timedelta(hours=n),
                username="admin",
                action=f"pool.x{n:02d}",
                target_type="pool",
            )
        )
    dbsession.flush()
    page = admin_app.get("/audit", {"action": "pool.x"})
    seen = actions(page)
    assert seen[0] == "pool.x24"
    assert "Page 1 of 3" in text_of(page, "pagination")
    assert by_testid(page, "next")["href"] == "http://example.com/audit?action=pool.x&page=2"
    for _ in (2, 3):
        page = admin_app.get(by_testid(page, "next")["href"])
        seen += actions(page)
    assert by_testid(page, "next") is None
    assert seen == [f"pool.x{n:02d}" for n in reversed(range(25))]
    data = admin_app.get("/api/v1/audit", {"action": "pool.x", "page": "3"}).json
    assert data["total"] == 25 and data["next"] is None and len(data["items"]) == 5
    past = admin_app.get("/audit", {"action": "pool.x", "page": "4"})
    assert "No event on this page: there are 3 pages." in text_of(past, "empty-state")


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"from": "2024-13-01"}, "'from' must be a date like 2024-05-31, not '2024-13-01'"),
        ({"from": "yesterday"}, "'from' must be a date like 2024-05-31"),
        ({"to": "2024-02-30"}, "'to' must be a date like 2024-05-31"),
        ({"to": "20240101"}, "'to' must be a date like 2024-05-31"),
        ({"to": "2024-1-1"}, "'to' must be a date like 2024-05-31"),
        ({"from": "0001-01-01"}, "'from' must be a date from 1970-01-01 to 9998-12-31"),
        ({"to": "9999-12-31"}, "'to' must be a date from 1970-01-01 to 9998-12-31"),
        ({"from": "2024-02-01", "to": "2024-01-01"}, "the 'from' date is after the 'to' date"),
        ({"target_type": "Pool!"}, "a target type is at most 16 lowercase letters"),
        ({"target_type": "p" * 17}, "a target type is at most 16 lowercase letters"),
        ({"user": "u" * 65}, "a user name has at most 64 characters"),
        ({"action": "a" * 65}, "an action has at most 64 characters"),
        ({"page": "0"}, "page must be between 1 and 100000"),
        ({"page": "two"}, "page must be between 1 and 100000"),
    ],
)
def test_bad_parameters_say_why(admin_app, events, params, message):
    page = admin_app.get("/audit", params, status=400)
    assert message in text_of(page, "error-message")
    answer = admin_app.get("/api/v1/audit", params, status=400)
    assert_api_error(answer, 400, "invalid", message)
