"""The network and IP pool pages and API: who may see and change them, who holds each
address, and refusals that change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent, IpAddress, IpPool, Network, Vm, VmNic
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkInput, NetworkService

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

PUBLIC = {
    "name": "public",
    "usage": "guest",
    "bridge": "brpublic",
    "interface": "eth1",
    "cidr": "209.132.181.0/24",
    "gateway": "209.132.181.1",
}


def network_rows(page: Any) -> list[str]:
    table = by_testid(page, "network-table")
    if table is None:
        return []
    return [
        r.find("td").get_text(strip=True)
        for r in table.find_all(attrs={"data-testid": "network-row"})
    ]


def state(dbsession: Any) -> tuple[Any, ...]:
    """Every network, pool and address row: equal before and after means nothing changed."""
    dbsession.expire_all()
    return (
        [tuple(r) for r in dbsession.execute(select(Network.id, Network.name, Network.cidr))],
        [tuple(r) for r in dbsession.execute(select(IpPool.id, IpPool.first_address))],
        [tuple(r) for r in dbsession.execute(select(IpAddress.id, IpAddress.vm_nic_id))],
    )


@pytest.fixture
def public(dbsession: Any, tree: dict[str, Any]) -> Network:
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = service.create(NetworkInput.parse({**PUBLIC, "hardware_pools": [tree["fedora"].id]}))
    service.create_pool(network, "public-ips", "209.132.181.160", "209.132.181.239")
    return network


def _form(app: Any, url: str, **fields: Any) -> Any:
    return app.post(url, {"csrf_token": session_csrf(app), **fields}, expect_errors=True)


# -- pages ------------------------------------------------------------------------------------


def test_the_nav_has_networks_and_the_list_shows_usage(admin_app, public):
    page = admin_app.get("/pools")
    assert by_testid(page, "nav-networks")["href"] == "http://example.com/networks"
    page = admin_app.get("/networks")
    assert network_rows(page) == ["public"]
    assert text_of(page, "network-usage") == "0 of 80"
    assert by_testid(page, "add-network") is not None


def test_the_list_sorts_filters_and_pages(admin_app, dbsession):
    service = NetworkService(ServiceContext.for_session(dbsession))
    for n in range(12):
        service.create(
            NetworkInput.parse(
                {
                    "name": f"net{n:02d}",
                    "bridge": f"br{n}",
                    "interface": f"eth{n}",
                    "cidr": f"10.{20 - n}.0.0/16",
                    "usage": "storage" if n % 3 == 0 else "guest",
                }
            )
        )
    page = admin_app.get("/networks")
    assert network_rows(page) == [f"net{n:02d}" for n in range(10)]
    assert text_of(page, "total") == "12 networks"
    assert network_rows(admin_app.get(by_testid(page, "next")["href"])) == ["net10", "net11"]
    assert network_rows(admin_app.get("/networks", {"sort": "-name"}))[:2] == ["net11", "net10"]
    assert network_rows(admin_app.get("/networks", {"usage": "storage"})) == [
        "net00",
        "net03",
        "net06",
        "net09",
    ]
    assert network_rows(admin_app.get("/networks", {"q": "10.9."})) == ["net11"]
    for bad in ({"sort": "colour"}, {"usage": "x"}, {"kind": "y"}, {"page": "0"}):
        assert admin_app.get("/networks", bad, expect_errors=True).status_int == 400


def test_an_admin_creates_a_network_and_a_pool_with_the_forms(admin_app, dbsession, tree):
    page = admin_app.get("/networks/new")
    form = next(f for f in page.forms.values() if f.action.endswith("/networks/new"))
    for key, value in {**PUBLIC, "kind": "physical", "description": "the public IPs"}.items():
        form[key] = value
    form["hardware_pools"] = [str(tree["fedora"].id)]
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Network public created."]
    assert "bridge brpublic on eth1" in text_of(landed, "network-details")
    assert text_of(landed, "network-hardware-pools") == "fedora"
    network = dbsession.scalars(select(Network)).one()
    pool_form = next(f for f in landed.forms.values() if f.action.endswith("/ip-pools"))
    pool_form["name"] = "public-ips"
    pool_form["first_address"] = "209.132.181.160"
    pool_form["last_address"] = "209.132.181.239"
    pool_page = after_redirect(pool_form.submit())
    assert flashes(pool_page, "success") == [
        "IP pool public-ips created: 209.132.181.160 to 209.132.181.239."
    ]
    assert "0 of 80 allocated, 80 free" in text_of(pool_page, "ip-pool-summary")
    assert text_of(pool_page, "total") == "80 addresses"
    assert network.ip_pools[0].name == "public-ips"


def test_a_refused_form_shows_why_and_changes_nothing(admin_app, dbsession, public):
    before = state(dbsession)
    overlap = _form(
        admin_app,
        "/networks/new",
        **{
            **PUBLIC,
            "name": "other",
            "bridge": "br9",
            "interface": "eth9",
            "cidr": "209.132.0.0/16",
        },
    )
    assert overlap.status_int == 400
    assert flashes(overlap, "danger") == [
        "209.132.0.0/16 overlaps network public (209.132.181.0/24)"
    ]
    assert overlap.html.find("input", {"name": "name"})["value"] == "other"  # kept for a retry
    outside = after_redirect(
        _form(
            admin_app,
            f"/networks/{public.id}/ip-pools",
            name="more",
            first_address="10.0.0.1",
            last_address="10.0.0.9",
        )
    )
    assert flashes(outside, "danger") == [
        "first address 10.0.0.1 is outside the network's 209.132.181.0/24"
    ]
    pool = public.ip_pools[0]
    overlapping = after_redirect(
        _form(
            admin_app,
            f"/ip-pools/{pool.id}/edit",
            name="public-ips",
            first_address="209.132.181.1",
            last_address="209.132.181.200",
        )
    )
    assert "includes the gateway 209.132.181.1" in flashes(overlapping, "danger")[0]
    assert state(dbsession) == before


def test_an_edit_changes_the_network(admin_app, dbsession, public):
    page = admin_app.get(f"/networks/{public.id}/edit")
    form = next(f for f in page.forms.values() if f.action.endswith("/edit"))
    assert form["cidr"].value == "209.132.181.0/24"
    form["description"] = "Fedora's public addresses"
    form["gateway"] = "209.132.181.254"
    landed = after_redirect(form.submit())
    assert flashes(landed, "success") == ["Network public saved."]
    dbsession.expire_all()
    assert (public.gateway, public.description) == ("209.132.181.254", "Fedora's public addresses")


def test_who_holds_an_address_is_shown_only_to_who_may_view_the_vm(
    testapp, dbsession, tree, public
):
    pool = public.ip_pools[0]
    service = NetworkService(ServiceContext.for_session(dbsession))
    for name, vm_pool, mac in (
        ("fedora-web", "fedora-vms", "52:54:00:10:00:0a"),
        ("rh-web", "redhat-vms", "52:54:00:10:00:0b"),
    ):
        vm = VmFactory(name=name, pool=tree[vm_pool])
        nic = VmNic(vm_id=vm.id, mac=mac, network_id=public.id)
        dbsession.add(nic)
        dbsession.flush()
        service.allocate_nic_address(nic, public)
    grant(dbsession, "alice", tree["fedora"], "user")
    app = login(testapp, "alice")
    page = app.get(f"/ip-pools/{pool.id}", {"state": "allocated"})
    rows = [
        [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        for tr in page.html.find_all(attrs={"data-testid": "address-row"})
    ]
    assert [r[:3] for r in rows] == [
        ["209.132.181.160", "fedora-web", "52:54:00:10:00:0a"],
        ["209.132.181.161", "allocated", ""],
    ]
    assert "rh-web" not in page.text
    items = app.get(f"/api/v1/ip-pools/{pool.id}/addresses", {"state": "allocated"}).json["items"]
    assert [(i["address"], i["state"], i["holder"] and i["holder"]["vm_name"]) for i in items] == [
        ("209.132.181.160", "allocated", "fedora-web"),
        ("209.132.181.161", "allocated", None),
    ]
    assert items[0]["holder"]["mac"] == "52:54:00:10:00:0a" and items[1]["since"]
    # she sees the networks but may not change them, nor see the forms
    assert by_testid(app.get("/networks"), "add-network") is None
    assert by_testid(app.get(f"/networks/{public.id}"), "ip-pool-create-form") is None
    assert app.get("/networks/new", expect_errors=True).status_int == 403
    before = state(dbsession)
    assert _form(app, f"/networks/{public.id}/delete").status_int == 403
    answer = app.post_json(
        "/api/v1/networks",
        {**PUBLIC, "name": "x", "cidr": "10.0.0.0/8"},
        headers=api_headers(app),
        expect_errors=True,
    )
    assert_api_error(answer, 403, "forbidden")
    assert state(dbsession) == before


def test_deleting_a_network_with_allocated_addresses_is_refused(admin_app, dbsession, tree, public):
    vm = VmFactory(pool=tree["fedora-vms"])
    nic = VmNic(vm_id=vm.id, mac="52:54:00:10:00:01", network_id=public.id)
    dbsession.add(nic)
    dbsession.flush()
    NetworkService(ServiceContext.for_session(dbsession)).allocate_nic_address(nic, public)
    before = state(dbsession)
    landed = after_redirect(_form(admin_app, f"/networks/{public.id}/delete"))
    assert flashes(landed, "danger") == [
        "network public has 1 allocated address; delete those VMs first"
    ]
    answer = admin_app.delete(
        f"/api/v1/ip-pools/{public.ip_pools[0].id}", headers=api_headers(admin_app), status=409
    )
    assert_api_error(answer, 409, "conflict", "IP pool public-ips has 1 allocated address")
    assert state(dbsession) == before


def test_unknown_ids_are_404(admin_app):
    for url in ("/networks/999", "/ip-pools/999", "/api/v1/networks/999", "/api/v1/ip-pools/x"):
        assert admin_app.get(url, expect_errors=True).status_int == 404
    for network in ("x", "²", "-1"):
        answer = admin_app.get("/api/v1/ip-pools", {"network": network}, expect_errors=True)
        assert_api_error(answer, 400, "invalid", "network must be a network id")


# -- the API ----------------------------------------------------------------------------------


def test_api_create_read_change_delete(admin_app, dbsession, tree):
    headers = api_headers(admin_app)
    body = {**PUBLIC, "hardware_pools": [tree["fedora"].id]}
    made = admin_app.post_json("/api/v1/networks", body, headers=headers, status=201).json
    assert {k: made[k] for k in ("name", "kind", "vlan_id", "cidr", "gateway", "total")} == {
        "name": "public",
        "kind": "physical",
        "vlan_id": None,
        "cidr": "209.132.181.0/24",
        "gateway": "209.132.181.1",
        "total": 0,
    }
    assert made["hardware_pools"] == [tree["fedora"].id]
    pool = admin_app.post_json(
        "/api/v1/ip-pools",
        {
            "network": made["id"],
            "name": "public-ips",
            "first_address": "209.132.181.160",
            "last_address": "209.132.181.239",
        },
        headers=headers,
        status=201,
    ).json
    assert (pool["allocated"], pool["total"], pool["network"]) == (0, 80, made["id"])
    listed = admin_app.get("/api/v1/networks").json
    assert listed["total"] == 1 and listed["items"][0]["total"] == 80
    assert admin_app.get("/api/v1/ip-pools", {"network": str(made["id"])}).json["total"] == 1
    assert admin_app.get(f"/api/v1/ip-pools/{pool['id']}").json == pool
    addresses = admin_app.get(f"/api/v1/ip-pools/{pool['id']}/addresses").json
    assert addresses["total"] == 80 and addresses["items"][0] == {
        "address": "209.132.181.160",
        "state": "free",
        "since": None,
        "holder": None,
    }
    assert addresses["next"].endswith("page=2")
    changed = admin_app.patch_json(
        made["url"], {"kind": "vlan", "vlan_id": 181, "gateway": None}, headers=headers
    ).json
    assert (changed["kind"], changed["vlan_id"], changed["gateway"], changed["name"]) == (
        "vlan",
        181,
        None,
        "public",
    )
    smaller = admin_app.patch_json(
        pool["url"], {"last_address": "209.132.181.199"}, headers=headers
    ).json
    assert smaller["total"] == 40
    admin_app.delete(made["url"], headers=headers, status=204)
    assert dbsession.scalar(select(func.count()).select_from(IpAddress)) == 0
    actions = list(
        dbsession.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_type.in_(("network", "ip_pool")))
            .order_by(AuditEvent.id)
        )
    )
    assert actions == [
        "network.create",
        "ip_pool.create",
        "network.update",
        "ip_pool.update",
        "network.delete",
    ]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"cidr": "209.132.181.128/25"}, 400, "overlaps network public (209.132.181.0/24)"),
        ({"cidr": "10.0.0.0/8", "kind": "vlan"}, 400, "a VLAN network needs a VLAN id"),
        ({"cidr": "10.0.0.0/8", "bridge": "a-very-long-bridge"}, 400, "at most 15 characters"),
        ({"cidr": "10.0.0.0/8", "gateway": "11.0.0.1"}, 400, "outside the network's 10.0.0.0/8"),
        ({"cidr": "10.0.0.0/8", "vlan_id": True}, 400, ""),
        ({"cidr": "10.0.0.0/8", "extra": 1}, 400, ""),
        ({"cidr": "10.0.0.0/8", "name": "public"}, 409, "a network named 'public' exists"),
    ],
)
def test_api_refusals_change_nothing(admin_app, dbsession, public, body, status, message):
    before = state(dbsession)
    fields = {**PUBLIC, "name": "other", "bridge": "br2", "interface": "eth2", "gateway": None}
    answer = admin_app.post_json(
        "/api/v1/networks", {**fields, **body}, headers=api_headers(admin_app), expect_errors=True
    )
    assert answer.status_int == status, answer.text
    assert message in answer.json["error"]["message"]
    assert state(dbsession) == before


def test_api_pool_refusals_change_nothing(admin_app, dbsession, public):
    before = state(dbsession)
    headers = api_headers(admin_app)
    for body, message in (
        ({"first_address": "209.132.182.1", "last_address": "209.132.182.9"}, "outside"),
        ({"first_address": "209.132.181.200", "last_address": "209.132.181.240"}, "overlaps"),
        ({"first_address": "209.132.181.9", "last_address": "209.132.181.2"}, "ends before"),
        ({"network": 99999}, "no network 99999"),
    ):
        answer = admin_app.post_json(
            "/api/v1/ip-pools",
            {
                "network": public.id,
                "name": "more",
                "first_address": "209.132.181.2",
                "last_address": "209.132.181.9",
                **body,
            },
            headers=headers,
            expect_errors=True,
        )
        assert_api_error(answer, 400, "invalid", message)
    assert state(dbsession) == before


# -- VM creation takes an address; an exhausted pool says so -------------------------------


def test_a_vm_created_on_a_network_with_a_pool_gets_an_address(admin_app, dbsession, tree):
    HostFactory(pool=tree["fedora"])
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = service.create(NetworkInput.parse(PUBLIC))
    service.create_pool(network, "tiny", "209.132.181.10", "209.132.181.10")
    headers = api_headers(admin_app)
    body = {"pool": tree["fedora-vms"].id, "vcpus": 1, "memory_mib": 512}
    made = admin_app.post_json(
        "/api/v1/vms", {**body, "name": "web01", "nics": [{"network": network.id}]}, headers=headers
    )
    assert made.status_int == 201
    vm = dbsession.get(Vm, made.json["id"])
    assert service.address_of(vm.nics[0]) == "209.132.181.10"
    assert [n["ip"] for n in admin_app.get(f"/api/v1/vms/{vm.id}").json["nics"]] == [
        "209.132.181.10"
    ]
    assert text_of(admin_app.get(f"/vms/{vm.id}"), "nic-ip") == "209.132.181.10"
    vms_before = dbsession.scalar(select(func.count()).select_from(Vm))
    full = admin_app.post_json(
        "/api/v1/vms",
        {**body, "name": "web02", "nics": [{"network": network.id}]},
        headers=headers,
        expect_errors=True,
    )
    assert_api_error(full, 409, "conflict", "IP pool tiny has no free address (1 of 1 allocated)")
    assert dbsession.scalar(select(func.count()).select_from(Vm)) == vms_before
