"""Smart pools: each user's bookmarks of hosts, VMs and pools, and the shortcut menu."""

from __future__ import annotations

import pytest
import webtest
from sqlalchemy import delete, func, select

from fedoracloud.models import AuditEvent, Pool, PoolKind, RoleGrant, SmartPoolItem
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.smart_pools import SmartPoolService

from ..conftest import csrf_token, login
from ..factories import HostFactory, VmFactory
from .conftest import (
    after_redirect,
    by_testid,
    flashes,
    grant,
    location_path,
    snapshot,
    text_of,
    user_named,
)

#: the forms of one smart pool, under ``/smart/{id}/``
ACTIONS = ["rename", "delete", "items", "items/remove"]


def smart_pool(dbsession, username: str, name: str) -> Pool:
    """A smart pool of ``username``, made through the service."""
    return SmartPoolService(ServiceContext.for_session(dbsession)).create(
        user_named(dbsession, username), name
    )


def bookmark(dbsession, pool: Pool, kind: str, item_id: int) -> None:
    SmartPoolService(ServiceContext.for_session(dbsession)).add(pool, kind, item_id)


def items_of(dbsession, pool: Pool) -> list[tuple[str, int]]:
    """What a smart pool holds, in the database (visible or not)."""
    dbsession.expire_all()
    rows = dbsession.execute(
        select(SmartPoolItem.item_kind, SmartPoolItem.item_id)
        .where(SmartPoolItem.pool_id == pool.id)
        .order_by(SmartPoolItem.id)
    )
    return [tuple(row) for row in rows]


def smart_names(dbsession, username: str) -> list[str]:
    dbsession.expire_all()
    user = user_named(dbsession, username)
    return list(
        dbsession.scalars(
            select(Pool.name)
            .where(Pool.kind == PoolKind.SMART.value, Pool.owner_id == user.id)
            .order_by(Pool.name)
        )
    )


def state(dbsession) -> tuple[list, int, int]:
    """Pools, bookmarks and audit events: equal before and after means nothing was written."""
    return (
        snapshot(dbsession),
        dbsession.scalar(select(func.count()).select_from(SmartPoolItem)),
        dbsession.scalar(select(func.count()).select_from(AuditEvent)),
    )


def menu(page: webtest.TestResponse) -> list[str]:
    """The smart pool shortcuts at the bottom left."""
    return [a.get_text(strip=True) for a in by_testid(page, "smart-pool-menu").find_all("a")][1:]


def shown(page: webtest.TestResponse) -> list[str]:
    """The first cell of every bookmark row of a smart pool page."""
    return [
        row.find("td").get_text(strip=True)
        for row in page.html.find_all(attrs={"data-testid": "item-row"})
    ]


def post(app: webtest.TestApp, url: str, status: int | None = None, **fields: str):
    return app.post(url, {"csrf_token": csrf_token(app), **fields}, status=status)


@pytest.fixture
def things(tree):
    """A host and a VM in fedora, and the same in redhat."""
    fedora_host = HostFactory(hostname="f1.example.org", pool=tree["fedora"])
    redhat_host = HostFactory(hostname="r1.example.org", pool=tree["redhat"])
    return {
        "fedora_host": fedora_host,
        "fedora_vm": VmFactory(name="f-vm", pool=tree["fedora-vms"], host=fedora_host),
        "redhat_host": redhat_host,
        "redhat_vm": VmFactory(name="r-vm", pool=tree["redhat-vms"], host=redhat_host),
    }


# -- who may come -------------------------------------------------------------------------------


def test_anonymous_is_asked_to_log_in(testapp, tree, dbsession):
    mine = smart_pool(dbsession, "alice", "mine")
    assert location_path(testapp.get("/smart", status=303)) == "/login?next=%2Fsmart"
    assert location_path(testapp.get(f"/smart/{mine.id}", status=303)).startswith("/login")
    before = state(dbsession)
    for url in ("/smart", "/smart/bookmark", *(f"/smart/{mine.id}/{a}" for a in ACTIONS)):
        response = testapp.post(url, {"name": "x", "kind": "pool", "item_id": "1"}, status=303)
        assert location_path(response) == "/login"
    assert state(dbsession) == before


def test_an_outsider_is_sent_to_the_access_page(testapp, tree, dbsession):
    mine = smart_pool(dbsession, "eve", "mine")
    login(testapp, "eve")
    assert location_path(testapp.get("/smart", status=303)) == "/access"
    assert location_path(testapp.get(f"/smart/{mine.id}", status=303)) == "/access"
    before = state(dbsession)
    token = testapp.get("/access").html.find("input", {"name": "csrf_token"})["value"]
    response = testapp.post("/smart", {"name": "x", "csrf_token": token}, status=303)
    assert location_path(response) == "/access"
    assert state(dbsession) == before


# -- the list and creating ----------------------------------------------------------------------


def test_a_new_user_has_none(alice_app):
    page = alice_app.get("/smart")
    assert by_testid(page, "smart-pool-table") is None
    assert "You have no smart pools yet." in text_of(page, "empty-state")
    assert menu(page) == []
    assert "No bookmarks yet" in text_of(page, "smart-pool-menu")


def test_create_through_the_form(alice_app, tree, dbsession):
    form = next(f for f in alice_app.get("/smart").forms.values() if f.action.endswith("/smart"))
    form["name"] = "builders"
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Smart pool builders created."]
    assert text_of(landed, "smart-pool-name") == "builders smart pool"
    assert "Nothing here yet" in text_of(landed, "empty-state")
    assert menu(landed) == ["builders"]
    pool = next(p for p in tree["users"].children if p.name == "alice").children[0]
    assert (pool.name, pool.kind, pool.owner_id) == ("builders", "smart", pool.parent.owner_id)
    assert landed.request.path == f"/smart/{pool.id}"
    page = alice_app.get("/smart")
    assert [
        r.find("a").get_text() for r in page.html.find_all(attrs={"data-testid": "smart-pool-row"})
    ] == ["builders"]


def test_the_menu_lists_only_my_smart_pools_by_name(alice_app, dbsession):
    for name in ("zeta", "alpha"):
        smart_pool(dbsession, "alice", name)
    smart_pool(dbsession, "bob", "bobs")
    assert menu(alice_app.get("/pools")) == ["alpha", "zeta"]
    assert menu(alice_app.get("/smart")) == ["alpha", "zeta"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "a pool needs a name"),
        ("   ", "a pool needs a name"),
        ("n" * 65, "a pool name has at most 64 characters"),
        ("two words", "only letters, digits"),
        ("-dash", "starts with a letter or digit"),
    ],
)
def test_a_bad_name_is_refused_and_writes_nothing(alice_app, dbsession, name, message):
    before = state(dbsession)
    page = post(alice_app, "/smart", status=400, name=name)
    assert message in text_of(page, "form-error")
    assert state(dbsession) == before


def test_a_duplicate_name_is_refused(alice_app, dbsession):
    smart_pool(dbsession, "alice", "mine")
    before = state(dbsession)
    page = post(alice_app, "/smart", status=409, name="mine")
    assert text_of(page, "form-error") == "you already have a smart pool named 'mine'"
    assert page.html.find("input", {"id": "smart-name"})["value"] == "mine"
    assert state(dbsession) == before


def test_someone_else_may_use_the_same_name(alice_app, dbsession):
    smart_pool(dbsession, "bob", "mine")
    after_redirect(post(alice_app, "/smart", name="mine"))
    assert smart_names(dbsession, "alice") == smart_names(dbsession, "bob") == ["mine"]


# -- someone else's smart pool --------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_someone_elses_smart_pool_is_404_for_everyone(testapp, tree, dbsession, things, who):
    bobs = smart_pool(dbsession, "bob", "bobs")
    bookmark(dbsession, bobs, "host", things["fedora_host"].id)
    login(testapp, who)
    page = testapp.get(f"/smart/{bobs.id}", status=404)
    assert "There is nothing here" in text_of(page, "error-message")
    before = state(dbsession)
    for action in ACTIONS:
        fields = {"name": "mine", "kind": "host", "item_id": str(things["fedora_host"].id)}
        post(testapp, f"/smart/{bobs.id}/{action}", status=404, **fields)
    post(
        testapp,
        "/smart/bookmark",
        status=404,
        smart_pool=str(bobs.id),
        kind="pool",
        item_id=str(tree["fedora"].id),
    )
    assert state(dbsession) == before


@pytest.mark.parametrize("smart_id", ["999999", "abc", "-1", "9" * 30, "{fedora}"])
def test_unknown_or_ordinary_pool_ids_are_404(admin_app, tree, smart_id):
    smart_id = smart_id.format(fedora=tree["fedora"].id)
    admin_app.get(f"/smart/{smart_id}", status=404)
    post(admin_app, f"/smart/{smart_id}/rename", status=404, name="x")


# -- renaming and deleting ------------------------------------------------------------------------


def test_rename_through_the_form(alice_app, dbsession):
    mine = smart_pool(dbsession, "alice", "mine")
    page = alice_app.get(f"/smart/{mine.id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/rename"))
    assert form["name"].value == "mine"
    form["name"] = "ours"
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Smart pool renamed to ours."]
    assert menu(landed) == ["ours"]
    assert smart_names(dbsession, "alice") == ["ours"]


@pytest.mark.parametrize(
    "name, status, message",
    [
        ("", 400, "a pool needs a name"),
        ("n" * 65, 400, "a pool name has at most 64 characters"),
        ("a/b", 400, "only letters, digits"),
        ("other", 409, "you already have a smart pool named 'other'"),
    ],
)
def test_a_bad_rename_is_refused_and_writes_nothing(alice_app, dbsession, name, status, message):
    mine = smart_pool(dbsession, "alice", "mine")
    smart_pool(dbsession, "alice", "other")
    before = state(dbsession)
    page = post(alice_app, f"/smart/{mine.id}/rename", status=status, name=name)
    assert message in text_of(page, "form-error")
    assert text_of(page, "smart-pool-name") == "mine smart pool"
    assert state(dbsession) == before


def test_delete_removes_the_bookmarks_but_not_what_they_point_at(admin_app, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    bookmark(dbsession, mine, "host", things["fedora_host"].id)
    page = admin_app.get(f"/smart/{mine.id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/delete"))
    response = form.submit(status=303)
    assert location_path(response) == "/smart"
    landed = response.follow()
    assert flashes(landed, "success") == ["Smart pool mine deleted."]
    assert menu(landed) == []
    assert smart_names(dbsession, "admin") == []
    assert dbsession.scalar(select(func.count()).select_from(SmartPoolItem)) == 0
    assert admin_app.get(f"/hosts/{things['fedora_host'].id}").status_int == 200
    admin_app.get(f"/smart/{mine.id}", status=404)


# -- bookmarking ----------------------------------------------------------------------------------


def form_by_testid(page: webtest.TestResponse, testid: str) -> webtest.Form:
    """The form with this ``data-testid``."""
    return next(f for f in page.forms.values() if f.html.form.get("data-testid") == testid)


def bookmark_form(page: webtest.TestResponse, kind: str, item_id: int) -> webtest.Form:
    """The "Add to smart pool" form of a host, VM or pool."""
    return form_by_testid(page, f"bookmark-{kind}-{item_id}")


def test_bookmark_a_host_from_its_page_and_come_back(admin_app, dbsession, things):
    first = smart_pool(dbsession, "admin", "a-first")
    mine = smart_pool(dbsession, "admin", "mine")
    host = things["fedora_host"]
    page = admin_app.get(f"/hosts/{host.id}")
    form = bookmark_form(page, "host", host.id)
    assert [o[0] for o in form["smart_pool"].options] == [str(first.id), str(mine.id)]
    form["smart_pool"] = str(mine.id)
    response = form.submit(status=303)
    assert location_path(response) == f"/hosts/{host.id}"
    assert flashes(response.follow(), "success") == ["f1.example.org added to mine."]
    assert items_of(dbsession, mine) == [("host", host.id)]
    smart_page = admin_app.get(f"/smart/{mine.id}")
    assert shown(smart_page) == ["f1.example.org"]


def test_bookmark_a_pool_from_its_page(admin_app, tree, dbsession):
    mine = smart_pool(dbsession, "admin", "mine")
    page = admin_app.get(f"/pools/{tree['redhat'].id}")
    response = bookmark_form(page, "pool", tree["redhat"].id).submit(status=303)
    assert location_path(response) == f"/pools/{tree['redhat'].id}"
    assert items_of(dbsession, mine) == [("pool", tree["redhat"].id)]
    assert shown(admin_app.get(f"/smart/{mine.id}")) == ["redhat"]


def test_bookmark_a_vm_from_the_vm_list(admin_app, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    vm = things["redhat_vm"]
    page = admin_app.get("/vms", {"q": "r-vm"})
    response = bookmark_form(page, "vm", vm.id).submit(status=303)
    assert location_path(response) == "/vms?q=r-vm"
    assert items_of(dbsession, mine) == [("vm", vm.id)]
    smart_page = admin_app.get(f"/smart/{mine.id}")
    assert shown(smart_page) == ["r-vm"]
    assert "r1.example.org" in text_of(smart_page, "smart-vms")


def test_without_smart_pools_the_pages_say_how_to_bookmark(admin_app, tree, things):
    page = admin_app.get(f"/hosts/{things['fedora_host'].id}")
    assert "Make a smart pool to bookmark this host." in text_of(page, "bookmark-hint")
    page = admin_app.get(f"/pools/{tree['fedora'].id}")
    assert "to bookmark this pool" in text_of(page, "bookmark-hint")


def test_add_through_the_smart_pools_own_route(admin_app, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    host = things["redhat_host"]
    response = post(admin_app, f"/smart/{mine.id}/items", kind="host", item_id=str(host.id))
    assert location_path(response) == f"/smart/{mine.id}"
    assert items_of(dbsession, mine) == [("host", host.id)]


def test_the_page_shows_every_kind(admin_app, tree, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    for kind, item_id in [
        ("vm", things["fedora_vm"].id),
        ("host", things["redhat_host"].id),
        ("pool", tree["fedora-vms"].id),
        ("host", things["fedora_host"].id),
    ]:
        bookmark(dbsession, mine, kind, item_id)
    page = admin_app.get(f"/smart/{mine.id}")
    assert shown(page) == ["f1.example.org", "r1.example.org", "f-vm", "fedora-vms"]
    assert by_testid(page, "empty-state") is None


@pytest.mark.parametrize(
    "next_url, lands",
    [
        ("/hosts?page=2", "/hosts?page=2"),
        ("https://evil.example/", "/smart/{id}"),
        ("//evil.example/", "/smart/{id}"),
        ("/\\evil.example", "/smart/{id}"),
        ("", "/smart/{id}"),
        ("/\n/evil.example/", "/smart/{id}"),  # the probe's next=/%0A/evil.example/: a 500
        ("/\t/evil.example/", "/smart/{id}"),  # a browser drops the tab: //evil.example/
        ("/\x7f", "/smart/{id}"),
        ("/caf\u00e9", "/smart/{id}"),
    ],
)
def test_next_stays_on_the_site(admin_app, dbsession, things, next_url, lands):
    mine = smart_pool(dbsession, "admin", "mine")
    response = post(
        admin_app,
        f"/smart/{mine.id}/items",
        kind="host",
        item_id=str(things["fedora_host"].id),
        next=next_url,
    )
    assert location_path(response) == lands.format(id=mine.id)


def test_a_member_bookmarks_only_what_they_may_view(alice_app, tree, dbsession, things):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    mine = smart_pool(dbsession, "alice", "mine")
    for kind, item_id in [
        ("host", things["fedora_host"].id),
        ("vm", things["fedora_vm"].id),
        ("pool", tree["fedora"].id),
    ]:
        post(alice_app, f"/smart/{mine.id}/items", status=303, kind=kind, item_id=str(item_id))
    before = state(dbsession)
    for kind, item_id in [
        ("host", things["redhat_host"].id),
        ("vm", things["redhat_vm"].id),
        ("pool", tree["redhat"].id),
        ("pool", tree["root"].id),
    ]:
        page = post(
            alice_app, f"/smart/{mine.id}/items", status=404, kind=kind, item_id=str(item_id)
        )
        assert "There is nothing here" in text_of(page, "error-message")
        post(
            alice_app,
            "/smart/bookmark",
            status=404,
            smart_pool=str(mine.id),
            kind=kind,
            item_id=str(item_id),
        )
    assert state(dbsession) == before
    assert shown(alice_app.get(f"/smart/{mine.id}")) == ["f1.example.org", "f-vm", "fedora"]


def test_a_member_without_grants_sees_an_empty_smart_pool(alice_app, tree, dbsession, things):
    mine = smart_pool(dbsession, "alice", "mine")
    bookmark(dbsession, mine, "host", things["fedora_host"].id)  # e.g. from a former grant
    page = alice_app.get(f"/smart/{mine.id}")
    assert shown(page) == []
    assert "Nothing here yet" in text_of(page, "empty-state")


def test_bookmarks_that_became_invisible_are_not_shown(alice_app, tree, dbsession, things):
    granted = grant(dbsession, "alice", tree["fedora"], "user")
    mine = smart_pool(dbsession, "alice", "mine")
    post(alice_app, f"/smart/{mine.id}/items", kind="vm", item_id=str(things["fedora_vm"].id))
    post(alice_app, f"/smart/{mine.id}/items", kind="pool", item_id=str(tree["fedora"].id))
    assert shown(alice_app.get(f"/smart/{mine.id}")) == ["f-vm", "fedora"]
    dbsession.execute(delete(RoleGrant).where(RoleGrant.id == granted.id))
    dbsession.flush()
    page = alice_app.get(f"/smart/{mine.id}")
    assert shown(page) == []
    assert "f-vm" not in page.text
    assert len(items_of(dbsession, mine)) == 2  # kept, in case the grant comes back


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"kind": "user", "item_id": "1"}, 400, "kind must be one of host, vm or pool"),
        ({"kind": "", "item_id": "1"}, 400, "kind must be one of host, vm or pool"),
        ({"item_id": "1"}, 400, "kind must be one of host, vm or pool"),
        ({"kind": "host", "item_id": "abc"}, 400, "item_id must be an id"),
        ({"kind": "host", "item_id": ""}, 400, "item_id must be an id"),
        ({"kind": "host", "item_id": "0"}, 400, "item_id must be an id"),
        ({"kind": "host", "item_id": "-4"}, 400, "item_id must be an id"),
        ({"kind": "host", "item_id": "9" * 30}, 400, "item_id must be an id"),
        ({"kind": "host", "item_id": "999999"}, 404, "There is nothing here"),
        ({"kind": "vm", "item_id": "999999"}, 404, "There is nothing here"),
        ({"kind": "pool", "item_id": "999999"}, 404, "There is nothing here"),
    ],
)
def test_bad_bookmarks_are_refused_and_write_nothing(admin_app, dbsession, fields, status, message):
    mine = smart_pool(dbsession, "admin", "mine")
    before = state(dbsession)
    page = post(admin_app, f"/smart/{mine.id}/items", status=status, **fields)
    assert message in text_of(page, "error-message")
    page = post(admin_app, "/smart/bookmark", status=status, smart_pool=str(mine.id), **fields)
    assert message in text_of(page, "error-message")
    assert state(dbsession) == before


@pytest.mark.parametrize("smart", ["", "abc", "0"])
def test_the_bookmark_form_needs_a_smart_pool(admin_app, tree, dbsession, smart):
    before = state(dbsession)
    page = post(
        admin_app,
        "/smart/bookmark",
        status=400,
        smart_pool=smart,
        kind="pool",
        item_id=str(tree["fedora"].id),
    )
    assert "smart_pool must be an id" in text_of(page, "error-message")
    assert state(dbsession) == before


def test_bookmarking_twice_is_a_conflict(admin_app, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    fields = {"kind": "host", "item_id": str(things["fedora_host"].id)}
    post(admin_app, f"/smart/{mine.id}/items", status=303, **fields)
    page = post(admin_app, f"/smart/{mine.id}/items", status=409, **fields)
    assert text_of(page, "error-message") == "this host is already in mine"
    assert len(items_of(dbsession, mine)) == 1


# -- removing -------------------------------------------------------------------------------------


def test_remove_through_the_page(admin_app, dbsession, things):
    mine = smart_pool(dbsession, "admin", "mine")
    bookmark(dbsession, mine, "host", things["fedora_host"].id)
    bookmark(dbsession, mine, "vm", things["fedora_vm"].id)
    page = admin_app.get(f"/smart/{mine.id}")
    form = form_by_testid(page, f"remove-host-{things['fedora_host'].id}")
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Removed from mine."]
    assert shown(landed) == ["f-vm"]
    assert items_of(dbsession, mine) == [("vm", things["fedora_vm"].id)]


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"kind": "vm", "item_id": "{host}"}, 404, "there is no vm"),
        ({"kind": "host", "item_id": "999999"}, 404, "there is no host 999999 in mine"),
        ({"kind": "bogus", "item_id": "{host}"}, 400, "kind must be one of host, vm or pool"),
        ({"kind": "host", "item_id": "x"}, 400, "item_id must be an id"),
    ],
)
def test_bad_removals_are_refused_and_write_nothing(
    admin_app, dbsession, things, fields, status, message
):
    mine = smart_pool(dbsession, "admin", "mine")
    bookmark(dbsession, mine, "host", things["fedora_host"].id)
    before = state(dbsession)
    fields = {k: v.format(host=things["fedora_host"].id) for k, v in fields.items()}
    page = post(admin_app, f"/smart/{mine.id}/items/remove", status=status, **fields)
    assert message in text_of(page, "error-message")
    assert state(dbsession) == before


# -- CSRF on every form ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["", "bookmark", *ACTIONS])
@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_every_form_needs_the_csrf_token(admin_app, tree, dbsession, things, action, token):
    mine = smart_pool(dbsession, "admin", "mine")
    bookmark(dbsession, mine, "host", things["fedora_host"].id)
    url = {"": "/smart", "bookmark": "/smart/bookmark"}.get(action, f"/smart/{mine.id}/{action}")
    fields = {
        "name": "new",
        "kind": "pool",
        "item_id": str(tree["fedora"].id),
        "smart_pool": str(mine.id),
    }
    if token is not None:
        fields["csrf_token"] = token
    before = state(dbsession)
    page = admin_app.post(url, fields, status=400)
    assert "The form was stale" in text_of(page, "error-message")
    assert state(dbsession) == before
