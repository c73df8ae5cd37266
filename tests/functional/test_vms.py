"""The VM list: ``/vms`` and ``/api/v1/vms`` (sort, filter, pages, who sees what)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import event

from ..conftest import login
from ..factories import HostFactory, PoolFactory, VmFactory
from .conftest import assert_api_error, by_testid, grant, location_path, text_of

STATES = ["running", "stopped", "paused", "failed", "pending"]


@pytest.fixture
def fleet(tree):
    """25 VMs: 15 in fedora-vms (on two hosts or none), 10 in redhat-vms (one host or none);
    vCPUs and memory differ so each sort is visible."""
    fedora_hosts = [
        HostFactory(hostname="fa.example.org", pool=tree["fedora"]),
        HostFactory(hostname="fb.example.org", pool=tree["fedora"]),
        None,
    ]
    redhat_hosts = [HostFactory(hostname="ra.example.org", pool=tree["redhat"]), None]
    return [
        VmFactory(
            name=f"vm{n:02d}",
            pool=tree["fedora-vms"] if n < 15 else tree["redhat-vms"],
            host=fedora_hosts[n % 3] if n < 15 else redhat_hosts[n % 2],
            state=STATES[n % 5],
            vcpus=(n * 7) % 25 + 1,
            memory_mib=((n * 11) % 25 + 1) * 512,
        )
        for n in range(25)
    ]


def vm_rows(page) -> list[str]:
    """The VM names in the list's table, top to bottom."""
    table = by_testid(page, "vm-table")
    if table is None:
        return []
    return [
        row.find("td").get_text(strip=True)
        for row in table.find_all(attrs={"data-testid": "vm-row"})
    ]


def names(vms) -> list[str]:
    return [v.name for v in vms]


# -- who may come -------------------------------------------------------------------------------


def test_anonymous_is_asked_to_log_in(testapp, fleet):
    assert location_path(testapp.get("/vms", {"q": "vm"}, status=303)) == (
        "/login?next=%2Fvms%3Fq%3Dvm"
    )
    assert_api_error(testapp.get("/api/v1/vms", status=401), 401, "unauthorized")


def test_an_outsider_is_sent_to_the_access_page(testapp, fleet):
    login(testapp, "eve")
    assert location_path(testapp.get("/vms", status=303)) == "/access"
    assert_api_error(testapp.get("/api/v1/vms", status=403), 403, "no_access")


def test_a_member_without_grants_sees_no_vm(alice_app, fleet):
    page = alice_app.get("/vms")
    assert vm_rows(page) == []
    assert text_of(page, "total") == "0 VMs"
    assert "No VM is in a pool you may view." in text_of(page, "empty-state")
    assert alice_app.get("/api/v1/vms").json == {"items": [], "next": None, "total": 0}


def test_a_member_sees_the_vms_of_the_pools_granted(alice_app, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["redhat-vms"], "user")
    page = alice_app.get("/vms")
    assert vm_rows(page) == [f"vm{n}" for n in range(15, 25)]
    assert alice_app.get("/api/v1/vms").json["total"] == 10
    # the filter menu offers only the pools she may view
    options = [o["value"] for o in page.html.find("select", {"name": "pool"}).find_all("option")]
    assert options == ["", str(tree["redhat-vms"].id)]


def test_a_pool_filter_the_member_cannot_see_is_404(alice_app, tree, dbsession, fleet):
    grant(dbsession, "alice", tree["redhat-vms"], "user")
    page = alice_app.get("/vms", {"pool": str(tree["fedora-vms"].id)}, status=404)
    assert "There is nothing here" in text_of(page, "error-message")
    answer = alice_app.get("/api/v1/vms", {"pool": str(tree["redhat"].id)}, status=404)
    assert_api_error(answer, 404, "not_found")


# -- the page -----------------------------------------------------------------------------------


def test_the_first_page_is_sorted_by_name(admin_app, tree, fleet):
    page = admin_app.get("/vms")
    assert vm_rows(page) == [f"vm{n:02d}" for n in range(10)]
    assert text_of(page, "total") == "25 VMs"
    assert "Page 1 of 3" in text_of(page, "pagination")
    row = by_testid(page, "vm-table").find(attrs={"data-testid": "vm-row"})
    cells = [td.get_text(strip=True) for td in row.find_all("td")[:6]]
    assert cells == ["vm00", "running", "1", "0.5 GiB", "fa.example.org", "fedora-vms"]
    links = [a["href"] for a in row.find_all("a")]
    assert links == [
        f"http://example.com/vms/{fleet[0].id}",
        f"http://example.com/hosts/{fleet[0].host_id}",
        f"http://example.com/pools/{tree['fedora-vms'].id}",
    ]


def next_link(url):
    """A next link's path and parameters but its cursor (which it must carry)."""
    link = urlsplit(url)
    params = dict(parse_qsl(link.query))
    assert link.netloc == "example.com" and params.pop("after")
    return link.path, params


def test_pages_follow_next_and_keep_filters_and_sort(admin_app, fleet):
    page = admin_app.get("/vms", {"q": "vm", "sort": "-vcpus"})
    seen = vm_rows(page)
    link = urlsplit(by_testid(page, "next")["href"])
    assert link.path == "/vms"
    assert [k for k, _ in parse_qsl(link.query)] == ["q", "sort", "after", "page"]
    assert {k: v for k, v in parse_qsl(link.query) if k != "after"} == {
        "q": "vm",
        "sort": "-vcpus",
        "page": "2",
    }
    for _ in (2, 3):
        page = admin_app.get(by_testid(page, "next")["href"])
        seen += vm_rows(page)
    assert by_testid(page, "next") is None
    assert sorted(seen) == sorted(names(fleet))


def test_a_page_past_the_end_says_so(admin_app, fleet):
    page = admin_app.get("/vms", {"page": "4"})
    assert vm_rows(page) == []
    assert "No VM on this page: there are 3 pages." in text_of(page, "empty-state")


def host_key(vm):
    return vm.host.hostname if vm.host else None


SORTS = {
    "name": lambda v: v.name,
    "state": lambda v: v.state,
    "vcpus": lambda v: v.vcpus,
    "memory": lambda v: v.memory_mib,
    "pool": lambda v: v.pool.name,
    "host": host_key,
}


def sorted_fleet(fleet, column, descending):
    """The fleet in a sort's order: ties keep a stable order (by id) whatever the
    direction; VMs on no host come last."""
    ordered = sorted(fleet, key=lambda v: v.id)
    placed = [v for v in ordered if SORTS[column](v) is not None]
    placed.sort(key=SORTS[column], reverse=descending)
    return placed + [v for v in ordered if SORTS[column](v) is None]


@pytest.mark.parametrize("column", list(SORTS))
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
def test_next_links_walk_every_sort_by_cursor(admin_app, fleet, column, descending):
    """Each page's next link carries the cursor of its last row: following them gives
    every VM once, in the sort's order, across ties and the VMs on no host."""
    ordered = names(sorted_fleet(fleet, column, descending))
    sort = f"-{column}" if descending else column
    data = admin_app.get("/api/v1/vms", {"sort": sort}).json
    api, numbers = [item["name"] for item in data["items"]], []
    while data["next"]:
        numbers.append(dict(parse_qsl(urlsplit(data["next"]).query))["page"])
        data = admin_app.get(data["next"]).json
        api += [item["name"] for item in data["items"]]
    assert api == ordered and numbers == ["2", "3"]
    page = admin_app.get("/vms", {"sort": sort})
    shown = vm_rows(page)
    while by_testid(page, "next") is not None:
        page = admin_app.get(by_testid(page, "next")["href"])
        shown += vm_rows(page)
    assert shown == ordered
    assert text_of(page, "page-number") == "Page 3 of 3"


def cursor_of(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_that_is_not_one_is_a_clear_400(admin_app, fleet):
    cursor = dict(parse_qsl(urlsplit(admin_app.get("/api/v1/vms").json["next"]).query))["after"]
    refused = "after must be the cursor of a 'next' link of this list"
    for after, message in [
        ("nonsense", refused),
        ("x" * 5000, refused),
        (cursor_of([]), refused),
        (cursor_of(["vcpus", "two", 1]), refused),  # a number sort with a text value
        (cursor_of(["name", None, 1]), refused),  # only the host sort has no value
        (cursor_of(["name", "vm", 0]), refused),
        (cursor_of(["name", "vm", True]), refused),
        (cursor_of(["size", 1, 1]), refused),
        (cursor, "this cursor belongs to the list sorted by 'name', not '-name'"),
    ]:
        sort = "-name" if after == cursor else "name"
        answer = admin_app.get("/api/v1/vms", {"after": after, "sort": sort}, status=400)
        assert_api_error(answer, 400, "invalid", message)
        assert answer.json["error"]["details"]["field"] == "after"
        page = admin_app.get("/vms", {"after": after, "sort": sort}, status=400)
        assert message in page.html.get_text()


@pytest.mark.parametrize("column", list(SORTS))
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
def test_sorts_by_every_column(admin_app, fleet, column, descending):
    ordered = sorted_fleet(fleet, column, descending)
    sort = f"-{column}" if descending else column
    shown = []
    for number in (1, 2, 3):
        shown += vm_rows(admin_app.get("/vms", {"sort": sort, "page": str(number)}))
    assert shown == names(ordered)
    api = []
    for number in (1, 2, 3):
        data = admin_app.get("/api/v1/vms", {"sort": sort, "page": str(number)}).json
        api += [item["name"] for item in data["items"]]
    assert api == names(ordered)


def test_sort_headers_toggle_the_direction(admin_app, fleet):
    page = admin_app.get("/vms")
    assert by_testid(page, "sort-name").get_text(strip=True) == "Name ▲"
    assert by_testid(page, "sort-memory")["href"] == "http://example.com/vms?sort=memory"
    page = admin_app.get(by_testid(page, "sort-memory")["href"])
    assert by_testid(page, "sort-memory")["href"] == "http://example.com/vms?sort=-memory"
    page = admin_app.get(by_testid(page, "sort-memory")["href"])
    assert by_testid(page, "sort-memory").get_text(strip=True) == "Memory ▼"
    assert vm_rows(page)[0] == max(fleet, key=lambda v: v.memory_mib).name


def test_filter_by_name_ignores_case(admin_app, tree, fleet):
    VmFactory(name="Web-Frontend", pool=tree["fedora-vms"])
    page = admin_app.get("/vms", {"q": "web-FRONT"})
    assert vm_rows(page) == ["Web-Frontend"]
    assert vm_rows(admin_app.get("/vms", {"q": "VM1"})) == [f"vm{n}" for n in range(10, 20)]


def test_search_wildcards_are_taken_literally(admin_app, tree, fleet):
    VmFactory(name="a_b", pool=tree["fedora-vms"])
    VmFactory(name="axb", pool=tree["fedora-vms"])
    assert vm_rows(admin_app.get("/vms", {"q": "a_b"})) == ["a_b"]
    assert vm_rows(admin_app.get("/vms", {"q": "%"})) == []


def test_filter_by_state(admin_app, fleet):
    page = admin_app.get("/vms", {"state": "paused"})
    assert vm_rows(page) == [f"vm{n:02d}" for n in range(2, 25, 5)]
    selected = page.html.find("select", attrs={"name": "state"}).find("option", selected=True)
    assert selected["value"] == "paused"


def test_filter_by_pool_includes_sub_pools(admin_app, tree, fleet):
    page = admin_app.get("/vms", {"pool": str(tree["redhat"].id)})
    assert vm_rows(page) == [f"vm{n}" for n in range(15, 25)]
    selected = page.html.find("select", attrs={"name": "pool"}).find("option", selected=True)
    assert selected["value"] == str(tree["redhat"].id)
    assert text_of(page, "total") == "10 VMs"


def test_filters_combine(admin_app, tree, fleet):
    page = admin_app.get("/vms", {"q": "vm1", "state": "running", "pool": str(tree["fedora"].id)})
    assert vm_rows(page) == ["vm10"]


def test_no_match_says_so(admin_app, tree, fleet):
    page = admin_app.get("/vms", {"pool": str(tree["default"].id)})
    assert "No VM matches these filters." in text_of(page, "empty-state")


def test_search_text_is_escaped(admin_app, fleet):
    page = admin_app.get("/vms", {"q": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"sort": "uuid"}, 400, "cannot sort VMs by 'uuid'"),
        ({"sort": ""}, 400, "cannot sort VMs by ''"),
        ({"sort": "--name"}, 400, "cannot sort VMs by '-name'"),
        ({"state": "exploded"}, 400, "unknown VM state 'exploded'"),
        ({"pool": "abc"}, 400, "pool must be a pool id"),
        ({"pool": "-1"}, 400, "pool must be a pool id"),
        ({"pool": "9" * 30}, 400, "pool must be a pool id"),
        ({"pool": "999999"}, 404, "There is nothing here"),
        ({"page": "0"}, 400, "page must be between 1 and 100000"),
        ({"page": "x"}, 400, "page must be between 1 and 100000"),
        ({"q": "q" * 65}, 400, "a search has at most 64 characters"),
    ],
)
def test_bad_parameters_say_why(admin_app, fleet, params, status, message):
    page = admin_app.get("/vms", params, status=status)
    assert message in text_of(page, "error-message")
    answer = admin_app.get("/api/v1/vms", params, status=status)
    assert_api_error(answer, status, "invalid" if status == 400 else "not_found")
    if status == 400:
        assert message in answer.json["error"]["message"]


# -- the API ------------------------------------------------------------------------------------


def test_the_api_lists_vms_with_their_host_and_pool(admin_app, tree, fleet):
    data = admin_app.get("/api/v1/vms").json
    assert set(data) == {"items", "next", "total"}
    assert data["total"] == 25
    assert next_link(data["next"]) == ("/api/v1/vms", {"page": "2"})
    first = data["items"][0]
    vm = fleet[0]
    assert first == {
        "id": vm.id,
        "uuid": vm.uuid,
        "name": "vm00",
        "state": "running",
        "state_reason": "",
        "host": vm.host_id,
        "hostname": "fa.example.org",
        "pool": tree["fedora-vms"].id,
        "pool_name": "fedora-vms",
        "vcpus": 1,
        "memory_mib": 512,
        "created_at": first["created_at"],
        "managed": True,
        "allowed_actions": ["shutdown", "poweroff", "suspend", "save", "reboot", "migrate"],
    }
    no_host = next(i for i in data["items"] if i["name"] == "vm02")
    assert (no_host["host"], no_host["hostname"]) == (None, None)


def test_the_api_keeps_filters_in_next(admin_app, tree, fleet):
    data = admin_app.get("/api/v1/vms", {"pool": str(tree["fedora"].id)}).json
    assert data["total"] == 15
    assert next_link(data["next"]) == (
        "/api/v1/vms",
        {"pool": str(tree["fedora"].id), "page": "2"},
    )
    second = admin_app.get(data["next"]).json
    assert len(second["items"]) == 5 and second["next"] is None


# -- no query per row ---------------------------------------------------------------------------


#: tables the security policy reads to know who is asking (how often depends on the test's
#: shared session, not on the list)
IDENTITY_TABLES = ("login_sessions", "users", "group_memberships", "role_grants")


def statements_for(app, dbsession, url) -> list[str]:
    """The SQL statements one request runs to build its answer (not to load the identity)."""
    seen: list[str] = []
    connection = dbsession.connection()

    def keep(conn, cursor, statement, *args):
        if statement.startswith("SELECT") and not any(
            f"FROM {table}" in statement for table in IDENTITY_TABLES
        ):
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", keep)
    try:
        app.get(url)
    finally:
        event.remove(connection, "before_cursor_execute", keep)
    return seen


@pytest.mark.parametrize("url", ["/vms", "/api/v1/vms"])
def test_a_page_runs_as_many_queries_for_ten_vms_as_for_one(admin_app, tree, dbsession, url):
    def one_vm_per_pool(numbers):
        for n in numbers:
            hardware = PoolFactory(name=f"hw{n}", parent=tree["hardware"])
            vms = PoolFactory(name=f"vms{n}", kind="vm", parent=hardware)
            VmFactory(pool=vms, host=HostFactory(pool=hardware))

    one_vm_per_pool(range(1))
    few = statements_for(admin_app, dbsession, url)
    one_vm_per_pool(range(1, 10))
    many = statements_for(admin_app, dbsession, url)
    assert admin_app.get("/api/v1/vms").json["total"] == 10
    assert len(many) == len(few) <= 6, many
