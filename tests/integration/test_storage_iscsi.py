"""A real iSCSI target: Debian's tgtd serving two file-backed LUNs on 127.0.0.1, reached
by a real libvirtd through an ``iscsi-direct`` pool (libiscsi, no kernel initiator).  The
app defines, starts and refreshes the pool through its tasks and sees the LUNs as
volumes; a TCG guest gets LUN 1 as its disk through qemu's own iSCSI client."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import libvirt
import pytest

from fedoracloud.models import StorageVolume
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.storage import (
    StorageService,
    run_pool_define,
    run_pool_refresh,
    run_server_check,
)
from fedoracloud.services.vm_tasks import VmWork
from fedoracloud.services.vms import VmService, VmSpec
from fedoracloud.virt.connection import ConnectionPool, default_pool
from fedoracloud.virt.hypervisor import Hypervisor

from ..factories import HostFactory
from ..libvirtd import ROOT

pytestmark = pytest.mark.integration

SCRIPT = os.path.join(ROOT, "scripts", "iscsi-test-env")
QEMU_ISCSI = "/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"
LUN1, LUN2 = 64 * 2**20, 32 * 2**20


@dataclass(frozen=True)
class Target:
    """The running target and the libvirtd that reaches it."""

    port: int
    iqn: str
    uri: str
    base: str

    def sessions(self) -> str:
        """What tgtd says about its target (the I_T nexus lists logged-in initiators)."""
        with open(os.path.join(self.base, "control")) as f:
            control = f.read().strip()
        return subprocess.run(
            ["tgtadm", "-C", control, "--lld", "iscsi", "--op", "show", "--mode", "target"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


#: the libvirt storage pool's name, this run's own (runs and workers share the machine's libvirtd)
POOL_NAME = f"fc-test-iscsi-{secrets.token_hex(3)}"


def _script(*args: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("tgtd and a real libvirtd need root (CI runs the suite as root)")
    proc = subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/iscsi-test-env {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def iscsi_target(tmp_path_factory: Any) -> Iterator[Target]:
    base = str(tmp_path_factory.mktemp("iscsi"))
    try:
        port, iqn = _script("target-up", base).split()
        uri = _script("libvirtd", base).splitlines()[-1]
        yield Target(int(port), iqn, uri, base)
    finally:
        if os.geteuid() == 0:
            subprocess.run([SCRIPT, "target-down", base], capture_output=True, check=False)
            subprocess.run([SCRIPT, "libvirtd-down", base], capture_output=True, check=False)


@pytest.fixture
def lun_pool(dbsession: Any, tree: Any, iscsi_target: Target) -> Iterator[Any]:
    """An iscsi-direct storage pool on the target, used by fedora's one real host, made
    through the API's service; undefined from libvirt afterwards."""
    host = HostFactory(pool=tree["fedora"], libvirt_uri=iscsi_target.uri)
    service = StorageService(ServiceContext.for_session(dbsession))
    pool, task = service.create_pool(
        {
            "name": POOL_NAME,
            "kind": "iscsi-direct",
            "portal_address": "127.0.0.1",
            "port": iscsi_target.port,
            "target_iqn": iscsi_target.iqn,
            "hardware_pools": [tree["fedora"].id],
        }
    )
    yield SimpleNamespace(pool=pool, define=task, host=host)
    conn = libvirt.open(iscsi_target.uri)
    try:
        found = conn.storagePoolLookupByName(POOL_NAME)
        if found.isActive():
            found.destroy()
        found.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def test_the_app_defines_and_refreshes_an_iscsi_direct_pool_and_sees_the_luns(
    dbsession, lun_pool, iscsi_target
):
    pool = lun_pool.pool
    message = run_pool_define(lun_pool.define, dbsession)  # the storage.pool.define task
    assert message == f"{POOL_NAME} defined and started on {lun_pool.host.hostname}"
    refresh = StorageService(ServiceContext.for_session(dbsession)).queue_refresh(pool)
    assert refresh.kind == "storage.pool.refresh"
    assert run_pool_refresh(refresh, dbsession).startswith(
        f"{POOL_NAME} on {lun_pool.host.hostname}: active,"
    )
    conn = libvirt.open(iscsi_target.uri)
    try:
        lpool = conn.storagePoolLookupByName(POOL_NAME)
        _state, capacity, allocation, available = lpool.info()
        xml = lpool.XMLDesc(0)
    finally:
        conn.close()
    # figures from libvirt, not arithmetic: what libiscsi read from the two LUNs
    assert (pool.state, pool.capacity_bytes, pool.allocation_bytes, pool.available_bytes) == (
        "active",
        capacity,
        allocation,
        available,
    )
    assert LUN1 + LUN2 - 4096 <= pool.capacity_bytes <= LUN1 + LUN2
    assert f"iqn.2009-01.org.fedoraproject.cloud:{lun_pool.host.hostname}" in xml
    volumes = [(v.name, v.capacity_bytes) for v in pool.volumes]
    assert [name for name, _size in volumes] == ["unit:0:0:1", "unit:0:0:2"]  # LUN 0: controller
    assert LUN1 - 4096 <= volumes[0][1] <= LUN1 and LUN2 - 4096 <= volumes[1][1] <= LUN2
    assert pool.volumes[0].path.endswith(f"{iscsi_target.iqn}-lun-1")


def test_a_storage_server_check_reaches_the_portal(dbsession, iscsi_target, lun_pool):
    from fedoracloud.models import StorageServer
    from fedoracloud.services.tasks import TaskService

    server = StorageServer(hostname="storage01.example.org", address="127.0.0.1", role="master")
    dbsession.add(server)
    dbsession.flush()
    lun_pool.pool.server_id = server.id
    dbsession.flush()
    dbsession.refresh(server)
    task = TaskService(ServiceContext.for_session(dbsession)).create(
        "storage.server.check", "storage_server", server.id
    )
    assert run_server_check(task, dbsession) == (
        f"storage01.example.org answers on 127.0.0.1:{iscsi_target.port}"
    )
    assert server.last_error == "" and server.last_seen_at is not None
    lun_pool.pool.port = 1  # nothing listens there
    dbsession.flush()
    assert "no answer on 127.0.0.1:1" in run_server_check(task, dbsession)
    assert server.last_error.startswith("no answer on 127.0.0.1:1")


@pytest.mark.skipif(not os.path.exists(QEMU_ISCSI), reason="qemu's iSCSI block driver is missing")
def test_a_tcg_guest_gets_a_lun_as_its_disk(
    dbsession,
    tree,
    lun_pool,
    iscsi_target,
    tcg_guest,
    libvirt_domains,
    tmp_path,
):
    run_pool_define(lun_pool.define, dbsession)
    StorageService(ServiceContext.for_session(dbsession)).refresh(lun_pool.pool)
    lun1 = next(v for v in lun_pool.pool.volumes if v.name == "unit:0:0:1")
    name = libvirt_domains.new()
    spec = VmSpec.parse(
        {
            "name": name,
            "pool": tree["fedora-vms"].id,
            "vcpus": 1,
            "memory_mib": 128,
            "host": lun_pool.host.id,
            "disks": [{"volume": lun1.id}],
            "boot": {
                "kernel": tcg_guest.kernel,
                "initrd": tcg_guest.initrd,
                "cmdline": "console=ttyS0 panic=-1 quiet",
            },
        }
    )
    vm, _task = VmService(ServiceContext.for_session(dbsession)).create(spec)
    settings = SimpleNamespace(
        extra={
            "fedoracloud.libvirt.domain_type": "qemu",
            "fedoracloud.libvirt.serial_log_dir": str(tmp_path),
        }
    )
    connections = ConnectionPool()
    try:
        work = VmWork(dbsession, settings, pool=connections)
        work.do_create(vm, {})
        work.do_start(vm, {"host": lun_pool.host.id})
        hv = Hypervisor(iscsi_target.uri, connections)
        assert hv.state(vm.uuid).state == "running"
        xml = hv.xml(vm.uuid)
        assert "protocol='iscsi'" in xml or 'protocol="iscsi"' in xml
        assert f"{iscsi_target.iqn}/1" in xml
        # qemu logged in to the target itself: tgtd lists its session
        assert "Initiator: iqn.2008-11.org.linux-kvm" in iscsi_target.sessions()  # qemu's name
        work.do_poweroff(vm, {})
        assert work.do_delete(vm, {"delete_volumes": True}).startswith(f"{name} and its volumes")
        # a LUN belongs to the storage server: it stays, and so does its row
        assert dbsession.get(StorageVolume, lun1.id) is not None
    finally:
        connections.close_all()
        default_pool().drop(iscsi_target.uri)
