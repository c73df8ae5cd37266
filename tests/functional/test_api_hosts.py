"""``/api/v1/hosts``: list and read hosts, move one to another hardware pool."""

from __future__ import annotations

import pytest

from fedoracloud.models import HostCpu

from ..factories import HostFactory, HostNicFactory, VmFactory
from .conftest import api_headers, assert_api_error, each

HOST_KEYS = {
    "id",
    "uuid",
    "hostname",
    "state",
    "pool",
    "libvirt_uri",
    "arch",
    "hypervisor",
    "hypervisor_version",
    "libvirt_version",
    "memory_mib",
    "cpus",
    "cpu_mhz",
    "load_average",
    "last_seen_at",
    "nics",
    "url",
}


@pytest.fixture
def hosts(tree):
    """25 hosts, 15 in fedora and 10 in redhat."""
    return [
        HostFactory(
            hostname=f"h{n:02d}.example.org",
            pool=tree["fedora"] if n < 15 else tree["redhat"],
            state="available" if n % 3 else "maintenance",
            cpu_count=n + 1,
        )
        for n in range(25)
    ]


def patch(app, host, body, headers=None):
    return app.patch_json(
        f"/api/v1/hosts/{host.id}",
        body,
        headers=api_headers(app) if headers is None else headers,
        expect_errors=True,
    )


# -- GET /api/v1/hosts --------------------------------------------------------------------------


def test_list_hosts_shape_and_pages(admin_app, hosts):
    first = admin_app.get("/api/v1/hosts").json
    assert set(first) == {"items", "next", "total"}
    assert first["total"] == 25
    assert [h["hostname"] for h in first["items"]] == [f"h{n:02d}.example.org" for n in range(10)]
    assert first["next"] == "http://example.com/api/v1/hosts?page=2"
    second = admin_app.get(first["next"]).json
    third = admin_app.get(second["next"]).json
    assert len(third["items"]) == 5
    assert third["next"] is None
    every = first["items"] + second["items"] + third["items"]
    assert sorted(h["id"] for h in every) == sorted(h.id for h in hosts)


def test_list_host_item(admin_app, tree, hosts):
    HostNicFactory(host=hosts[0], name="eth0", mac="52:54:00:12:34:56", ip_address="10.1.1.1")
    item = admin_app.get("/api/v1/hosts").json["items"][0]
    assert set(item) == HOST_KEYS
    host = hosts[0]
    assert item["id"] == host.id
    assert item["uuid"] == host.uuid
    assert item["hostname"] == "h00.example.org"
    assert item["state"] == "maintenance"
    assert item["pool"] == tree["fedora"].id
    assert item["libvirt_uri"] == "qemu+tls://h00.example.org/system"
    assert item["arch"] == "x86_64"
    assert item["memory_mib"] == 16384
    assert item["cpus"] == 1
    assert item["last_seen_at"] is None
    assert item["url"] == f"http://example.com/api/v1/hosts/{host.id}"
    assert item["nics"] == [
        {
            "name": "eth0",
            "mac": "52:54:00:12:34:56",
            "ip_address": "10.1.1.1",
            "prefix_length": None,
            "speed_mbps": None,
        }
    ]


def test_list_hosts_filters_and_sort(admin_app, tree, hosts):
    data = admin_app.get(
        "/api/v1/hosts",
        {"pool": str(tree["fedora"].id), "state": "maintenance", "sort": "-cpus"},
    ).json
    assert [h["hostname"] for h in data["items"]] == [
        f"h{n:02d}.example.org" for n in (12, 9, 6, 3, 0)
    ]
    assert data["total"] == 5
    assert data["next"] is None
    data = admin_app.get("/api/v1/hosts", {"q": "h2"}).json
    assert data["total"] == 5
    assert {h["pool"] for h in data["items"]} == {tree["redhat"].id}


def test_list_hosts_next_keeps_the_filters(admin_app, tree, hosts):
    data = admin_app.get("/api/v1/hosts", {"state": "available", "sort": "cpus"}).json
    assert data["total"] == 16
    assert data["next"] == "http://example.com/api/v1/hosts?state=available&sort=cpus&page=2"


def test_list_hosts_with_bad_parameters_is_400(admin_app, hosts):
    def check(params, message):
        answer = admin_app.get("/api/v1/hosts", params, status=400)
        assert_api_error(answer, 400, "invalid", message)
        assert answer.json["error"]["details"]["field"] == next(iter(params))

    each(
        [
            ({"sort": "uuid"}, "cannot sort hosts by 'uuid'"),
            ({"state": "gone"}, "unknown host state 'gone'"),
            ({"page": "0"}, "page must be between 1 and 100000"),
            ({"page": "abc"}, "page must be between 1 and 100000"),
            ({"q": "q" * 300}, "a search has at most 253 characters"),
            ({"pool": "x"}, "pool must be a pool id"),
        ],
        check,
    )


def test_list_hosts_of_an_unknown_pool_is_404(admin_app, hosts):
    assert_api_error(
        admin_app.get("/api/v1/hosts", {"pool": "999999"}, status=404), 404, "not_found"
    )


def test_list_hosts_for_a_user_without_grants_is_empty(alice_app, tree, hosts):
    assert alice_app.get("/api/v1/hosts").json == {"items": [], "next": None, "total": 0}
    answer = alice_app.get("/api/v1/hosts", {"pool": str(tree["fedora"].id)}, status=404)
    assert_api_error(answer, 404, "not_found")


# -- GET /api/v1/hosts/{id} ---------------------------------------------------------------------


def test_get_host_with_cpus_and_nics(admin_app, tree, dbsession):
    host = HostFactory(pool=tree["fedora"], cpu_count=2, cpu_mhz=3000)
    for index in range(2):
        dbsession.add(
            HostCpu(host_id=host.id, cpu_index=index, core=index, vendor="AMD", model="EPYC")
        )
    HostNicFactory(host=host, name="eno1", mac="52:54:00:00:00:aa", speed_mbps=25000)
    dbsession.flush()
    dbsession.expire(host)
    data = admin_app.get(f"/api/v1/hosts/{host.id}").json
    assert set(data) == HOST_KEYS | {"cpu_list"}
    assert data["cpus"] == 2
    assert data["cpu_mhz"] == 3000
    assert data["cpu_list"] == [
        {
            "index": i,
            "socket": 0,
            "core": i,
            "thread": 0,
            "vendor": "AMD",
            "model": "EPYC",
            "speed_mhz": None,
        }
        for i in range(2)
    ]
    assert [n["name"] for n in data["nics"]] == ["eno1"]
    assert data["nics"][0]["speed_mbps"] == 25000


def test_get_unknown_or_malformed_host_is_404(admin_app, tree):
    def check(host_id):
        assert_api_error(admin_app.get(f"/api/v1/hosts/{host_id}", status=404), 404, "not_found")

    each(["999999", "abc", "-1", "9" * 19], check)


# -- PATCH /api/v1/hosts/{id} -------------------------------------------------------------------


def test_move_host(admin_app, tree, dbsession):
    host = HostFactory(pool=tree["default"])
    answer = patch(admin_app, host, {"pool": tree["redhat"].id})
    assert answer.status_int == 200
    assert answer.json["pool"] == tree["redhat"].id
    assert "cpu_list" in answer.json
    dbsession.expire_all()
    assert host.pool_id == tree["redhat"].id


def test_move_host_to_its_own_pool_is_fine(admin_app, tree):
    host = HostFactory(pool=tree["fedora"])
    assert patch(admin_app, host, {"pool": tree["fedora"].id}).status_int == 200


def test_move_host_refusals(admin_app, tree, dbsession):
    def check(body, status, code, message):
        host = HostFactory(pool=tree["fedora"])
        body = {k: tree[v].id if isinstance(v, str) and v in tree else v for k, v in body.items()}
        assert_api_error(patch(admin_app, host, body), status, code, message)
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each(
        [
            ({"pool": "fedora-vms"}, 400, "invalid", "a host can only be in a hardware pool"),
            ({"pool": "users"}, 400, "invalid", "'users' is a directory pool"),
            ({"pool": 999_999}, 404, "not_found", "There is nothing here"),
            ({"pool": "3"}, 400, "invalid", "'pool' must be a pool id"),
            ({"pool": None}, 400, "invalid", "'pool' must be a pool id"),
            ({"pool": [1]}, 400, "invalid", "'pool' must be a pool id"),
            ({"pool": 2**70}, 400, "invalid", "'pool' must be a pool id"),
            ({}, 400, "invalid", "'pool' must be a pool id"),
            ({"pool": "redhat", "state": "available"}, 400, "invalid", "unknown fields: state"),
            ({"hostname": "x"}, 400, "invalid", "unknown fields: hostname"),
        ],
        check,
    )


def test_move_host_with_vms_is_409(admin_app, tree, dbsession):
    host = HostFactory(pool=tree["fedora"])
    VmFactory(pool=tree["fedora-vms"], host=host)
    answer = patch(admin_app, host, {"pool": tree["redhat"].id})
    assert_api_error(answer, 409, "conflict", "has 1 VM on it")
    dbsession.expire_all()
    assert host.pool_id == tree["fedora"].id


def test_move_host_with_a_bad_body_is_400(admin_app, tree, dbsession):
    def check(raw):
        host = HostFactory(pool=tree["fedora"])
        answer = admin_app.patch(
            f"/api/v1/hosts/{host.id}",
            raw,
            content_type="application/json",
            headers=api_headers(admin_app),
            expect_errors=True,
        )
        assert_api_error(answer, 400, "invalid", "the request body")
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each([b"", b"{oops", b"[]", b"7"], check)


def test_move_host_without_the_csrf_token_is_400(admin_app, tree, dbsession):
    def check(headers):
        host = HostFactory(pool=tree["fedora"])
        answer = patch(admin_app, host, {"pool": tree["redhat"].id}, headers=headers)
        assert_api_error(answer, 400, "bad_csrf")
        dbsession.expire_all()
        assert host.pool_id == tree["fedora"].id

    each([{}, {"X-CSRF-Token": "nope"}], check)


def test_hosts_api_has_no_post_or_delete(admin_app, tree):
    host = HostFactory(pool=tree["fedora"])
    headers = api_headers(admin_app)
    assert_api_error(
        admin_app.post_json("/api/v1/hosts", {}, headers=headers, status=404), 404, "not_found"
    )
    assert_api_error(
        admin_app.delete(f"/api/v1/hosts/{host.id}", headers=headers, status=404), 404, "not_found"
    )
