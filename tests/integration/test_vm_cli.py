"""``fedoracloud vm list|show|xml`` on the demo, as a user runs them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from .test_cli import fc, write_ini

pytestmark = pytest.mark.integration


def test_vm_commands_on_the_demo(tmp_path, empty_database):
    ini = write_ini(tmp_path, empty_database, **{"fedoracloud.libvirt.domain_type": "qemu"})
    assert fc(ini, "demo").returncode == 0
    listing = fc(ini, "vm", "list")
    assert listing.returncode == 0, listing.stderr
    assert "koji-builder01" in listing.stdout and "node04.cloud.fedoraproject.org" in listing.stdout
    shown = fc(ini, "vm", "show", "koji-builder01")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["vcpus"], data["memory_mib"]) == (4, 4096)
    assert data["pool"] == "root/hardware/fedora/fedora-builders"
    assert "migrate" in data["allowed_actions"] or "start" in data["allowed_actions"]
    xml = fc(ini, "vm", "xml", data["uuid"])
    assert xml.returncode == 0, xml.stderr
    domain = ET.fromstring(xml.stdout)  # noqa: S314 - our own output
    assert domain.get("type") == "qemu"
    assert (domain.findtext("name"), domain.findtext("uuid")) == ("koji-builder01", data["uuid"])
    assert domain.find("./devices/graphics").get("autoport") == "yes"
    missing = fc(ini, "vm", "show", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "fedoracloud: error: no VM 'nope'"
