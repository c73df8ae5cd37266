"""IP allocation under concurrency on the real PostgreSQL, exhaustion, and release when the
worker deletes a VM (on libvirt's test driver).

The concurrency test always runs on PostgreSQL (a scratch database migrated by Alembic),
whatever ``--db`` says: that is where ``SELECT ... FOR UPDATE SKIP LOCKED`` matters.  51
threads, each with its own connection and transaction, ask at once for an address from a
pool of 50: 50 get distinct addresses, one is told the pool is full.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from fedoracloud.demo import DemoHost, host_xml
from fedoracloud.models import HostState, IpAddress, PoolKind, Vm, VmNic, get_engine
from fedoracloud.services import Conflict
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkInput, NetworkService
from fedoracloud.services.pools import PoolService
from fedoracloud.services.vm_tasks import VmWork
from fedoracloud.services.vms import VmService, VmSpec
from fedoracloud.virt.connection import ConnectionPool

from ..databases import scratch_database
from ..factories import HostFactory

pytestmark = pytest.mark.integration

CLIENTS = 51
POOL_SIZE = 50


@pytest.fixture
def pg_url(tmp_path: Any) -> Iterator[str]:
    """A scratch PostgreSQL database at Alembic's head, dropped afterwards."""
    with scratch_database("postgresql", str(tmp_path), "fc_ip", migrated=True) as url:
        yield url


def seed(engine: sa.Engine, nics: int) -> tuple[int, list[int]]:
    """A guest network with a pool of POOL_SIZE addresses and ``nics`` VM NICs without one;
    committed.  Returns the network id and the NIC ids."""
    with Session(engine) as session:
        pools = PoolService(ServiceContext.for_session(session))
        builtin = pools.ensure_builtin()
        vm_pool = pools.create("vms", PoolKind.VM, builtin["default"])
        service = NetworkService(ServiceContext.for_session(session))
        network = service.create(
            NetworkInput.parse({"name": "public", "bridge": "brpublic", "cidr": "209.132.181.0/24"})
        )
        service.create_pool(network, "public", "209.132.181.100", f"209.132.181.{99 + POOL_SIZE}")
        nic_ids = []
        for n in range(nics):
            vm = Vm(uuid=f"00000000-0000-4000-8000-{n:012d}", name=f"vm{n}", pool_id=vm_pool.id)
            session.add(vm)
            session.flush()
            nic = VmNic(vm_id=vm.id, mac=f"52:54:00:00:{n // 256:02x}:{n % 256:02x}")
            nic.network_id = network.id
            session.add(nic)
            session.flush()
            nic_ids.append(nic.id)
        session.commit()
        return network.id, nic_ids


def test_concurrent_allocations_on_postgresql_get_distinct_addresses(pg_url: str) -> None:
    engine = get_engine({"sqlalchemy.url": pg_url, "sqlalchemy.pool_size": str(CLIENTS + 4)})
    try:
        _network_id, nic_ids = seed(engine, CLIENTS)
        start = threading.Barrier(CLIENTS)
        got: dict[int, str] = {}
        refused: list[str] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def allocate(nic_id: int) -> None:
            try:
                with Session(engine) as session:
                    nic = session.get(VmNic, nic_id)
                    assert nic is not None
                    session.connection()  # the connection is open before the start line
                    start.wait(timeout=60)
                    try:
                        address = NetworkService(
                            ServiceContext.for_session(session)
                        ).allocate_nic_address(nic)
                    except Conflict as exc:
                        with lock:
                            refused.append(exc.message)
                        return
                    assert address is not None
                    value = address.address
                    session.commit()
                with lock:
                    got[nic_id] = value
            except BaseException as exc:  # reported below, with the thread's error
                with lock:
                    failures.append(exc)

        threads = [threading.Thread(target=allocate, args=(i,)) for i in nic_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        assert len(got) == POOL_SIZE
        assert len(set(got.values())) == POOL_SIZE  # no address twice
        assert refused == [
            f"IP pool public has no free address ({POOL_SIZE} of {POOL_SIZE} allocated)"
        ]
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(IpAddress.vm_nic_id, IpAddress.address).where(
                    IpAddress.vm_nic_id.is_not(None)
                )
            ).all()
        assert dict(rows) == got  # what each thread was told is what was committed
    finally:
        engine.dispose()


@pytest.fixture
def libvirt_pool() -> Iterator[ConnectionPool]:
    connections = ConnectionPool(connect_timeout=5)
    yield connections
    connections.close_all()


def test_the_worker_releases_a_deleted_vms_address(
    dbsession: Any, tree: dict[str, Any], tmp_path: Any, libvirt_pool: ConnectionPool
) -> None:
    """Create (defined on a test:/// host), delete through the worker's task: the address is
    free again and the next VM gets it."""
    path = tmp_path / "node.xml"
    path.write_bytes(
        host_xml(DemoHost("node.test", "fedora", "fedora-vms", HostState.AVAILABLE, ()), 1)
    )
    host = HostFactory(pool=tree["fedora"], libvirt_uri=f"test://{path}", memory_mib=16384)
    service = NetworkService(ServiceContext.for_session(dbsession))
    network = service.create(
        NetworkInput.parse({"name": "public", "bridge": "brpublic", "cidr": "209.132.181.0/24"})
    )
    pool = service.create_pool(network, "tiny", "209.132.181.10", "209.132.181.10")
    vms = VmService(ServiceContext.for_session(dbsession))
    settings = SimpleNamespace(extra={"fedoracloud.libvirt.domain_type": "test"})
    spec = {
        "pool": tree["fedora-vms"].id,
        "vcpus": 1,
        "memory_mib": 256,
        "host": host.id,
        "nics": [{"network": network.id}],
    }
    vm, task = vms.create(VmSpec.parse({**spec, "name": "web01"}))
    VmWork(dbsession, settings, libvirt_pool).run(task)
    assert service.address_of(vm.nics[0]) == "209.132.181.10"
    refused = dbsession.begin_nested()  # as the request's transaction is, when refused
    with pytest.raises(Conflict, match=r"IP pool tiny has no free address \(1 of 1 allocated\)"):
        vms.create(VmSpec.parse({**spec, "name": "web02"}))
    refused.rollback()
    dbsession.refresh(vm)
    message = VmWork(dbsession, settings, libvirt_pool).run(vms.request(vm, "delete"))
    assert "web01 deleted" in message
    assert service.usage_of_pools([pool])[pool.id].allocated == 0
    again, _task = vms.create(VmSpec.parse({**spec, "name": "web02"}))
    assert service.address_of(again.nics[0]) == "209.132.181.10"
