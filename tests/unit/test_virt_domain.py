"""Domain XML: every generated document passes libvirt's own schema check
(``virt-xml-validate``), reads back to the same spec, and bad input is refused clearly."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from fedoracloud.virt.domain import (
    MAC_PREFIX,
    DirectBoot,
    DiskSpec,
    DomainSpec,
    GraphicsSpec,
    InvalidDomainSpec,
    NicSpec,
    SerialSpec,
    build_domain_xml,
    new_mac,
    parse_domain_xml,
    validate_mac,
    validate_name,
    validate_spec,
)

SPECS = {
    "minimal": DomainSpec(name="web01", vcpus=1, memory_mib=512),
    "production": DomainSpec(
        name="koji-builder.07",
        vcpus=4,
        memory_mib=8192,
        virt_type="kvm",
        boot=("network", "hd", "cdrom"),
        disks=(
            DiskSpec(
                "hdc", "/var/lib/libvirt/images/f40.iso", device="cdrom", bus="ide", readonly=True
            ),
            DiskSpec("vda", "/dev/vg_guests/koji07", kind="block"),
            DiskSpec("vdb", "/var/lib/libvirt/images/koji07-data.qcow2", format="qcow2"),
            DiskSpec(
                "vdc",
                "iqn.2009-01.org.fedoraproject:storage01/3",
                kind="network",
                protocol="iscsi",
                host="storage01.fedoraproject.org",
                port=3260,
            ),
        ),
        nics=(
            NicSpec("52:54:00:AB:cd:01", bridge="br-guest"),
            NicSpec("52:54:00:ab:cd:02", network="default", model="e1000"),
        ),
        graphics=GraphicsSpec("10.5.126.21"),
        serial=SerialSpec(),
    ),
    "test-guest": DomainSpec(
        name="fc-test-1",
        vcpus=1,
        memory_mib=128,
        virt_type="qemu",
        direct_boot=DirectBoot(
            "/var/cache/fedoracloud-test/guest/vmlinuz",
            "/var/cache/fedoracloud-test/guest/initrd.img",
            "console=ttyS0 panic=-1 quiet",
        ),
        serial=SerialSpec("/var/log/libvirt/qemu/fc-test-1-serial.log"),
        graphics=GraphicsSpec("::1"),
    ),
    "headless": DomainSpec(name="n", vcpus=2, memory_mib=16, serial=None, boot=("network",)),
}


@pytest.mark.parametrize("which", sorted(SPECS))
def test_generated_xml_passes_virt_xml_validate(which, tmp_path):
    path = tmp_path / f"{which}.xml"
    path.write_text(build_domain_xml(SPECS[which]))
    proc = subprocess.run(
        ["virt-xml-validate", str(path), "domain"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("which", sorted(SPECS))
def test_xml_reads_back_to_the_same_spec(which):
    spec = SPECS[which]
    assert parse_domain_xml(build_domain_xml(spec)) == validate_spec(spec)


def test_what_the_xml_says():
    root = ET.fromstring(build_domain_xml(SPECS["production"]))  # noqa: S314
    assert root.get("type") == "kvm"
    assert root.findtext("name") == "koji-builder.07"
    assert root.find("memory").attrib == {"unit": "MiB"}
    assert [b.get("dev") for b in root.findall("os/boot")] == ["network", "hd", "cdrom"]
    assert [i.find("mac").get("address") for i in root.findall("devices/interface")] == [
        "52:54:00:ab:cd:01",
        "52:54:00:ab:cd:02",
    ]
    graphics = root.find("devices/graphics")
    assert (graphics.get("autoport"), graphics.get("listen")) == ("yes", "10.5.126.21")
    assert root.find("devices/serial").get("type") == "pty"
    assert root.find("devices/disk[@type='block']/source").get("dev") == "/dev/vg_guests/koji07"


def test_names_with_markup_quotes_or_slashes_never_reach_the_xml():
    for name in (
        "<a>",
        "a'b",
        'a"b',
        "a/b",
        "../etc",
        "x" * 65,
        "x" * 300,
        "",
        " a",
        "-a",
        "a b",
        "é",
    ):
        with pytest.raises(InvalidDomainSpec, match="invalid VM name"):
            build_domain_xml(DomainSpec(name=name, vcpus=1, memory_mib=128))
    assert validate_name("a" * 64) == "a" * 64
    assert validate_name("f40_x86-64.test") == "f40_x86-64.test"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vcpus": 0}, "invalid vCPU count"),
        ({"vcpus": 100000}, "invalid vCPU count"),
        ({"memory_mib": 0}, "invalid memory"),
        ({"memory_mib": 64 * 1024 * 1024}, "invalid memory"),
        ({"uuid": "not-a-uuid"}, "invalid UUID"),
        ({"virt_type": "xen"}, "invalid domain type"),
        ({"boot": ("floppy",)}, "invalid boot device"),
        ({"boot": ()}, "needs a boot device"),
        ({"disks": (DiskSpec("vda", "/var/lib/../../etc/shadow"),)}, "without '..'"),
        ({"disks": (DiskSpec("vda", "relative.img"),)}, "absolute path"),
        ({"disks": (DiskSpec("vda", "/x.img'/><evil"),)}, "invalid vda disk path"),
        ({"disks": (DiskSpec("vda", "/tmp/x.img", kind="block"),)}, "under /dev/"),
        ({"disks": (DiskSpec("xyz", "/a.img"),)}, "invalid disk target"),
        ({"disks": (DiskSpec("vda", "/a.img"), DiskSpec("vda", "/b.img"))}, "same target"),
        (
            {"disks": (DiskSpec("vda", "x", kind="network", protocol="http", host="h"),)},
            "invalid disk protocol",
        ),
        ({"nics": (NicSpec("52:54:00:00:00:0g", bridge="br0"),)}, "invalid MAC"),
        ({"nics": (NicSpec("01:00:5e:00:00:01", bridge="br0"),)}, "multicast"),
        ({"nics": (NicSpec("52:54:00:00:00:01"),)}, "either a bridge or a network"),
        ({"nics": (NicSpec("52:54:00:00:00:01", bridge="br0; rm"),)}, "invalid bridge"),
        (
            {
                "nics": (
                    NicSpec("52:54:00:00:00:01", bridge="br0"),
                    NicSpec("52:54:00:00:00:01", bridge="br1"),
                )
            },
            "same MAC",
        ),
        ({"graphics": GraphicsSpec("0.0.0.0; evil")}, "invalid VNC listen address"),
        ({"direct_boot": DirectBoot("/boot/vmlinuz", None, "quiet\nevil")}, "command line"),
        ({"serial": SerialSpec("/var/log/../x")}, "serial log path"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(change, message):
    spec = replace(DomainSpec(name="web01", vcpus=1, memory_mib=512), **change)
    with pytest.raises(InvalidDomainSpec, match=message):
        build_domain_xml(spec)


def test_new_macs_are_unicast_in_52_54_00_and_avoid_the_taken_ones(monkeypatch):
    macs = [new_mac() for _ in range(500)]
    assert all(m.startswith(MAC_PREFIX + ":") and validate_mac(m) == m for m in macs)

    draws = iter([b"\x00\x00\x01", b"\x00\x00\x02", b"\x01\x02\x03"])
    monkeypatch.setattr("fedoracloud.virt.domain.secrets.token_bytes", lambda n: next(draws))
    assert new_mac({"52:54:00:00:00:01", "52:54:00:00:00:02"}) == "52:54:00:01:02:03"
    monkeypatch.setattr("fedoracloud.virt.domain.secrets.token_bytes", lambda n: b"\0\0\1")
    with pytest.raises(InvalidDomainSpec, match="no free MAC"):
        new_mac({"52:54:00:00:00:01"}, attempts=50)


def test_parser_refuses_what_is_not_domain_xml():
    with pytest.raises(InvalidDomainSpec, match="not domain XML"):
        parse_domain_xml("<network><name>x</name></network>")
    with pytest.raises(InvalidDomainSpec, match="not domain XML"):
        parse_domain_xml("<domain")
