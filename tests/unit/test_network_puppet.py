"""The node's bridges and VLANs reach it through ``fedoracloud::node``: ifcfg files rendered
from the networks its hardware pool carries, passed by the ENC as ``network_scripts``."""

from __future__ import annotations

from typing import Any

import pytest

from fedoracloud.puppet import ConfigRenderer, NodeNetwork, RenderError
from fedoracloud.puppet.enc import EncService
from fedoracloud.services.context import ServiceContext
from fedoracloud.settings import PuppetSettings, Settings

from ..factories import HostFactory, NetworkFactory, PoolFactory

PUPPET = {
    "fedoracloud.management_network": "10.5.0.0/16",
    "fedoracloud.collectd.password": "signing-secret",
}
PUBLIC = NodeNetwork("public", "guest", "eth1", "brpublic", "209.132.181.0/24")
PRIVATE = NodeNetwork("private", "management", "eth0", "brmgmt", "10.5.126.0/24", 126)


def renderer() -> ConfigRenderer:
    return ConfigRenderer(PuppetSettings.from_dict(PUPPET))


def by_path(files: list[Any]) -> dict[str, str]:
    return {f.path: f.content for f in files}


def variables(content: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in content.splitlines() if line and not line.startswith("#")
    )


def test_a_bridge_on_an_interface_and_one_on_a_vlan():
    files = by_path(renderer().network_files([PUBLIC, PRIVATE]))
    assert list(files) == [
        "/etc/sysconfig/network-scripts/ifcfg-eth1",
        "/etc/sysconfig/network-scripts/ifcfg-brpublic",
        "/etc/sysconfig/network-scripts/ifcfg-eth0.126",
        "/etc/sysconfig/network-scripts/ifcfg-brmgmt",
    ]
    scripts = "/etc/sysconfig/network-scripts/ifcfg-"
    assert variables(files[scripts + "eth1"]) == {
        "DEVICE": "eth1",
        "ONBOOT": "yes",
        "BOOTPROTO": "none",
        "BRIDGE": "brpublic",
    }
    assert variables(files[scripts + "brpublic"]) == {
        "DEVICE": "brpublic",
        "ONBOOT": "yes",
        "TYPE": "Bridge",
        "BOOTPROTO": "none",  # guests' bridge: the node has no address there
        "DELAY": "0",
        "STP": "off",
    }
    assert variables(files[scripts + "eth0.126"]) == {
        "DEVICE": "eth0.126",
        "ONBOOT": "yes",
        "VLAN": "yes",
        "BOOTPROTO": "none",
        "BRIDGE": "brmgmt",
    }
    assert variables(files[scripts + "brmgmt"])["BOOTPROTO"] == "dhcp"
    assert "network private (management, 10.5.126.0/24)" in files[scripts + "brmgmt"]
    node = by_path(renderer().node_files("node1.example.org", [PUBLIC]))
    assert scripts + "brpublic" in node and "/etc/collectd.conf" in node


@pytest.mark.parametrize(
    "network",
    [
        NodeNetwork("x", "guest", "eth1", "br0\nIPADDR=1.2.3.4", "10.0.0.0/24"),
        NodeNetwork("x", "guest", "eth1; reboot", "br0", "10.0.0.0/24"),
        NodeNetwork("x", "guest", "../etc", "br0", "10.0.0.0/24"),
        NodeNetwork('x"y', "guest", "eth1", "br0", "10.0.0.0/24"),
    ],
)
def test_no_value_can_add_a_line_or_escape_the_directory(network):
    with pytest.raises(RenderError, match="refusing to write"):
        renderer().network_files([network])


def test_two_networks_on_one_device_are_refused():
    other = NodeNetwork("other", "storage", "eth1", "brstorage", "10.6.0.0/24")
    with pytest.raises(RenderError, match="two networks want device eth1 on this node"):
        renderer().network_files([PUBLIC, other])


def test_the_enc_passes_the_networks_of_the_hosts_hardware_pool_and_above(dbsession, tree):
    rack = PoolFactory(name="rack", parent=tree["fedora"])
    NetworkFactory(
        name="public",
        bridge="brpublic",
        interface="eth1",
        cidr="209.132.181.0/24",
        hardware_pools=[tree["hardware"]],
    )
    NetworkFactory(
        name="private",
        kind="vlan",
        vlan_id=126,
        usage="management",
        bridge="brmgmt",
        interface="eth0",
        cidr="10.5.126.0/24",
        hardware_pools=[tree["fedora"]],
    )
    HostFactory(hostname="in-rack.example.org", pool=rack)
    HostFactory(hostname="in-redhat.example.org", pool=tree["redhat"])
    enc = EncService(
        ServiceContext(
            dbsession,
            Settings(database_url="", session_secret="", puppet=PuppetSettings.from_dict(PUPPET)),
        )
    )
    rack_scripts = enc.classify("in-rack.example.org").classes["fedoracloud::node"][
        "network_scripts"
    ]
    assert sorted(rack_scripts) == [
        "ifcfg-brmgmt",
        "ifcfg-brpublic",
        "ifcfg-eth0.126",
        "ifcfg-eth1",
    ]
    assert rack_scripts == {
        f.path.rsplit("/", 1)[1]: f.content for f in renderer().network_files([PRIVATE, PUBLIC])
    }
    redhat = enc.classify("in-redhat.example.org").classes["fedoracloud::node"]
    assert sorted(redhat["network_scripts"]) == ["ifcfg-brpublic", "ifcfg-eth1"]
