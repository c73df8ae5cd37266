"""The worker's VM actions and the event path, on libvirt's test driver (a fake host in a
``test:///…xml`` file, in-process): each task does its work on libvirt and the VM row
follows; lifecycle events and the reconcile keep rows current."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.demo import DemoHost, host_xml
from fedoracloud.models import HostState, Vm
from fedoracloud.services import Conflict
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.vm_events import apply_event, mark_unreachable, reconcile_host
from fedoracloud.services.vm_tasks import VmWork, domain_xml
from fedoracloud.services.vms import VmService, VmSpec
from fedoracloud.virt.connection import ConnectionPool
from fedoracloud.virt.events import EventListener, LifecycleEvent
from fedoracloud.virt.hypervisor import Hypervisor

from ..factories import HostFactory, VmFactory

SETTINGS = SimpleNamespace(extra={"fedoracloud.libvirt.domain_type": "test"})


@pytest.fixture
def pool() -> Any:
    connections = ConnectionPool(connect_timeout=5)
    yield connections
    connections.close_all()


@pytest.fixture
def fake_host(dbsession: Any, tree: dict[str, Any], tmp_path: Any) -> Any:
    path = tmp_path / "node.xml"
    path.write_bytes(
        host_xml(DemoHost("node.test", "fedora", "fedora-vms", HostState.AVAILABLE, ()), 1)
    )
    return HostFactory(pool=tree["fedora"], libvirt_uri=f"test://{path}", memory_mib=16384)


def _run(dbsession: Any, pool: Any, vm: Vm, action: str, **args: Any) -> str:
    service = VmService(ServiceContext.for_session(dbsession))
    task = service.request(vm, action, args)
    return VmWork(dbsession, SETTINGS, pool).run(task)


def test_the_lifecycle_on_the_test_driver(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    vm, task = VmService(ServiceContext.for_session(dbsession)).create(
        VmSpec.parse(
            {
                "name": "web01",
                "pool": tree["fedora-vms"].id,
                "vcpus": 1,
                "memory_mib": 512,
                "host": fake_host.id,
            }
        )
    )
    hv = Hypervisor(fake_host.libvirt_uri, pool)
    assert "defined on node" in VmWork(dbsession, SETTINGS, pool).run(task)
    assert vm.state == "stopped" and hv.state(vm.uuid).state == "stopped"
    assert "started on" in _run(dbsession, pool, vm, "start")
    assert vm.state == "running" and hv.state(vm.uuid).active
    _run(dbsession, pool, vm, "suspend")
    assert vm.state == "paused"
    _run(dbsession, pool, vm, "resume")
    assert vm.state == "running"
    _run(dbsession, pool, vm, "poweroff")
    assert vm.state == "stopped" and not hv.state(vm.uuid).active
    assert "deleted from" in _run(dbsession, pool, vm, "delete")
    assert dbsession.get(Vm, vm.id) is None
    assert not hv.exists(vm.uuid)


def test_a_failed_action_leaves_the_state_libvirt_reports(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="running", name="ghost")
    task = VmService(ServiceContext.for_session(dbsession)).request(vm, "suspend")
    with pytest.raises(Exception, match="no such domain"):
        VmWork(dbsession, SETTINGS, pool).run(task)
    assert vm.state == "stopped"  # libvirt has no such domain: it is not running
    assert "no such domain" in vm.state_reason


def test_the_xml_the_app_would_define(dbsession: Any, tree: dict[str, Any], fake_host: Any) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host, name="web02", vcpus=2)
    xml = domain_xml(dbsession, vm, SETTINGS)
    assert "<name>web02</name>" in xml and f"<uuid>{vm.uuid}</uuid>" in xml
    assert "<vcpu>2</vcpu>" in xml and 'type="vnc"' in xml


def test_a_disk_without_a_volume_is_refused_by_the_worker(
    dbsession: Any, tree: dict[str, Any], fake_host: Any
) -> None:
    from fedoracloud.models import VmDisk

    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host)
    vm.disks = [VmDisk(target_dev="vda", size_gib=10)]
    with pytest.raises(Conflict, match="has no volume yet"):
        domain_xml(dbsession, vm, SETTINGS)


def _event(host: Any, vm: Vm, event: str, detail: str, state: str | None) -> LifecycleEvent:
    return LifecycleEvent(host.libvirt_uri, vm.uuid, vm.name, event, detail, state, time.time())


def test_events_set_the_state(dbsession: Any, tree: dict[str, Any], fake_host: Any) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="creating")
    assert apply_event(dbsession, _event(fake_host, vm, "started", "booted", "running"))
    assert vm.state == "running" and vm.state_reason == "started (booted)"
    other = HostFactory(pool=tree["fedora"])
    # a stale copy on another host does not decide
    assert apply_event(dbsession, _event(other, vm, "stopped", "destroyed", "stopped")) is None
    # a migration: the source lets go (ignored), the destination takes over
    vm.state = "migrating"
    assert apply_event(dbsession, _event(fake_host, vm, "stopped", "migrated", None)) is None
    assert apply_event(dbsession, _event(other, vm, "resumed", "migrated", "running"))
    assert (vm.host_id, vm.state) == (other.id, "running")
    # undefined behind our back: marked, not deleted
    assert apply_event(dbsession, _event(other, vm, "undefined", "removed", None)) == "unknown"
    assert "undefined on" in vm.state_reason


def test_reconcile_imports_marks_and_updates(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    hv = Hypervisor(fake_host.libvirt_uri, pool)
    known = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="stopped", name="known")
    hv.define(domain_xml(dbsession, known, SETTINGS))
    hv.start(known.uuid)
    stranger = VmFactory.build(name="stranger", vcpus=1, memory_mib=256)
    stranger.disks, stranger.nics = [], []
    stranger_xml = domain_xml(dbsession, stranger, SETTINGS)
    hv.define(stranger_xml)
    vanished = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="running", name="gone")
    counts = reconcile_host(dbsession, fake_host, hv)
    assert counts == {"updated": 1, "imported": 1, "vanished": 1}
    assert known.state == "running"
    imported = dbsession.scalar(select(Vm).where(Vm.uuid == stranger.uuid))
    assert (imported.managed, imported.pool.name, imported.state) == (False, "unmanaged", "stopped")
    assert dbsession.get(Vm, vanished.id).state == "unknown"
    assert fake_host.free_memory_mib is not None and fake_host.cpu_count == 8


def test_an_unreachable_host(dbsession: Any, tree: dict[str, Any], pool: Any) -> None:
    host = HostFactory(pool=tree["fedora"], libvirt_uri="test:///nonexistent/node.xml")
    vm = VmFactory(pool=tree["fedora-vms"], host=host, state="running")
    reconcile_host(dbsession, host, Hypervisor(host.libvirt_uri, pool))
    assert (host.state, vm.state) == ("unavailable", "unknown")
    mark_unreachable(dbsession, host, "again")
    assert host.state == "unavailable"


def test_a_host_that_returns_is_reconciled(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    hv = Hypervisor(fake_host.libvirt_uri, pool)
    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="stopped", name="back")
    hv.define(domain_xml(dbsession, vm, SETTINGS))
    hv.start(vm.uuid)
    mark_unreachable(dbsession, fake_host, "keepalive timeout")
    assert (fake_host.state, vm.state) == ("unavailable", "unknown")
    reconcile_host(dbsession, fake_host, hv)
    assert (fake_host.state, fake_host.state_reason, vm.state) == ("available", "", "running")


def test_a_real_event_from_the_test_driver(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    vm = VmFactory(pool=tree["fedora-vms"], host=fake_host, state="creating")
    seen: list[LifecycleEvent] = []
    listener = EventListener(fake_host.libvirt_uri, seen.append, pool=pool).start()
    try:
        assert listener.wait_connected(5)
        hv = Hypervisor(fake_host.libvirt_uri, pool)
        hv.define(domain_xml(dbsession, vm, SETTINGS))
        hv.start(vm.uuid)
        deadline = time.monotonic() + 5
        while not any(e.event == "started" for e in seen) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        listener.stop()
    started = next(e for e in seen if e.event == "started")
    apply_event(dbsession, started)
    assert vm.state == "running"


def test_a_periodic_pass_leaves_unchanged_facts_alone(
    dbsession: Any, tree: dict[str, Any], fake_host: Any, pool: Any
) -> None:
    from fedoracloud.services.vm_events import apply_reconcile, read_host

    hv = Hypervisor(fake_host.libvirt_uri, pool)
    apply_reconcile(dbsession, fake_host, *read_host(hv))  # full: CPU and NIC rows written
    cpus = [c.id for c in fake_host.cpus]
    seen = fake_host.last_seen_at
    apply_reconcile(dbsession, fake_host, *read_host(hv), full=False)
    assert [c.id for c in fake_host.cpus] == cpus and fake_host.last_seen_at >= seen
    fake_host.memory_mib = 1  # the host changed: its rows are rewritten
    apply_reconcile(dbsession, fake_host, *read_host(hv), full=False)
    assert fake_host.memory_mib == 16384
