"""The libvirt contract: the same tests against libvirt's test driver and a real libvirtd.

Each test gets a ``backend`` (a Hypervisor plus what the host can do); the ``real`` one is
the machine's libvirtd booting the tiny TCG guest, marked integration.  What a service
relies on (lifecycle, states, events, XML round trip, facts, errors) must hold on both.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fedoracloud.virt.connection import ConnectionPool, VirtError
from fedoracloud.virt.domain import (
    DiskSpec,
    DomainSpec,
    GraphicsSpec,
    InvalidDomainSpec,
    NicSpec,
    build_domain_xml,
    new_mac,
    parse_domain_xml,
)
from fedoracloud.virt.events import EventListener, LifecycleEvent
from fedoracloud.virt.hypervisor import Hypervisor, NoSuchDomain

from ..libvirtd import BOOTED, TICK, Guest, read_serial, ticks, wait_for_serial

TEST_GUEST = Guest("/boot/fc-test-vmlinuz", "/boot/fc-test-initrd.img")


@dataclass
class Backend:
    """A host under test: its Hypervisor, its event stream, and what it can prove."""

    kind: str
    hv: Hypervisor
    events: queue.Queue[LifecycleEvent]
    guest: Guest
    log_dir: str

    @property
    def boots(self) -> bool:
        """Whether guests really run (and print on their console) on this host."""
        return self.kind == "real"

    def spec(self, name: str, **overrides: Any) -> DomainSpec:
        """The tiny guest under this name, with its console logged in the test's dir."""
        return self.guest.spec(name, os.path.join(self.log_dir, f"{name}.log"), **overrides)

    def wait_event(self, uuid: str, event: str, timeout: float = 5) -> LifecycleEvent:
        """The next event of that kind for that domain (others are skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = self.events.get(timeout=left)
            except queue.Empty:
                break
            if got.domain_uuid == uuid and got.event == event:
                return got
        pytest.fail(f"no {event!r} event for {uuid} within {timeout} s")


def _test_host_xml(path: str) -> None:
    """A fake host for the test driver: 2 sockets x 4 cores, 16 GiB, one NIC."""
    with open(path, "w") as out:
        out.write(
            "<node><cpu><mhz>2660</mhz><model>x86_64</model><active>8</active>"
            "<total>8</total><nodes>1</nodes><sockets>2</sockets><cores>4</cores>"
            "<threads>1</threads></cpu><memory>16777216</memory>"
            "<interface type='ethernet' name='eth0'><start mode='onboot'/>"
            "<mac address='52:54:00:fc:00:01'/><protocol family='ipv4'>"
            "<ip address='10.5.126.20' prefix='24'/></protocol></interface></node>\n"
        )


@pytest.fixture(scope="module")
def contract_pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool()
    yield pool
    pool.close_all()


@pytest.fixture(
    params=["test", pytest.param("real", marks=pytest.mark.integration)],
)
def backend(
    request: Any, contract_pool: ConnectionPool, tmp_path: Any, libvirt_domains: Any
) -> Iterator[Backend]:
    if request.param == "test":
        path = str(tmp_path / "host.xml")
        _test_host_xml(path)
        uri, guest = f"test://{path}", TEST_GUEST
    else:
        uri = request.getfixturevalue("real_libvirt")
        guest = request.getfixturevalue("tcg_guest")
    events: queue.Queue[LifecycleEvent] = queue.Queue()
    listener = EventListener(uri, events.put, pool=contract_pool).start()
    assert listener.wait_connected(10), f"no event registration on {uri}"
    try:
        yield Backend(request.param, Hypervisor(uri, contract_pool), events, guest, str(tmp_path))
    finally:
        listener.stop()


def test_lifecycle_define_start_suspend_resume_destroy_undefine(backend, libvirt_domains):
    name = libvirt_domains.new()
    spec = backend.spec(name)
    defined = backend.hv.define(spec)
    assert (defined.name, defined.uuid, defined.state) == (name, spec.uuid, "stopped")
    assert (defined.vcpus, defined.memory_mib) == (1, 128)
    assert backend.hv.state(spec.uuid).state == "stopped"

    started = time.time()
    backend.hv.start(spec.uuid)
    running = backend.wait_event(spec.uuid, "started")
    assert running.state == "running"
    assert running.timestamp >= started, "the running event is older than the start"
    assert backend.hv.state(spec.uuid).state == "running"
    assert [d.state for d in backend.hv.domains() if d.uuid == spec.uuid] == ["running"]
    if backend.boots:
        log = os.path.join(backend.log_dir, f"{name}.log")
        wait_for_serial(log, BOOTED)
        wait_for_serial(log, TICK)

    backend.hv.suspend(spec.uuid)
    assert backend.wait_event(spec.uuid, "suspended").state == "paused"
    assert backend.hv.state(spec.uuid).state == "paused"
    backend.hv.resume(spec.uuid)
    assert backend.wait_event(spec.uuid, "resumed").state == "running"
    backend.hv.reboot(spec.uuid)  # ACPI: accepted; the busybox guest ignores it
    assert backend.hv.state(spec.uuid).state == "running"

    # ACPI shutdown: the test driver's guests obey at once; the busybox guest has no
    # ACPI daemon and ignores it, so the user powers it off (what the UI offers next)
    backend.hv.shutdown(spec.uuid)
    if backend.hv.state(spec.uuid).active:
        backend.hv.destroy(spec.uuid)
    stopped = backend.wait_event(spec.uuid, "stopped")
    assert stopped.state == "stopped"
    assert stopped.detail == ("destroyed" if backend.boots else "shutdown")
    assert backend.hv.state(spec.uuid).state == "stopped"

    backend.hv.undefine(spec.uuid)
    assert backend.wait_event(spec.uuid, "undefined").state is None
    assert not backend.hv.exists(spec.uuid)
    assert spec.uuid not in [d.uuid for d in backend.hv.domains()]


def test_save_and_restore_keep_the_guest_running(backend, libvirt_domains, tmp_path):
    name = libvirt_domains.new()
    spec = backend.spec(name)
    backend.hv.define(spec)
    backend.hv.start(spec.uuid)
    log = os.path.join(backend.log_dir, f"{name}.log")
    if backend.boots:
        wait_for_serial(log, TICK)
    saved = str(tmp_path / "saved.img")
    backend.hv.save(spec.uuid, saved)
    assert backend.wait_event(spec.uuid, "stopped").state == "saved"
    assert backend.hv.state(spec.uuid).state == "stopped"
    assert os.path.getsize(saved) > 0
    before = ticks(log)
    backend.hv.restore(saved)
    assert backend.wait_event(spec.uuid, "started").detail == "restored"
    assert backend.hv.state(spec.uuid).state == "running"
    if backend.boots:
        deadline = time.monotonic() + 10
        while len(ticks(log)) <= len(before) and time.monotonic() < deadline:
            time.sleep(0.2)
        after = ticks(log)
        assert after[-1][0] > before[-1][0], "the guest did not go on ticking after restore"
        assert {boot for _n, boot in after} == {before[0][1]}, "the guest rebooted"
        assert read_serial(log).count("FEDORACLOUD-GUEST-BOOTED") == 1
    backend.hv.destroy(spec.uuid)
    backend.hv.undefine(spec.uuid)


def test_xml_round_trip(backend, libvirt_domains):
    name = libvirt_domains.new()
    spec = backend.spec(
        name,
        vcpus=2,
        memory_mib=256,
        boot=("network", "hd"),
        disks=(
            DiskSpec(
                "sda", "/var/lib/libvirt/images/boot.iso", device="cdrom", bus="sata", readonly=True
            ),
            DiskSpec("vda", "/var/lib/libvirt/images/fc-test-root.img", format="qcow2"),
            DiskSpec(
                "vdb",
                "iqn.2026-11.org.fedoraproject:store/1",
                kind="network",
                protocol="iscsi",
                host="10.5.127.10",
                port=3260,
            ),
        ),
        nics=(NicSpec(new_mac(), bridge="br0"), NicSpec(new_mac(), network="default")),
        graphics=GraphicsSpec("10.5.126.20"),
    )
    backend.hv.define(spec)
    assert backend.hv.spec(spec.uuid) == spec
    assert parse_domain_xml(backend.hv.xml(spec.uuid)).nics == spec.nics
    backend.hv.undefine(spec.uuid)


def test_facts_and_free_memory(backend, libvirt_domains):
    name = libvirt_domains.new()
    spec = backend.spec(name)
    backend.hv.define(spec)
    facts = backend.hv.facts()
    assert facts.arch in ("x86_64", "i686")
    assert facts.memory_mib > 0
    assert len(facts.cpus) >= 1
    assert facts.libvirt_version.startswith("9.")
    assert any(d.uuid == spec.uuid and d.state == "stopped" for d in facts.domains)
    assert 0 < backend.hv.free_memory_mib() <= facts.memory_mib
    if backend.kind == "test":
        assert [n.name for n in facts.nics] == ["eth0"]
        assert (facts.memory_mib, len(facts.cpus)) == (16384, 8)
    else:
        assert facts.hypervisor == "qemu"
        assert facts.uuid
    backend.hv.undefine(spec.uuid)


def test_refusals_are_clear_and_define_nothing(backend, libvirt_domains):
    name = libvirt_domains.new()
    spec = backend.spec(name)
    with pytest.raises(NoSuchDomain, match="no such domain"):
        backend.hv.start(spec.uuid)
    for bad in ("<evil>", "a'b", "a/b", "x" * 300, ""):
        with pytest.raises(InvalidDomainSpec, match="invalid VM name"):
            backend.hv.define(backend.spec(bad))
    with pytest.raises(InvalidDomainSpec, match="invalid VM name"):
        backend.hv.define(build_domain_xml(spec).replace(f">{name}<", ">../../etc<"))
    with pytest.raises(InvalidDomainSpec, match="not domain XML"):
        backend.hv.define("<network><name>default</name></network>")
    assert not [d for d in backend.hv.domains() if d.name in ("<evil>", "a'b", "a/b")]
    backend.hv.define(spec)
    with pytest.raises(VirtError, match="not running"):
        backend.hv.suspend(spec.uuid)
    backend.hv.undefine(spec.uuid)
