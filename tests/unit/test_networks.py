"""Networks and IP pools: validation, overlaps, ranges, allocation and release, MACs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud.models import AuditEvent, IpAddress, IpPool, Network, VmNic
from fedoracloud.services import Conflict, InvalidInput
from fedoracloud.services import networks as networks_module
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkInput, NetworkService, allocate_mac

from ..factories import HostNicFactory, PoolFactory, VmFactory

PUBLIC = {
    "name": "public",
    "kind": "physical",
    "usage": "guest",
    "bridge": "brpublic",
    "interface": "eth1",
    "cidr": "209.132.181.0/24",
    "gateway": "209.132.181.1",
}
PRIVATE = {
    "name": "private",
    "kind": "vlan",
    "vlan_id": 126,
    "usage": "management",
    "bridge": "brmgmt",
    "interface": "eth0",
    "cidr": "10.5.126.0/24",
}


def make(dbsession: Any, **fields: Any) -> Network:
    return NetworkService(ServiceContext.for_session(dbsession)).create(
        NetworkInput.parse({**PUBLIC, **fields})
    )


def rows(dbsession: Any) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        dbsession.scalar(select(func.count()).select_from(model))
        for model in (Network, IpPool, IpAddress)
    )


# -- networks ---------------------------------------------------------------------------------


def test_a_network_is_stored_in_canonical_form_and_audited(dbsession):
    network = make(dbsession, cidr="2001:DB8:0::/64", gateway="2001:db8::0001", name="v6")
    assert (network.cidr, network.gateway) == ("2001:db8::/64", "2001:db8::1")
    vlan = NetworkService(ServiceContext.for_session(dbsession)).create(NetworkInput.parse(PRIVATE))
    assert (vlan.kind, vlan.vlan_id, vlan.usage, vlan.gateway) == ("vlan", 126, "management", None)
    actions = dbsession.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "network")
    )
    assert list(actions) == ["network.create", "network.create"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": ""}, "a network needs a name"),
        ({"name": "a b"}, "a network name may hold only"),
        ({"name": "x" * 65}, "at most 64 characters"),
        ({"kind": "bond"}, "kind 'bond': physical or vlan"),
        ({"kind": "vlan"}, "a VLAN network needs a VLAN id from 1 to 4094"),
        ({"kind": "vlan", "vlan_id": 0}, "a VLAN network needs a VLAN id from 1 to 4094"),
        ({"kind": "vlan", "vlan_id": 4095}, "a VLAN network needs a VLAN id from 1 to 4094"),
        ({"kind": "vlan", "vlan_id": "12a"}, "the VLAN id must be a whole number"),
        ({"kind": "vlan", "vlan_id": "²"}, "the VLAN id must be a whole number"),
        ({"vlan_id": 5}, "a physical network has no VLAN id"),
        ({"usage": "backup"}, "usage 'backup': guest, management or storage"),
        ({"bridge": ""}, "a network needs a bridge"),
        ({"bridge": "bridge-name-too-long"}, "at most 15 characters"),
        ({"bridge": "br0\nIP=1"}, "letters, digits"),
        ({"bridge": "br/0"}, "letters, digits"),
        ({"bridge": "-br"}, "letters, digits"),
        ({"bridge": "br..0"}, "letters, digits"),
        ({"bridge": "eth1"}, "cannot be the interface it sits on"),
        ({"interface": "eth 1"}, "letters, digits"),
        (
            {"kind": "vlan", "vlan_id": 4000, "interface": "enp129s0f10"},
            "the VLAN device enp129s0f10.4000 would be longer than 15",
        ),
        ({"cidr": ""}, "a network needs a CIDR"),
        ({"cidr": "10.0.0.0"}, "is not a CIDR"),
        ({"cidr": "10.0.0.0/33"}, "is not a CIDR"),
        ({"cidr": "banana/24"}, "is not a CIDR"),
        ({"cidr": "10.0.0.1/24"}, "has host bits set: did you mean 10.0.0.0/24?"),
        ({"cidr": "0.0.0.0/0"}, "an IPv4 network here is a /8 to a /30"),
        ({"cidr": "10.0.0.0/31"}, "an IPv4 network here is a /8 to a /30"),
        ({"cidr": "::/0"}, "an IPv6 network here is a /16 to a /126"),
        ({"gateway": "10.0.0.1"}, "gateway 10.0.0.1 is outside the network's 209.132.181.0/24"),
        ({"gateway": "209.132.181.0"}, "is the network address of"),
        ({"gateway": "209.132.181.255"}, "is the broadcast address of"),
        ({"gateway": "2001:db8::1"}, "is outside the network's"),
        ({"gateway": "nope"}, "gateway 'nope' is not an IP address"),
        ({"description": "two\nlines"}, "a description is one line"),
        ({"hardware_pools": ["x"]}, "a hardware pool id must be a whole number"),
        ({"colour": "blue"}, "unknown fields: colour"),
    ],
)
def test_bad_network_input_is_refused_with_a_reason(dbsession, fields, message):
    before = rows(dbsession)
    with pytest.raises(InvalidInput) as refused:
        make(dbsession, **fields)
    assert message in refused.value.message
    assert rows(dbsession) == before


def test_an_overlapping_cidr_is_refused_naming_the_network(dbsession):
    make(dbsession)
    NetworkService(ServiceContext.for_session(dbsession)).create(NetworkInput.parse(PRIVATE))
    before = rows(dbsession)
    for cidr, other in (
        ("209.132.181.128/25", "public (209.132.181.0/24)"),
        ("209.132.0.0/16", "public (209.132.181.0/24)"),
        ("10.0.0.0/8", "private (10.5.126.0/24)"),
    ):
        with pytest.raises(InvalidInput, match="^" + re.escape(f"{cidr} overlaps network {other}")):
            make(dbsession, name="other", bridge="brother", interface="eth2", cidr=cidr, gateway="")
    assert rows(dbsession) == before
    # IPv6 never overlaps IPv4, and a neighbour does not overlap
    make(
        dbsession,
        name="next",
        bridge="brnext",
        interface="eth3",
        cidr="209.132.182.0/24",
        gateway="",
    )
    make(dbsession, name="v6", bridge="brv6", interface="eth4", cidr="2001:db8::/32", gateway="")


def test_duplicates_of_name_bridge_and_interface_are_refused(dbsession):
    make(dbsession)
    for fields, message in (
        (
            {"cidr": "10.1.0.0/16", "gateway": "", "bridge": "br2", "interface": "eth2"},
            "a network named 'public' exists",
        ),
        (
            {"name": "b", "cidr": "10.1.0.0/16", "gateway": "", "interface": "eth2"},
            "bridge brpublic is network public's",
        ),
        (
            {"name": "b", "cidr": "10.1.0.0/16", "gateway": "", "bridge": "br2"},
            "interface eth1 carries network public",
        ),
    ):
        with pytest.raises(Conflict, match=message):
            make(dbsession, **fields)
    # a VLAN of the same interface is another device
    make(dbsession, name="b", kind="vlan", vlan_id=7, cidr="10.1.0.0/16", gateway="", bridge="br2")


def test_hardware_pools_must_be_hardware_pools(dbsession, tree):
    network = make(dbsession, hardware_pools=[tree["fedora"].id, str(tree["redhat"].id)])
    assert [p.name for p in network.hardware_pools] == sorted(
        ["fedora", "redhat"], key=lambda n: tree[n].path
    )
    with pytest.raises(InvalidInput, match="no hardware pool"):
        make(
            dbsession,
            name="b",
            bridge="b2",
            interface="eth2",
            cidr="10.0.0.0/24",
            gateway="",
            hardware_pools=[tree["fedora-vms"].id],
        )


def test_networks_of_a_hardware_pool_are_inherited_down_the_tree(dbsession, tree):
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    public = make(dbsession, hardware_pools=[tree["hardware"].id])
    private = NetworkService(ServiceContext.for_session(dbsession)).create(
        NetworkInput.parse({**PRIVATE, "hardware_pools": [tree["fedora"].id]})
    )
    service = NetworkService(ServiceContext.for_session(dbsession))
    assert service.networks_for_hardware_pool(rack) == [private, public]
    assert service.networks_for_hardware_pool(tree["redhat"]) == [public]
    assert service.networks_for_hardware_pool(tree["hardware"]) == [public]


def test_update_keeps_pools_inside_and_guest_networks_with_nics(dbsession, tree):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    service.create_pool(network, "public-ips", "209.132.181.160", "209.132.181.239")
    with pytest.raises(
        InvalidInput,
        match=r"IP pool public-ips \(209.132.181.160-209.132.181.239\) would be outside"
        r" 209.132.181.0/25",
    ):
        service.update(network, NetworkInput.parse({**PUBLIC, "cidr": "209.132.181.0/25"}))
    with pytest.raises(
        InvalidInput, match=r"gateway 209\.132\.181\.200 is inside IP pool public-ips"
    ):
        service.update(network, NetworkInput.parse({**PUBLIC, "gateway": "209.132.181.200"}))
    vm = VmFactory(pool=tree["fedora-vms"])
    dbsession.add(VmNic(vm_id=vm.id, mac="52:54:00:aa:00:01", network_id=network.id))
    dbsession.flush()
    with pytest.raises(Conflict, match="has 1 VM NIC; it stays a guest network"):
        service.update(network, NetworkInput.parse({**PUBLIC, "usage": "storage"}))
    service.update(
        network, NetworkInput.parse({**PUBLIC, "cidr": "209.132.180.0/23", "description": "wider"})
    )
    assert (network.cidr, network.description) == ("209.132.180.0/23", "wider")


# -- IP pools -----------------------------------------------------------------------------------


def test_a_pool_materializes_each_address(dbsession):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    pool = service.create_pool(network, "public-ips", "209.132.181.160", "209.132.181.239")
    addresses = dbsession.scalars(
        select(IpAddress.address).where(IpAddress.ip_pool_id == pool.id).order_by(IpAddress.id)
    ).all()
    assert len(addresses) == 80
    assert (addresses[0], addresses[-1]) == ("209.132.181.160", "209.132.181.239")
    assert service.usage_of_pools([pool])[pool.id].total == 80
    assert service.usage_of_networks([network])[network.id].free == 80


@pytest.mark.parametrize(
    "first, last, message",
    [
        (
            "209.132.182.10",
            "209.132.182.20",
            "first address 209.132.182.10 is outside the network's",
        ),
        ("209.132.181.10", "209.132.182.20", "last address 209.132.182.20 is outside"),
        ("209.132.181.0", "209.132.181.20", "is the network address"),
        ("209.132.181.200", "209.132.181.255", "is the broadcast address"),
        ("209.132.181.20", "209.132.181.10", "ends before it starts"),
        ("209.132.181.1", "209.132.181.20", "includes the gateway 209.132.181.1"),
        (
            "209.132.181.100",
            "209.132.181.170",
            "overlaps IP pool taken (209.132.181.150-209.132.181.160)",
        ),
        ("209.132.181.155", "209.132.181.158", "overlaps IP pool taken"),
        ("209.132.181.140", "209.132.181.200", "overlaps IP pool taken"),
        ("2001:db8::1", "2001:db8::9", "is outside the network's"),
        ("x", "209.132.181.10", "first address 'x' is not an IP address"),
    ],
)
def test_bad_ranges_are_refused(dbsession, first, last, message):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    service.create_pool(network, "taken", "209.132.181.150", "209.132.181.160")
    before = rows(dbsession)
    with pytest.raises(InvalidInput) as refused:
        service.create_pool(network, "new", first, last)
    assert message in refused.value.message
    assert rows(dbsession) == before


def test_a_huge_ipv6_pool_is_refused_and_a_small_one_works(dbsession):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(
        dbsession,
        name="v6",
        bridge="brv6",
        interface="eth4",
        cidr="2001:db8::/64",
        gateway="2001:db8::1",
    )
    with pytest.raises(
        InvalidInput, match="holds 16777216 addresses; an IP pool holds at most 65536"
    ):
        service.create_pool(network, "big", "2001:db8::1:0:0", "2001:db8::1:ff:ffff")
    pool = service.create_pool(network, "small", "2001:db8::100", "2001:db8::1ff")
    assert service.usage_of_pools([pool])[pool.id].total == 256


def test_pool_names_are_unique(dbsession):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    service.create_pool(network, "public-ips", "209.132.181.160", "209.132.181.169")
    with pytest.raises(Conflict, match="an IP pool named 'public-ips' exists already"):
        service.create_pool(network, "public-ips", "209.132.181.170", "209.132.181.179")


# -- allocation ---------------------------------------------------------------------------------


def nic(dbsession: Any, tree: dict[str, Any], network: Network, n: int) -> VmNic:
    vm = VmFactory(pool=tree["fedora-vms"], name=f"vm{n}")
    row = VmNic(vm_id=vm.id, mac=f"52:54:00:00:01:{n:02x}", network_id=network.id)
    dbsession.add(row)
    dbsession.flush()
    return row


def test_allocation_hands_out_addresses_in_order_and_says_when_the_pool_is_full(dbsession, tree):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    assert (
        service.allocate_nic_address(nic(dbsession, tree, network, 0), network) is None
    )  # no pool
    pool = service.create_pool(network, "public", "209.132.181.160", "209.132.181.162")
    got = [
        service.allocate_nic_address(nic(dbsession, tree, network, n), network) for n in (1, 2, 3)
    ]
    assert [a.address for a in got] == ["209.132.181.160", "209.132.181.161", "209.132.181.162"]
    assert all(a.allocated_at is not None for a in got)
    # asking again for a NIC that has one gives the same address
    assert service.allocate_nic_address(got[0].nic, network).address == "209.132.181.160"
    with pytest.raises(Conflict) as full:
        service.allocate_nic_address(nic(dbsession, tree, network, 4), network)
    assert full.value.message == "IP pool public has no free address (3 of 3 allocated)"
    assert full.value.details["ip_pool"] == pool.id


def test_a_second_pool_is_used_when_the_first_is_full(dbsession, tree):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    service.create_pool(network, "a", "209.132.181.10", "209.132.181.10")
    service.create_pool(network, "b", "209.132.181.20", "209.132.181.20")
    first = service.allocate_nic_address(nic(dbsession, tree, network, 1), network)
    second = service.allocate_nic_address(nic(dbsession, tree, network, 2), network)
    assert (first.address, second.address) == ("209.132.181.10", "209.132.181.20")
    with pytest.raises(
        Conflict,
        match=r"IP pools of network public have no free address"
        r" \(a: 1 of 1 allocated; b: 1 of 1 allocated\)",
    ):
        service.allocate_nic_address(nic(dbsession, tree, network, 3), network)


def test_release_frees_the_vms_addresses(dbsession, tree):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    pool = service.create_pool(network, "public", "209.132.181.160", "209.132.181.161")
    held = nic(dbsession, tree, network, 1)
    other = nic(dbsession, tree, network, 2)
    service.allocate_nic_address(held, network)
    service.allocate_nic_address(other, network)
    assert service.release_vm_addresses(held.vm) == ["209.132.181.160"]
    assert service.address_of(held) is None
    assert service.address_of(other) == "209.132.181.161"
    assert service.usage_of_pools([pool])[pool.id].allocated == 1
    again = service.allocate_nic_address(nic(dbsession, tree, network, 3), network)
    assert again.address == "209.132.181.160"


def test_a_pool_with_allocated_addresses_cannot_shrink_around_them_or_go(dbsession, tree):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    pool = service.create_pool(network, "public", "209.132.181.160", "209.132.181.169")
    service.allocate_nic_address(nic(dbsession, tree, network, 1), network)
    with pytest.raises(Conflict, match=r"leaves out 1 allocated address \(209.132.181.160\)"):
        service.update_pool(pool, "public", "209.132.181.161", "209.132.181.169")
    service.update_pool(pool, "public-ips", "209.132.181.160", "209.132.181.179")
    assert (pool.name, service.usage_of_pools([pool])[pool.id].total) == ("public-ips", 20)
    service.update_pool(pool, "public-ips", "209.132.181.160", "209.132.181.164")
    assert service.usage_of_pools([pool])[pool.id].total == 5
    with pytest.raises(
        Conflict, match="IP pool public-ips has 1 allocated address; delete those VMs"
    ):
        service.delete_pool(pool)
    with pytest.raises(Conflict, match="network public has 1 allocated address"):
        service.delete(network)


def test_deleting_a_network_takes_its_free_pools(dbsession):
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = make(dbsession)
    service.create_pool(network, "public", "209.132.181.160", "209.132.181.169")
    service.delete(network)
    assert rows(dbsession) == (0, 0, 0)


# -- MACs ---------------------------------------------------------------------------------------


def test_macs_are_local_unicast_in_52_54_00_and_drawn_again_when_taken(
    dbsession, tree, monkeypatch
):
    for _ in range(50):
        mac = allocate_mac(dbsession)
        first = int(mac[:2], 16)
        assert mac.startswith("52:54:00:") and first & 0x02 and not first & 0x01
    network = make(dbsession)
    nic(dbsession, tree, network, 1)  # holds 52:54:00:00:01:01
    HostNicFactory(mac="52:54:00:FC:01:02")  # a host's NIC, written in capitals
    draws = iter(["52:54:00:00:01:01", "52:54:00:fc:01:02", "52:54:00:00:01:03"])
    monkeypatch.setattr(networks_module, "random_mac", lambda: next(draws))
    assert allocate_mac(dbsession) == "52:54:00:00:01:03"
    monkeypatch.setattr(networks_module, "random_mac", lambda: "52:54:00:00:01:01")
    with pytest.raises(Conflict, match="could not find a free MAC in 8 tries"):
        allocate_mac(dbsession)
