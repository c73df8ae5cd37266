"""The host pages: the list (sort, filter, pages), a host's page, moving a host."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from fedoracloud.models import HostCpu
from fedoracloud.models.meta import utcnow

from ..conftest import csrf_token
from ..factories import HostFactory, HostNicFactory, PoolFactory, VmFactory
from .conftest import (
    after_redirect,
    by_testid,
    each,
    flashes,
    host_rows,
    location_path,
    text_of,
)


@pytest.fixture
def fleet(tree):
    """25 hosts: 15 in fedora, 10 in redhat; every column differs so each sort is visible."""
    start = utcnow() - timedelta(days=30)
    hosts = []
    for n in range(25):
        hosts.append(
            HostFactory(
                hostname=f"node{n:02d}.example.org",
                pool=tree["fedora"] if n < 15 else tree["redhat"],
                state=["available", "maintenance", "pending", "unavailable", "disabled"][n % 5],
                arch="aarch64" if n % 2 else "x86_64",
                cpu_count=(n * 7) % 25 + 1,
                memory_mib=((n * 11) % 25 + 1) * 1024,
                last_seen_at=start + timedelta(hours=(n * 13) % 25),
            )
        )
    return hosts


def filter_form(page):
    return next(f for f in page.forms.values() if f.action == "http://example.com/hosts")


def names(hosts):
    return [h.hostname for h in hosts]


# -- GET /hosts ---------------------------------------------------------------------------------


def test_host_list_first_page_is_sorted_by_hostname(admin_app, fleet):
    page = admin_app.get("/hosts")
    assert host_rows(page) == [f"node{n:02d}.example.org" for n in range(10)]
    assert text_of(page, "total") == "25 hosts"
    assert "Page 1 of 3" in text_of(page, "pagination")
    assert by_testid(page, "previous") is None
    row = by_testid(page, "host-table").find(attrs={"data-testid": "host-row"})
    cells = [td.get_text(strip=True) for td in row.find_all("td")]
    assert cells == [
        "node00.example.org",
        "available",
        "fedora",
        "x86_64",
        "1",
        "1.0 GiB",
        cells[6],
    ]


def test_host_list_pages_follow_next_and_previous(admin_app, fleet):
    page = admin_app.get("/hosts")
    seen = host_rows(page)
    for number in (2, 3):
        link = by_testid(page, "next")
        assert link["href"] == f"http://example.com/hosts?page={number}"
        page = admin_app.get(link["href"])
        assert f"Page {number} of 3" in text_of(page, "pagination")
        seen += host_rows(page)
    assert by_testid(page, "next") is None
    assert len(host_rows(page)) == 5
    assert seen == names(sorted(fleet, key=lambda h: h.hostname))
    assert by_testid(page, "previous")["href"] == "http://example.com/hosts?page=2"


def test_pages_keep_the_filters_and_the_sort(admin_app, fleet):
    page = admin_app.get("/hosts", {"q": "node", "sort": "-cpus"})
    href = by_testid(page, "next")["href"]
    assert href == "http://example.com/hosts?q=node&sort=-cpus&page=2"


def test_a_page_past_the_end_says_so(admin_app, fleet):
    page = admin_app.get("/hosts", {"page": "4"})
    assert host_rows(page) == []
    assert text_of(page, "total") == "25 hosts"
    empty = by_testid(page, "empty-state")
    assert "No host on this page: there are 3 pages." in text_of(page, "empty-state")
    assert empty.find("a")["href"] == "http://example.com/hosts?page=1"


SORTS = {
    "hostname": lambda h: h.hostname,
    "state": lambda h: h.state,
    "pool": lambda h: h.pool.name,
    "arch": lambda h: h.arch,
    "cpus": lambda h: h.cpu_count,
    "memory": lambda h: h.memory_mib,
    "last_seen": lambda h: h.last_seen_at,
}


def test_host_list_sorts_by_every_column(admin_app, fleet):
    def check(descending, column):
        key = SORTS[column]
        # ties keep a stable order (by id) whatever the direction, so pages never overlap
        ordered = sorted(fleet, key=lambda h: h.id)
        ordered.sort(key=key, reverse=descending)
        sort = f"-{column}" if descending else column
        shown = []
        for number in (1, 2, 3):
            shown += host_rows(admin_app.get("/hosts", {"sort": sort, "page": str(number)}))
        assert shown == names(ordered)

    each(itertools.product([False, True], SORTS), check)


def test_sort_headers_toggle_the_direction(admin_app, fleet):
    page = admin_app.get("/hosts")
    assert by_testid(page, "sort-hostname").get_text(strip=True) == "Host ▲"
    assert by_testid(page, "sort-cpus")["href"] == "http://example.com/hosts?sort=cpus"
    page = admin_app.get(by_testid(page, "sort-cpus")["href"])
    assert by_testid(page, "sort-cpus").get_text(strip=True) == "CPUs ▲"
    assert by_testid(page, "sort-cpus")["href"] == "http://example.com/hosts?sort=-cpus"
    page = admin_app.get(by_testid(page, "sort-cpus")["href"])
    assert by_testid(page, "sort-cpus").get_text(strip=True) == "CPUs ▼"
    assert host_rows(page)[0] == max(fleet, key=lambda h: (h.cpu_count, h.id)).hostname


def test_filter_by_search_text(admin_app, fleet):
    page = admin_app.get("/hosts", {"q": "NODE1"})
    assert host_rows(page) == [f"node{n}.example.org" for n in range(10, 20)]
    assert text_of(page, "total") == "10 hosts"
    assert by_testid(page, "next") is None
    assert filter_form(page)["q"].value == "NODE1"


def test_search_by_uuid(admin_app, fleet):
    page = admin_app.get("/hosts", {"q": fleet[7].uuid.upper()})
    assert host_rows(page) == ["node07.example.org"]
    assert text_of(page, "total") == "1 host"


def test_filter_by_state(admin_app, fleet):
    page = admin_app.get("/hosts", {"state": "maintenance"})
    assert host_rows(page) == [f"node{n:02d}.example.org" for n in range(1, 25, 5)]
    selected = page.html.find("select", attrs={"name": "state"}).find("option", selected=True)
    assert selected["value"] == "maintenance"


def test_filter_by_pool_includes_sub_pools(admin_app, tree, fleet):
    rack = PoolFactory(name="rack", parent=tree["redhat"])
    HostFactory(hostname="racked.example.org", pool=rack)
    page = admin_app.get("/hosts", {"pool": str(tree["redhat"].id), "sort": "-hostname"})
    assert host_rows(page)[0] == "racked.example.org"
    assert text_of(page, "total") == "11 hosts"
    assert filter_form(page)["pool"].value == str(tree["redhat"].id)


def test_filters_combine(admin_app, tree, fleet):
    page = admin_app.get(
        "/hosts", {"q": "node1", "state": "available", "pool": str(tree["fedora"].id)}
    )
    assert host_rows(page) == ["node10.example.org"]


def test_no_match_says_so(admin_app, fleet):
    page = admin_app.get("/hosts", {"q": "nothing-like-this"})
    assert host_rows(page) == []
    assert "No host matches these filters." in text_of(page, "empty-state")
    assert text_of(page, "total") == "0 hosts"


def test_empty_pool_filter_says_the_filters_match_nothing(admin_app, tree, fleet):
    page = admin_app.get("/hosts", {"pool": str(tree["default"].id)})
    assert "No host matches these filters." in text_of(page, "empty-state")


def test_search_text_is_escaped(admin_app, fleet):
    page = admin_app.get("/hosts", {"q": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text


def test_bad_list_parameters_are_400_with_a_reason(admin_app, fleet):
    def check(params, message):
        page = admin_app.get("/hosts", params, status=400)
        assert "Cannot do that" in page.text
        assert message in text_of(page, "error-message")

    each(
        [
            ({"sort": "uuid"}, "cannot sort hosts by 'uuid'"),
            ({"sort": ""}, "cannot sort hosts by ''"),
            ({"sort": "-password"}, "cannot sort hosts by 'password'"),
            ({"sort": "--hostname"}, "cannot sort hosts by '-hostname'"),
            ({"state": "on-fire"}, "unknown host state 'on-fire'"),
            ({"page": "0"}, "page must be between 1 and 100000"),
            ({"page": "-1"}, "page must be between 1 and 100000"),
            ({"page": "two"}, "page must be between 1 and 100000"),
            ({"page": "1" * 40}, "page must be between 1 and 100000"),
            ({"page": "100001"}, "page must be between 1 and 100000"),
            ({"q": "x" * 254}, "a search has at most 253 characters"),
            ({"pool": "fedora"}, "pool must be a pool id"),
            ({"pool": "-1"}, "pool must be a pool id"),
        ],
        check,
    )


def test_unknown_pool_filter_is_404(admin_app, fleet):
    admin_app.get("/hosts", {"pool": "999999"}, status=404)


def test_host_list_for_a_user_without_grants_is_empty(alice_app, fleet):
    page = alice_app.get("/hosts")
    assert host_rows(page) == []
    assert text_of(page, "total") == "0 hosts"
    assert "No host is in a pool you may view." in text_of(page, "empty-state")


def test_pool_filter_on_a_pool_the_user_cannot_see_is_404(alice_app, tree, fleet):
    alice_app.get("/hosts", {"pool": str(tree["fedora"].id)}, status=404)


# -- GET /hosts/{id} ----------------------------------------------------------------------------


@pytest.fixture
def described_host(tree, dbsession):
    host = HostFactory(
        hostname="kvm07.fedora.example.org",
        pool=tree["fedora"],
        memory_mib=65536,
        cpu_count=2,
        cpu_mhz=2400,
        hypervisor_version="8.2.0",
        libvirt_version="10.1.0",
        load_average=0.75,
    )
    for index in range(2):
        dbsession.add(
            HostCpu(
                host_id=host.id,
                cpu_index=index,
                socket=0,
                core=index,
                vendor="GenuineIntel",
                model="Xeon Gold 6230",
                speed_mhz=2400,
            )
        )
    HostNicFactory(
        host=host,
        name="eth0",
        mac="52:54:00:aa:bb:01",
        ip_address="10.0.0.7",
        prefix_length=24,
        speed_mbps=10000,
    )
    HostNicFactory(host=host, name="eth1", mac="52:54:00:aa:bb:02")
    VmFactory(pool=tree["fedora-vms"], host=host, name="koji-builder", vcpus=4, memory_mib=8192)
    VmFactory(pool=tree["fedora-vms"], host=host, name="copr-worker", state="running")
    dbsession.flush()
    dbsession.expire(host)
    return host


def test_host_page_shows_facts_cpus_nics_and_vms(admin_app, described_host):
    page = admin_app.get(f"/hosts/{described_host.id}")
    assert text_of(page, "hostname") == "kvm07.fedora.example.org"
    assert text_of(page, "fact-pool") == "root/hardware/fedora"
    assert text_of(page, "fact-uuid") == described_host.uuid
    assert text_of(page, "fact-memory") == "64.0 GiB (65536 MiB)"
    assert text_of(page, "fact-cpus") == "2 \N{MULTIPLICATION SIGN} 2400 MHz"
    assert text_of(page, "fact-state") == "available"
    assert text_of(page, "fact-libvirt-uri") == "qemu+tls://kvm07.fedora.example.org/system"
    assert text_of(page, "fact-last-seen") == "never"
    cpus = by_testid(page, "cpus").find("tbody").find_all("tr")
    assert [c.find_all("td")[0].get_text() for c in cpus] == ["0", "1"]
    assert "Xeon Gold 6230" in text_of(page, "cpus")
    nics = text_of(page, "nics")
    assert "eth0 52:54:00:aa:bb:01 10.0.0.7/24 10000 Mb/s" in nics
    assert "eth1 52:54:00:aa:bb:02" in nics
    vms = [r.find("td").get_text() for r in by_testid(page, "vms").find("tbody").find_all("tr")]
    assert vms == ["copr-worker", "koji-builder"]
    assert "8192 MiB" in text_of(page, "vms")


def test_host_page_of_a_new_host(admin_app, tree):
    host = HostFactory(pool=tree["default"], state="pending")
    page = admin_app.get(f"/hosts/{host.id}")
    assert "No interfaces reported yet." in page.text
    assert "No CPUs reported yet." in page.text
    assert "No VMs on this host." in page.text


def test_host_page_offers_only_hardware_pools(admin_app, tree, described_host):
    page = admin_app.get(f"/hosts/{described_host.id}")
    form = by_testid(page, "move-form")
    options = {o.get_text(strip=True).lstrip("· "): o for o in form.find_all("option")}
    assert set(options) == {"hardware", "default", "fedora", "redhat"}
    assert options["fedora"].has_attr("selected")


def test_unknown_or_malformed_host_id_is_404(admin_app):
    def check(path):
        page = admin_app.get(path, status=404)
        assert "There is nothing here" in text_of(page, "error-message")

    each(["/hosts/999999", "/hosts/abc", "/hosts/0x1", "/hosts/" + "9" * 19], check)


def test_host_move_answers_only_post(admin_app, tree):
    host = HostFactory(pool=tree["fedora"])
    admin_app.get(f"/hosts/{host.id}/move", status=404)


# -- POST /hosts/{id}/move ----------------------------------------------------------------------


def test_move_host_through_the_form(admin_app, tree, dbsession):
    host = HostFactory(pool=tree["default"], hostname="new.example.org")
    page = admin_app.get(f"/hosts/{host.id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/move"))
    form["pool"] = str(tree["redhat"].id)
    response = form.submit(status=303)
    assert location_path(response) == f"/hosts/{host.id}"
    landed = response.follow()
    assert flashes(landed, "success") == ["new.example.org moved to redhat."]
    assert text_of(landed, "fact-pool") == "root/hardware/redhat"
    dbsession.expire_all()
    assert host.pool_id == tree["redhat"].id


def post_move(app, host, pool_id):
    return app.post(f"/hosts/{host.id}/move", {"csrf_token": csrf_token(app), "pool": str(pool_id)})


def test_move_host_into_a_pool_that_is_not_hardware_is_refused(admin_app, tree, dbsession):
    def check(target):
        host = HostFactory(pool=tree["fedora"], hostname="h.example.org")
        landed = after_redirect(post_move(admin_app, host, tree[target].id))
        kind = tree[target].kind
        assert flashes(landed, "danger") == [
            f"a host can only be in a hardware pool; '{target}' is a {kind} pool"
        ]
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each(["fedora-vms", "users", "root"], check)


def test_move_host_with_vms_is_refused(admin_app, tree, dbsession, described_host):
    landed = after_redirect(post_move(admin_app, described_host, tree["redhat"].id))
    assert flashes(landed, "danger") == [
        "host kvm07.fedora.example.org has 2 VMs on it; migrate or delete them before moving"
        " it to another hardware pool"
    ]
    dbsession.expire_all()
    assert described_host.pool_id == tree["fedora"].id


def test_move_host_to_no_or_unknown_pool_is_404(admin_app, tree, dbsession):
    def check(pool):
        host = HostFactory(pool=tree["fedora"])
        admin_app.post(
            f"/hosts/{host.id}/move",
            {"csrf_token": csrf_token(admin_app), "pool": pool},
            status=404,
        )
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each(["", "999999", "x"], check)


def test_move_host_without_the_csrf_token_is_refused(admin_app, tree, dbsession):
    def check(token):
        host = HostFactory(pool=tree["fedora"])
        fields = {"pool": str(tree["redhat"].id)}
        if token:
            fields["csrf_token"] = token
        page = admin_app.post(f"/hosts/{host.id}/move", fields, status=400)
        assert "did not come from this site" in text_of(page, "error-message")
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each([None, "forged"], check)


def test_search_wildcards_are_literal(admin_app, tree):
    from ..factories import HostFactory

    HostFactory(pool=tree["fedora"], hostname="node1.example.org")
    assert admin_app.get("/api/v1/hosts?q=%25").json["total"] == 0
    assert admin_app.get("/api/v1/hosts?q=_").json["total"] == 0
    assert admin_app.get("/api/v1/hosts?q=node1").json["total"] == 1
