"""An approved VM request end to end: on libvirt's test driver (a fake host with a dir
storage pool) with the loopback Cobbler over XML-RPC.  The VM gets its volume, MAC, IP
and Cobbler system and runs; when Cobbler goes away mid-way everything made is undone,
the request says why, and a retry works."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from sqlalchemy import func, select

from fedoracloud import cobbler
from fedoracloud.demo import fake_host_xml
from fedoracloud.models import (
    AuditEvent,
    IpAddress,
    IpPool,
    Network,
    RoleGrant,
    StoragePool,
    StorageVolume,
    Task,
    User,
    Vm,
    VmRequest,
)
from fedoracloud.services.cobbler import ProfileService
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.vm_requests import (
    ProvisioningFailed,
    VmRequestInput,
    VmRequestService,
    run_provision,
)
from fedoracloud.virt.hypervisor import Hypervisor
from fedoracloud.virt.storage import StorageHost

from ..cobbler_server import FakeCobbler
from ..factories import HostFactory, UserFactory

pytestmark = pytest.mark.integration

LIBVIRT = {"fedoracloud.libvirt.domain_type": "test"}


class Who:
    def __init__(self, user: Any) -> None:
        self.user = user


def host_file(tmp_path: Any) -> str:
    """A fake host with a ``dir`` storage pool named vmdisks."""
    node = ET.fromstring(fake_host_xml(7, ()))  # noqa: S314 - our own XML
    pool = ET.SubElement(node, "pool", type="dir")
    ET.SubElement(pool, "name").text = "vmdisks"
    ET.SubElement(pool, "uuid").text = str(uuid.uuid4())
    ET.SubElement(pool, "capacity", unit="GiB").text = "500"
    ET.SubElement(pool, "available", unit="GiB").text = "500"
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = "/vmdisks"
    path = tmp_path / "node-with-storage.xml"
    path.write_bytes(ET.tostring(node))
    return f"test://{path}"


@pytest.fixture
def fake_cobbler():
    with FakeCobbler() as server:
        server.add_profile("Fedora-40-x86_64")
        previous = cobbler.configure(
            cobbler.CobblerSettings(
                url=server.url, username="cobbler", password="cobbler-password", timeout=3
            )
        )
        try:
            yield server
        finally:
            cobbler.configure(previous)


def build_world(db: Any, fedora: Any, vm_pool: Any, tmp_path: Any) -> dict[str, Any]:
    """fedora's VM pool on a fake host with storage, a guest network with 3 public
    addresses, the profile allowed on fedora, jdoe with the user role there."""
    uri = host_file(tmp_path)
    HostFactory._meta.sqlalchemy_session = db
    UserFactory._meta.sqlalchemy_session = db
    host = HostFactory(pool=fedora, libvirt_uri=uri, memory_mib=16384, cpu_count=8)
    storage = StoragePool(name="vmdisks", kind="dir", target_path="/vmdisks")
    storage.hardware_pools.append(fedora)
    db.add(storage)
    network = Network(name="public", bridge="br0", cidr="209.132.181.0/24", usage="guest")
    network.hardware_pools.append(fedora)
    db.add(network)
    db.flush()
    ip_pool = IpPool(
        network_id=network.id,
        name="public-ips",
        first_address="209.132.181.20",
        last_address="209.132.181.22",
    )
    db.add(ip_pool)
    db.flush()
    for last in (20, 21, 22):
        db.add(IpAddress(ip_pool_id=ip_pool.id, address=f"209.132.181.{last}"))
    profiles = ProfileService(ServiceContext.for_session(db))
    profiles.refresh(cobbler.client())
    profile = profiles.all()[0]
    profiles.set_allowed(fedora, [profile.id])
    jdoe = UserFactory(username="jdoe")
    admin = UserFactory(username="boss")
    db.add(RoleGrant(pool_id=fedora.id, user_id=jdoe.id, role="user"))
    db.flush()
    return {
        "host": host,
        "network": network,
        "profile": profile,
        "jdoe": jdoe,
        "admin": admin,
        "pool": vm_pool,
        "storage": storage,
    }


@pytest.fixture
def world(dbsession, tree, tmp_path, fake_cobbler):
    return build_world(dbsession, tree["fedora"], tree["fedora-vms"], tmp_path)


def ask(dbsession, world, name="web01", **changes):
    body = {
        "name": name,
        "pool": world["pool"].id,
        "profile": world["profile"].id,
        "vcpus": 2,
        "memory_mib": 2048,
        "storage_gib": 10,
        "network": world["network"].id,
        "reason": "a web server for the docs team",
        **changes,
    }
    service = VmRequestService(ServiceContext.for_session(dbsession, Who(world["jdoe"])))
    return service.submit(world["jdoe"], VmRequestInput.parse(body))


def approve(dbsession, world, req):
    service = VmRequestService(ServiceContext.for_session(dbsession, Who(world["admin"])))
    task = service.approve(req, Who(world["admin"]))
    task.args = {"libvirt": LIBVIRT}
    return task


def test_an_approved_request_is_provisioned_and_running(dbsession, world, fake_cobbler):
    req = ask(dbsession, world)
    task = approve(dbsession, world, req)
    assert req.state == "approved"
    message = run_provision(task, dbsession)
    assert req.state == "provisioned", req.failure_reason
    vm = dbsession.get(Vm, req.vm_id)
    assert vm.state == "running" and vm.created_by_id == world["jdoe"].id
    assert vm.boot_order == "network,hd" and vm.boot_profile == "Fedora-40-x86_64"
    hv = Hypervisor(world["host"].libvirt_uri)
    assert hv.state(vm.uuid).active
    assert hv.spec(vm.uuid).boot[0] == "network"
    nic = vm.nics[0]
    ip = dbsession.scalar(select(IpAddress.address).where(IpAddress.vm_nic_id == nic.id))
    assert ip == "209.132.181.20"
    system = fake_cobbler.state.systems[vm.uuid]
    assert system["profile"] == "Fedora-40-x86_64"
    assert system["owners"] == ["jdoe"]
    assert system["netboot_enabled"] is True
    assert system["hostname"] == "web01"
    assert system["interfaces"]["eth0"] == {
        "macaddress": nic.mac,
        "ipaddress": ip,
        "dns_name": "web01",
    }
    assert fake_cobbler.state.syncs == 1
    disk = vm.disks[0]
    volume = dbsession.get(StorageVolume, disk.volume_id)
    assert volume.capacity_bytes == 10 * 2**30
    names = [v.name for v in StorageHost(world["host"].libvirt_uri).volumes("vmdisks")]
    assert volume.name in names
    assert "provisioned on" in message and "Cobbler system" in message
    acted = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.action == "cobbler.system.create")
    ).one()
    assert acted.after["acting_for"] == "jdoe" and acted.after["cobbler_account"] == "cobbler"
    assert acted.username == "boss"


def test_cobbler_down_mid_way_undoes_everything_and_a_retry_works(dbsession, world, fake_cobbler):
    req = ask(dbsession, world)
    task = approve(dbsession, world, req)
    fake_cobbler.fail_on = {"sync"}  # the system is saved, then Cobbler goes away
    with pytest.raises(ProvisioningFailed, match="everything made was undone") as failed:
        run_provision(task, dbsession)
    assert "Cobbler is unavailable: 503" in failed.value.message
    assert req.state == "failed"
    assert "503" in req.failure_reason
    assert dbsession.scalar(select(func.count(Vm.id)).where(Vm.name == "web01")) == 0
    assert (
        dbsession.scalar(select(func.count(IpAddress.id)).where(IpAddress.vm_nic_id.is_not(None)))
        == 0
    )
    assert fake_cobbler.state.systems == {}
    vm_uuid = str(
        uuid.uuid5(uuid.UUID("0f3c2d6e-8a41-4b8e-b7a5-fedc10d0c0bb"), f"vm-request:{req.id}")
    )
    assert not Hypervisor(world["host"].libvirt_uri).exists(vm_uuid)
    assert StorageHost(world["host"].libvirt_uri).volumes("vmdisks") == []
    assert dbsession.scalar(select(func.count(StorageVolume.id))) == 0

    fake_cobbler.fail_on = set()
    service = VmRequestService(ServiceContext.for_session(dbsession, Who(world["admin"])))
    retry = service.retry(req)
    retry.args = {"libvirt": LIBVIRT}
    run_provision(retry, dbsession)
    assert req.state == "provisioned" and req.failure_reason == ""
    assert list(fake_cobbler.state.systems) == [vm_uuid]
    assert Hypervisor(world["host"].libvirt_uri).state(vm_uuid).active


def test_cobbler_refusing_the_connection_fails_cleanly(dbsession, world, fake_cobbler):
    req = ask(dbsession, world)
    task = approve(dbsession, world, req)
    fake_cobbler.stop()
    with pytest.raises(ProvisioningFailed, match="refused the connection"):
        run_provision(task, dbsession)
    assert req.state == "failed" and "refused the connection" in req.failure_reason
    assert StorageHost(world["host"].libvirt_uri).volumes("vmdisks") == []
    assert dbsession.scalar(select(func.count(Vm.id))) == 0


def test_without_cobbler_the_vm_is_made_with_a_note(dbsession, world, fake_cobbler):
    req = ask(dbsession, world)
    task = approve(dbsession, world, req)
    cobbler.configure(cobbler.CobblerSettings())
    message = run_provision(task, dbsession)
    assert req.state == "provisioned"
    assert "no Cobbler is linked" in message
    assert fake_cobbler.state.systems == {}


def test_deleting_the_vm_removes_its_cobbler_system(dbsession, world, fake_cobbler):
    from types import SimpleNamespace

    from fedoracloud.services.vm_tasks import VmWork
    from fedoracloud.services.vms import VmService

    req = ask(dbsession, world)
    run_provision(approve(dbsession, world, req), dbsession)
    vm = dbsession.get(Vm, req.vm_id)
    uuid_ = vm.uuid
    vms = VmService(ServiceContext.for_session(dbsession, Who(world["admin"])))
    VmWork(dbsession, SimpleNamespace(extra=LIBVIRT)).run(vms.request(vm, "poweroff"))
    VmWork(dbsession, SimpleNamespace(extra=LIBVIRT)).run(vms.request(vm, "delete"))
    assert uuid_ not in fake_cobbler.state.systems
    assert (
        dbsession.scalar(select(func.count(IpAddress.id)).where(IpAddress.vm_nic_id.is_not(None)))
        == 0
    )


def test_through_the_task_runner_a_failure_is_recorded_and_retried(
    migrated_database, tmp_path, fake_cobbler
):
    """The worker's path: the handler's transaction is rolled back, yet the request says
    why (written after the rollback); the task failed with the reason, not retried by
    itself; the retry an admin asks for runs to the end."""
    from fedoracloud.models import PoolKind, get_engine, get_session_factory
    from fedoracloud.services.pools import PoolService
    from fedoracloud.services.tasks import TaskRunner

    settings = {"sqlalchemy.url": migrated_database}
    engine = get_engine(settings)
    factory = get_session_factory(engine)
    try:
        with factory() as db:
            pools = PoolService(ServiceContext.for_session(db))
            made = pools.ensure_builtin()
            fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
            vm_pool = pools.create("fedora-vms", PoolKind.VM, fedora)
            world = build_world(db, fedora, vm_pool, tmp_path)
            req = ask(db, world)
            task = approve(db, world, req)
            req_id, task_id, admin_id = req.id, task.id, world["admin"].id
            uri = world["host"].libvirt_uri
            db.commit()
        fake_cobbler.fail_on = {"save_system"}
        runner = TaskRunner(factory)
        assert runner.run(task_id) == "failed"
        with factory() as db:
            req = db.get(VmRequest, req_id)
            task = db.get(Task, task_id)
            assert req.state == "failed" and "503" in req.failure_reason
            assert task.state == "failed" and task.attempts == 1
            assert "everything made was undone" in task.message
            assert db.scalar(select(func.count(Vm.id))) == 0
            assert db.scalar(select(func.count(StorageVolume.id))) == 0
            assert (
                db.scalars(select(AuditEvent).where(AuditEvent.action == "vm_request.failed"))
                .one()
                .after["reason"]
                == req.failure_reason
            )
            retry = VmRequestService(
                ServiceContext.for_session(db, Who(db.get(User, admin_id)))
            ).retry(req)
            retry.args = {"libvirt": LIBVIRT}
            retry_id = retry.id
            db.commit()
        assert StorageHost(uri).volumes("vmdisks") == []
        fake_cobbler.fail_on = set()
        assert runner.run(retry_id) == "finished"
        with factory() as db:
            req = db.get(VmRequest, req_id)
            assert req.state == "provisioned" and req.failure_reason == ""
            assert db.get(Vm, req.vm_id).state == "running"
    finally:
        engine.dispose()


def test_an_admin_creating_a_vm_with_a_profile_gets_its_cobbler_system(
    dbsession, world, fake_cobbler
):
    from types import SimpleNamespace

    from fedoracloud.services import InvalidInput
    from fedoracloud.services.vm_tasks import VmWork
    from fedoracloud.services.vms import VmService, VmSpec

    vms = VmService(ServiceContext.for_session(dbsession, Who(world["admin"])))
    body = {
        "name": "direct01",
        "pool": world["pool"].id,
        "vcpus": 1,
        "memory_mib": 512,
        "nics": [{"network": world["network"].id}],
        "profile": world["profile"].id,
    }
    with pytest.raises(InvalidInput, match="needs a NIC"):
        vms.create(VmSpec.parse({**body, "nics": []}))
    with pytest.raises(InvalidInput, match='put "network" in its boot order'):
        VmSpec.parse({**body, "boot": {"order": ["hd"]}})
    vm, task = vms.create(VmSpec.parse(body))
    assert vm.boot_order == "network,hd" and vm.boot_profile == "Fedora-40-x86_64"
    VmWork(dbsession, SimpleNamespace(extra=LIBVIRT)).run(task)
    system = fake_cobbler.state.systems[vm.uuid]
    assert system["owners"] == ["boss"] and system["netboot_enabled"] is True
    assert system["interfaces"]["eth0"]["macaddress"] == vm.nics[0].mac
    VmWork(dbsession, SimpleNamespace(extra=LIBVIRT)).run(vms.request(vm, "delete"))
    assert vm.uuid not in fake_cobbler.state.systems
