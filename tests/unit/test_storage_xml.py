"""Storage pool and volume XML: every kind passes libvirt's own schema check, and every
bad name, path, address, port, LUN or IQN is refused before any XML is made."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from fedoracloud.virt.storage import (
    InvalidStorageSpec,
    PoolSpec,
    VolumeSpec,
    build_pool_xml,
    build_volume_xml,
    lun_device_path,
    validate_host,
    validate_iqn,
    validate_lun,
    validate_port,
)

IQN = "iqn.2009-01.org.fedoraproject.cloud:storage01.lun1"

POOLS = {
    "dir": PoolSpec("images", "dir", target_path="/var/lib/fedoracloud/images"),
    "netfs": PoolSpec(
        "nfs", "netfs", host="10.5.126.30", source_path="/export/vms", target_path="/mnt/nfs"
    ),
    "iscsi": PoolSpec("master-lun1", "iscsi", host="10.5.126.31", port=3260, target_iqn=IQN),
    "iscsi-direct": PoolSpec(
        "master-direct",
        "iscsi-direct",
        host="storage01.cloud.fedoraproject.org",
        target_iqn=IQN,
        initiator_iqn="iqn.2009-01.org.fedoraproject.cloud:node01",
    ),
    "logical": PoolSpec(
        "vg-guests",
        "logical",
        volume_group="vg_guests",
        source_path=lun_device_path("10.5.126.31", 3260, IQN, 1),
    ),
}


def _validate(tmp_path, xml: str, kind: str) -> None:
    if shutil.which("virt-xml-validate") is None:
        pytest.fail("virt-xml-validate is missing: run scripts/install-system-packages")
    path = tmp_path / f"{kind}.xml"
    path.write_text(xml)
    proc = subprocess.run(
        ["virt-xml-validate", str(path), kind], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout + xml


@pytest.mark.parametrize("kind", list(POOLS))
def test_every_pool_kind_passes_virt_xml_validate(tmp_path, kind):
    xml = build_pool_xml(POOLS[kind])
    _validate(tmp_path, xml, "storagepool")
    assert ET.fromstring(xml).get("type") == kind  # noqa: S314


def test_pool_xml_says_what_the_spec_says():
    direct = ET.fromstring(build_pool_xml(POOLS["iscsi-direct"]))  # noqa: S314
    assert direct.find("source/host").attrib == {
        "name": "storage01.cloud.fedoraproject.org",
        "port": "3260",
    }
    assert direct.find("source/device").get("path") == IQN
    assert direct.find("source/initiator/iqn").get("name").endswith(":node01")
    lvm = ET.fromstring(build_pool_xml(POOLS["logical"]))  # noqa: S314
    assert lvm.find("source/name").text == "vg_guests"
    assert lvm.find("target/path").text == "/dev/vg_guests"
    assert lvm.find("source/device").get("path") == (
        f"/dev/disk/by-path/ip-10.5.126.31:3260-iscsi-{IQN}-lun-1"
    )
    nfs = ET.fromstring(build_pool_xml(POOLS["netfs"]))  # noqa: S314
    assert (nfs.find("source/dir").get("path"), nfs.find("source/format").get("type")) == (
        "/export/vms",
        "nfs",
    )


@pytest.mark.parametrize(
    "spec, kind",
    [
        (VolumeSpec("web01-vda", 10 * 2**30), "dir"),
        (VolumeSpec("web01-vdb.qcow2", 2**30, "qcow2"), "netfs"),
        (VolumeSpec("lv_web01", 20 * 2**30, allocation_bytes=20 * 2**30), "logical"),
    ],
)
def test_volume_xml_passes_virt_xml_validate(tmp_path, spec, kind):
    xml = build_volume_xml(spec, kind)
    _validate(tmp_path, xml, "storagevol")
    root = ET.fromstring(xml)  # noqa: S314
    assert root.find("capacity").text == str(spec.capacity_bytes)


@pytest.mark.parametrize(
    "name",
    [
        "iqn.2009-01.org.fedoraproject:storage01",
        "iqn.1992-08.com.netapp:sn.33615311",
        "iqn.2026-12.org.fedoraproject.cloud",
        "eui.02004567A425678D",
    ],
)
def test_rfc3720_names_are_accepted(name):
    assert validate_iqn(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("iqn.09-01.org.fedoraproject:x", "iqn.YYYY-MM"),
        ("iqn.2009-13.org.fedoraproject:x", "iqn.YYYY-MM"),
        ("iqn.2009-01.Org.Fedoraproject:x", "lower case"),
        ("iqn.2009-01.org..fedoraproject", "iqn.YYYY-MM"),
        ("iqn.2009-01.org.fedoraproject:has space", "iqn.YYYY-MM"),
        ("iqn.2009-01.org.fedoraproject:a'b\"<c>", "iqn.YYYY-MM"),
        ("eui.02004567A425678", "eui."),
        ("storage01", "iqn.YYYY-MM"),
        ("iqn.2009-01.org.x:" + "a" * 220, "at most 223 bytes"),
    ],
)
def test_malformed_iqns_are_refused_with_the_form(name, why):
    with pytest.raises(InvalidStorageSpec, match=why):
        validate_iqn(name)


@pytest.mark.parametrize("address", ["10.5.126.31", "::1", "storage01.fedoraproject.org"])
def test_portal_addresses(address):
    assert validate_host(address) == address


@pytest.mark.parametrize(
    "address", ["", "10.5.126.300", "storage 01", "-bad.example.org", "a/b", "x" * 64 + ".org"]
)
def test_malformed_portals_are_refused(address):
    with pytest.raises(InvalidStorageSpec, match="an IP address or a host name"):
        validate_host(address)


@pytest.mark.parametrize("port", [0, 65536, -1, True, "3260"])
def test_ports_out_of_range_are_refused(port):
    with pytest.raises(InvalidStorageSpec, match="1 to 65535"):
        validate_port(port)


@pytest.mark.parametrize("lun", [-1, 16384, 1.5, None])
def test_luns_out_of_range_are_refused(lun):
    with pytest.raises(InvalidStorageSpec, match="0 to 16383"):
        validate_lun(lun)


@pytest.mark.parametrize(
    "spec, message",
    [
        (PoolSpec("bad name", "dir", target_path="/x"), "invalid storage pool name"),
        (PoolSpec("p", "zfs", target_path="/x"), "invalid storage pool kind 'zfs'"),
        (PoolSpec("p", "dir", target_path="/var/../etc"), "without '..'"),
        (PoolSpec("p", "dir", target_path="relative/dir"), "an absolute path"),
        (PoolSpec("p", "dir", target_path="/x'/><evil/>"), "an absolute path"),
        (PoolSpec("p", "dir"), "needs a path"),
        (PoolSpec("p", "iscsi", host="10.0.0.1"), "a portal address and a target IQN"),
        (PoolSpec("p", "iscsi", host="10.0.0.1", target_iqn="nope"), "invalid target IQN"),
        (PoolSpec("p", "iscsi", host="10.0.0.1", port=70000, target_iqn=IQN), "1 to 65535"),
        (PoolSpec("p", "iscsi-direct", host="10.0.0.1", target_iqn=IQN), "an initiator IQN"),
        (PoolSpec("p", "netfs", host="10.0.0.1", target_path="/mnt"), "an export path"),
        (
            PoolSpec("p", "logical", volume_group="-vg", source_path="/dev/sdb"),
            "invalid volume group",
        ),
        (
            PoolSpec("p", "logical", volume_group="vg", source_path="/srv/disk.img"),
            "must be under /dev/",
        ),
    ],
)
def test_bad_pool_specs_are_refused(spec, message):
    with pytest.raises(InvalidStorageSpec, match=message):
        build_pool_xml(spec)


@pytest.mark.parametrize(
    "spec, kind, message",
    [
        (VolumeSpec("../etc/passwd", 2**30), "dir", "invalid volume name"),
        (VolumeSpec("web01", 0), "dir", "1 byte to 1 PiB"),
        (VolumeSpec("web01", 2**51), "dir", "1 byte to 1 PiB"),
        (VolumeSpec("web01", 2**30, "vmdk"), "dir", "raw, qcow2"),
        (VolumeSpec("web01", 2**30, "qcow2"), "logical", "an LVM volume is raw"),
        (VolumeSpec("web01", 2**30, allocation_bytes=2**31), "dir", "0 to its size"),
    ],
)
def test_bad_volume_specs_are_refused(spec, kind, message):
    with pytest.raises(InvalidStorageSpec, match=message):
        build_volume_xml(spec, kind)
