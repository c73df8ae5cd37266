"""Storage pools and volumes on real libvirt: the test driver's storage (every pool kind,
LVM included: no device-mapper here), a real libvirtd with a ``dir`` pool, and a VM whose
new disk its create task makes and whose delete removes it."""

from __future__ import annotations

import os
import secrets
from types import SimpleNamespace

import libvirt
import pytest
from sqlalchemy import select

from fedoracloud.models import StoragePool, StorageVolume, Vm
from fedoracloud.services import InvalidInput
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.storage import StorageService, run_pool_undefine
from fedoracloud.services.vm_tasks import VmWork
from fedoracloud.services.vms import VmService, VmSpec
from fedoracloud.virt.connection import ConnectionPool
from fedoracloud.virt.storage import StorageHost

from ..factories import HostFactory

pytestmark = pytest.mark.integration

GIB = 2**30
TEST_SETTINGS = SimpleNamespace(extra={"fedoracloud.libvirt.domain_type": "test"})


@pytest.fixture
def connections():
    pool = ConnectionPool(connect_timeout=10)
    yield pool
    pool.close_all()


@pytest.fixture
def fake_host(dbsession, tree):
    """An available host in fedora on libvirt's test driver (a fresh one per test)."""
    return HostFactory(pool=tree["fedora"], libvirt_uri="test:///default")


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _forget(connections: ConnectionPool, uri: str, *names: str) -> None:
    conn = connections.get(uri)
    for name in names:
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            continue
        if pool.isActive():
            for volume in pool.listAllVolumes(0):
                volume.delete(0)
            pool.destroy()
        pool.undefine()


def test_every_pool_kind_is_defined_and_refreshed_on_the_test_driver(
    dbsession, tree, fake_host, connections
):
    storage = StorageService(ServiceContext.for_session(dbsession), connections=connections)
    fedora = [tree["fedora"].id]
    bodies = {
        "dir": {"target_path": "/srv/fedoracloud/images"},
        "logical": {"volume_group": "vg_guests", "source_path": "/dev/sdb"},
        "iscsi": {
            "portal_address": "10.5.126.31",
            "target_iqn": "iqn.2009-01.org.fedoraproject:s1",
        },
        "iscsi-direct": {
            "portal_address": "10.5.126.31",
            "target_iqn": "iqn.2009-01.org.fedoraproject:s1",
        },
    }
    names = {kind: _name(f"fc-{kind}") for kind in bodies}
    try:
        for kind, body in bodies.items():
            pool, task = storage.create_pool(
                {"name": names[kind], "kind": kind, "hardware_pools": fedora, **body}
            )
            assert task is not None and task.kind == "storage.pool.define"
            message = storage.define_on_hosts(pool)
            assert message == f"{pool.name} defined and started on {fake_host.hostname}"
            conn = connections.get("test:///default")
            state, capacity, allocation, available = conn.storagePoolLookupByName(pool.name).info()
            assert state == libvirt.VIR_STORAGE_POOL_RUNNING
            assert (
                pool.state,
                pool.capacity_bytes,
                pool.allocation_bytes,
                pool.available_bytes,
            ) == ("active", capacity, allocation, available), kind
            assert storage.define_on_hosts(pool) == message  # defined already: fine
            if kind == "iscsi-direct":
                xml = conn.storagePoolLookupByName(pool.name).XMLDesc(0)
                assert f":{fake_host.hostname}'" in xml  # one initiator name per host
    finally:
        _forget(connections, "test:///default", *names.values())


def test_volumes_are_made_resized_listed_and_deleted_through_libvirt(
    dbsession, tree, fake_host, connections
):
    storage = StorageService(ServiceContext.for_session(dbsession), connections=connections)
    name = _name("fc-lvm")
    pool, _task = storage.create_pool(
        {
            "name": name,
            "kind": "logical",
            "volume_group": "vg_guests",
            "source_path": "/dev/sdb",
            "hardware_pools": [tree["fedora"].id],
        }
    )
    try:
        volume = storage.create_volume(pool, "lv_web01", 4 * GIB)
        assert (volume.path, volume.capacity_bytes) == ("/dev/vg_guests/lv_web01", 4 * GIB)
        again = storage.create_volume(pool, "lv_web01", 4 * GIB)  # a retried task
        assert again.id == volume.id
        # made outside the app: a refresh finds it; removed outside: a refresh forgets it
        conn = connections.get("test:///default")
        lpool = conn.storagePoolLookupByName(name)
        lpool.createXML(
            "<volume><name>lv_outside</name><capacity unit='bytes'>1073741824</capacity></volume>",
            0,
        )
        storage.refresh(pool)
        assert [(v.name, v.capacity_bytes) for v in pool.volumes] == [
            ("lv_outside", GIB),
            ("lv_web01", 4 * GIB),
        ]
        assert pool.allocation_bytes == lpool.info()[2]
        lpool.storageVolLookupByName("lv_outside").delete(0)
        storage.refresh(pool)
        assert [v.name for v in pool.volumes] == ["lv_web01"]
        assert storage.delete_volume(volume) == f"lv_web01 deleted from {name}"
        assert lpool.listAllVolumes(0) == []
        assert (
            dbsession.scalars(select(StorageVolume).where(StorageVolume.name == "lv_web01")).all()
            == []
        )
    finally:
        _forget(connections, "test:///default", name)


def test_a_vm_gets_its_new_disk_from_its_create_task_and_loses_it_with_delete_volumes(
    dbsession, tree, fake_host, connections
):
    storage = StorageService(ServiceContext.for_session(dbsession), connections=connections)
    name = _name("fc-vmdisk")
    pool, _task = storage.create_pool(
        {
            "name": name,
            "kind": "logical",
            "volume_group": "vg_vms",
            "source_path": "/dev/sdc",
            "hardware_pools": [tree["fedora"].id],
        }
    )
    try:
        vm, _task = VmService(ServiceContext.for_session(dbsession)).create(
            VmSpec.parse(
                {
                    "name": "web01",
                    "pool": tree["fedora-vms"].id,
                    "vcpus": 1,
                    "memory_mib": 256,
                    "host": fake_host.id,
                    "disks": [{"size_gib": 3, "storage_pool": pool.id}],
                }
            )
        )
        assert vm.disks[0].path is None
        work = VmWork(dbsession, TEST_SETTINGS, pool=connections)
        assert work.do_create(vm, {}) == f"web01 defined on {fake_host.hostname}"
        disk = vm.disks[0]
        volume_name = f"web01-vda-{vm.uuid[:8]}"
        assert disk.path == f"/dev/vg_vms/{volume_name}"
        volume = dbsession.get(StorageVolume, disk.volume_id)
        assert (volume.name, volume.capacity_bytes) == (volume_name, 3 * GIB)
        conn = connections.get("test:///default")
        lpool = conn.storagePoolLookupByName(name)
        assert [v.name() for v in lpool.listAllVolumes(0)] == [volume_name]
        xml = conn.lookupByUUIDString(vm.uuid).XMLDesc(0)
        assert f"/dev/vg_vms/{volume_name}" in xml
        work.do_create(vm, {})  # idempotent: the same volume, no second one
        assert len(lpool.listAllVolumes(0)) == 1
        # the pool is in use now: it cannot go
        with pytest.raises(Exception, match="has a disk in storage pool"):
            storage.delete_pool(pool)
        vm_id = vm.id
        work.do_delete(vm, {"delete_volumes": True})
        assert lpool.listAllVolumes(0) == []
        assert dbsession.get(Vm, vm_id) is None
        assert dbsession.get(StorageVolume, volume.id) is None
    finally:
        _forget(connections, "test:///default", name)


def test_an_iscsi_target_makes_no_volumes(dbsession, tree, fake_host, connections):
    storage = StorageService(ServiceContext.for_session(dbsession), connections=connections)
    pool = StoragePool(
        name=_name("fc-lun"),
        kind="iscsi",
        portal_address="10.5.126.31",
        port=3260,
        target_iqn="iqn.2009-01.org.fedoraproject:s1",
        hardware_pools=[tree["fedora"]],
    )
    dbsession.add(pool)
    dbsession.flush()
    with pytest.raises(InvalidInput, match="made on the storage server"):
        storage.queue_create_volume(pool, {"name": "x", "size_gib": 1})


def test_a_dir_pool_on_a_real_libvirtd(dbsession, tree, real_libvirt, connections, tmp_path):
    host = HostFactory(pool=tree["fedora"], libvirt_uri=real_libvirt)
    storage = StorageService(ServiceContext.for_session(dbsession), connections=connections)
    directory = tmp_path / "images"
    name = _name("fc-test-dir")
    pool, _task = storage.create_pool(
        {
            "name": name,
            "kind": "dir",
            "target_path": str(directory),
            "hardware_pools": [tree["fedora"].id],
        }
    )
    try:
        assert storage.define_on_hosts(pool) == f"{name} defined and started on {host.hostname}"
        assert directory.is_dir()  # built by libvirt
        stat = os.statvfs(directory)
        assert pool.state == "active"
        assert pool.capacity_bytes == stat.f_frsize * stat.f_blocks
        volume = storage.create_volume(pool, "web01-vda.img", GIB, "qcow2")
        path = directory / "web01-vda.img"
        assert (volume.path, volume.format, volume.capacity_bytes) == (str(path), "qcow2", GIB)
        assert path.read_bytes()[:4] == b"QFI\xfb"  # a real qcow2 image
        storage.resize_volume(volume, 2 * GIB)
        assert volume.capacity_bytes == 2 * GIB
        raw = storage.create_volume(pool, "web01-vdb.img", GIB)
        storage.resize_volume(raw, 3 * GIB)
        assert (directory / "web01-vdb.img").stat().st_size == 3 * GIB  # sparse, but 3 GiB
        storage.refresh(pool)
        assert [(v.name, v.capacity_bytes) for v in pool.volumes] == [
            ("web01-vda.img", 2 * GIB),
            ("web01-vdb.img", 3 * GIB),
        ]
        with pytest.raises(Exception, match="shrinking it to"):
            storage.resize_volume(raw, GIB)
        storage.delete_volume(raw)
        assert not (directory / "web01-vdb.img").exists()
        assert [v.name for v in pool.volumes] == ["web01-vda.img"]
        # deleting the pool undefines it on its hosts, as a task; the files stay
        task = storage.delete_pool(pool)
        assert (task.kind, task.args) == (
            "storage.pool.undefine",
            {"name": name, "hosts": [host.id]},
        )
        assert run_pool_undefine(task, dbsession) == f"{name} undefined on {host.hostname}"
        assert not StorageHost(real_libvirt, connections).has_pool(name)
        assert (directory / "web01-vda.img").exists()
    finally:
        _forget(connections, real_libvirt, name)


def test_through_the_task_runner_a_refresh_no_host_answers_says_why(migrated_database, tmp_path):
    """The worker's path: the handler's transaction is rolled back, yet the storage pool
    shows failed with the reason (written after the rollback), and the task is retried;
    once the host answers, the retry records the figures."""
    from fedoracloud.models import PoolKind, Task, get_engine, get_session_factory
    from fedoracloud.services.pools import PoolService
    from fedoracloud.services.tasks import TaskRunner, TaskSettings

    from ..factories import bind

    settings = {"sqlalchemy.url": migrated_database}
    engine = get_engine(settings)
    factory = get_session_factory(engine)
    name = _name("fc-runner")
    try:
        with factory() as db:
            pools = PoolService(ServiceContext.for_session(db))
            fedora = pools.create("fedora", PoolKind.HARDWARE, pools.ensure_builtin()["hardware"])
            bind(db)
            host = HostFactory(pool=fedora, libvirt_uri="qemu+tcp://127.0.0.1:1/system")
            pool, _define = StorageService(ServiceContext.for_session(db)).create_pool(
                {
                    "name": name,
                    "kind": "dir",
                    "target_path": "/fc-runner",
                    "hardware_pools": [fedora.id],
                }
            )
            task = StorageService(ServiceContext.for_session(db)).queue_refresh(pool)
            pool_id, task_id, host_id = pool.id, task.id, host.id
            db.commit()
        runner = TaskRunner(factory, settings=TaskSettings(retry_delay=0))
        assert runner.run(task_id) == "queued"  # retried: the host may come back
        with factory() as db:
            pool = db.get(StoragePool, pool_id)
            assert pool.state == "failed"
            assert "no host could refresh" not in pool.last_error  # the reason, per host
            assert pool.last_error.startswith(f"{host.hostname}: cannot connect to qemu+tcp://")
            assert db.get(Task, task_id).state == "queued"
            db.get(type(host), host_id).libvirt_uri = "test:///default"
            db.commit()
        assert runner.run(task_id) == "finished"
        with factory() as db:
            pool = db.get(StoragePool, pool_id)
            assert (pool.state, pool.last_error, pool.capacity_bytes) == ("active", "", 100 * GIB)
    finally:
        from fedoracloud.virt.connection import default_pool

        _forget(default_pool(), "test:///default", name)
        engine.dispose()
