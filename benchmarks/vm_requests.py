"""VM request benchmark: end-to-end time of an approved VM request, on PostgreSQL, the
libvirt test driver and the loopback Cobbler (``tests/cobbler_server.py``, XML-RPC over a
real socket).

``python -m benchmarks.vm_requests [--runs 40]`` makes a scratch PostgreSQL database
(``fc_bench_vm_requests``, dropped at the end), migrates it, and builds one hardware pool
with a fake host (a ``test:///…xml`` file with a dir storage pool), a guest network with an
IP pool, a Cobbler profile allowed on the pool and a requester.  Each run, outside the
timed region, a request is submitted and committed; then, timed:

* ``vm_request_approve``: ``VmRequestService.approve`` and the commit (checks again, the
  task row);
* ``vm_request_provision``: the worker's ``TaskRunner.run`` of the provisioning task —
  claim, VM rows with MAC and IP, the volume, the Cobbler system (login, new_system,
  modify_system x7, save_system, sync), define and start the domain, commit;
* ``vm_request_end_to_end``: from the approval to the request reading ``provisioned``.

Each run is checked (provisioned, the VM running, its Cobbler system saved) outside the
timed region; the machine's 1-minute load average is recorded with the figures.  Figures
merge into ``benchmarks/results.json`` by (name, dataset).
Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alembic import command
from fedoracloud import cobbler
from fedoracloud.demo import fake_host_xml
from fedoracloud.models import (
    Host,
    HostState,
    IpAddress,
    IpPool,
    Network,
    PoolKind,
    RoleGrant,
    StoragePool,
    User,
    Vm,
    VmRequest,
    get_session_factory,
)
from fedoracloud.services.cobbler import ProfileService
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.tasks import TaskRunner
from fedoracloud.services.vm_requests import VmRequestInput, VmRequestService
from tests.cobbler_server import FakeCobbler

from .dataset import alembic_config, create_database, database_url, drop_database
from .run import RESULTS, merge_results, percentile

DB_NAME = "fc_bench_vm_requests"
LIBVIRT = {"fedoracloud.libvirt.domain_type": "test"}


class _Who:
    def __init__(self, user: User) -> None:
        self.user = user


def host_file(directory: str) -> str:
    """A fake host (2x4 CPUs, 16 GiB) with a ``dir`` storage pool named vmdisks."""
    node = ET.fromstring(fake_host_xml(1, ()))  # noqa: S314 - our own XML
    pool = ET.SubElement(node, "pool", type="dir")
    ET.SubElement(pool, "name").text = "vmdisks"
    ET.SubElement(pool, "uuid").text = str(uuid.uuid4())
    ET.SubElement(pool, "capacity", unit="TiB").text = "4"
    ET.SubElement(pool, "available", unit="TiB").text = "4"
    ET.SubElement(ET.SubElement(pool, "target"), "path").text = "/vmdisks"
    path = os.path.join(directory, "bench-node.xml")
    with open(path, "wb") as out:
        out.write(ET.tostring(node))
    return f"test://{path}"


def build(db: Session, uri: str, runs: int) -> dict[str, int]:
    """The pools, host, storage, network, profile and people; their ids."""
    pools = PoolService(ServiceContext.for_session(db))
    made = pools.ensure_builtin()
    fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
    vm_pool = pools.create("fedora-vms", PoolKind.VM, fedora)
    db.add(
        Host(
            uuid=str(uuid.uuid4()),
            hostname="bench-node.example.org",
            pool_id=fedora.id,
            pool_kind=PoolKind.HARDWARE.value,
            state=HostState.AVAILABLE.value,
            arch="x86_64",
            hypervisor="test",
            memory_mib=16384,
            cpu_count=8,
            libvirt_uri=uri,
        )
    )
    storage = StoragePool(name="vmdisks", kind="dir", target_path="/vmdisks")
    storage.hardware_pools.append(fedora)
    network = Network(name="public", bridge="br0", cidr="10.77.0.0/16", usage="guest")
    network.hardware_pools.append(fedora)
    db.add_all([storage, network])
    db.flush()
    ip_pool = IpPool(
        network_id=network.id, name="public-ips", first_address="10.77.0.1", last_address=""
    )
    db.add(ip_pool)
    db.flush()
    for n in range(1, runs + 2):
        db.add(IpAddress(ip_pool_id=ip_pool.id, address=f"10.77.{n // 250}.{n % 250 + 1}"))
    ip_pool.last_address = f"10.77.{(runs + 1) // 250}.{(runs + 1) % 250 + 1}"
    profiles = ProfileService(ServiceContext.for_session(db))
    profiles.refresh(cobbler.client())
    profile = profiles.all()[0]
    profiles.set_allowed(fedora, [profile.id])
    requester, admin = User(username="jdoe"), User(username="boss")
    db.add_all([requester, admin])
    db.flush()
    db.add(RoleGrant(pool_id=fedora.id, user_id=requester.id, role="user"))
    db.add(RoleGrant(pool_id=fedora.id, user_id=admin.id, role="admin"))
    db.commit()
    return {
        "pool": vm_pool.id,
        "profile": profile.id,
        "network": network.id,
        "requester": requester.id,
        "admin": admin.id,
    }


def one_run(factory: Any, runner: TaskRunner, ids: dict[str, int], n: int) -> tuple[float, ...]:
    """Submit (untimed), then approve and provision (timed); the three figures in ms."""
    with factory() as db:
        requester = db.get(User, ids["requester"])
        data = VmRequestInput.parse(
            {
                "name": f"bench{n:03d}",
                "pool": ids["pool"],
                "profile": ids["profile"],
                "vcpus": 1,
                "memory_mib": 256,
                "storage_gib": 10,
                "network": ids["network"],
                "reason": "benchmark",
            }
        )
        req_id = (
            VmRequestService(ServiceContext.for_session(db, _Who(requester)))
            .submit(requester, data)
            .id
        )
        db.commit()
    start = time.perf_counter()
    with factory() as db:
        admin = db.get(User, ids["admin"])
        service = VmRequestService(ServiceContext.for_session(db, _Who(admin)))
        req = db.get(VmRequest, req_id)
        task = service.approve(req, _Who(admin))
        task.args = {"libvirt": LIBVIRT}
        task_id = task.id
        db.commit()
    approved = time.perf_counter()
    state = runner.run(task_id)
    provisioned = time.perf_counter()
    with factory() as db:
        req = db.get(VmRequest, req_id)
        if state != "finished" or req.state != "provisioned":
            raise SystemExit(f"run {n}: task {state}, request {req.state}: {req.failure_reason}")
        vm = db.get(Vm, req.vm_id)
        if vm is None or vm.state != "running":
            raise SystemExit(f"run {n}: the VM is not running")
    return (
        (approved - start) * 1000,
        (provisioned - approved) * 1000,
        (provisioned - start) * 1000,
    )


def bench(runs: int, results: str) -> list[dict[str, Any]]:
    """Run the benchmark; returns the results.json entries."""
    workdir = tempfile.mkdtemp(prefix="fc-bench-vmreq-")
    create_database(DB_NAME)
    url = database_url(DB_NAME)
    engine = sa.create_engine(url)
    with FakeCobbler() as server:
        server.add_profile("Fedora-40-x86_64")
        previous = cobbler.configure(
            cobbler.CobblerSettings(
                url=server.url,
                username="cobbler",
                password="cobbler-password",  # noqa: S106 - the loopback Cobbler's
                timeout=5,
            )
        )
        try:
            command.upgrade(alembic_config(url), "head")
            factory = get_session_factory(engine)
            with factory() as db:
                ids = build(db, host_file(workdir), runs)
            runner = TaskRunner(factory)
            one_run(factory, runner, ids, 0)  # warm up: connections, imports
            load_before = os.getloadavg()[0]
            samples = [one_run(factory, runner, ids, n) for n in range(1, runs + 1)]
            load = round(max(load_before, os.getloadavg()[0]), 1)
            systems = len(server.state.systems)
        finally:
            cobbler.configure(previous)
            engine.dispose()
            drop_database(DB_NAME)
    dataset = "PostgreSQL, libvirt test driver, loopback Cobbler (XML-RPC)"
    targets = {
        "vm_request_approve": "VmRequestService.approve + commit (checks, task row)",
        "vm_request_provision": "TaskRunner.run of vm_request.provision (MAC, IP, volume,"
        " Cobbler system, define, start, commit)",
        "vm_request_end_to_end": "approval to provisioned (VM running, Cobbler system saved)",
    }
    entries = []
    for index, (name, target) in enumerate(targets.items()):
        values = [s[index] for s in samples]
        entries.append(
            {
                "name": name,
                "dataset": dataset,
                "p50": round(percentile(values, 50), 2),
                "p95": round(percentile(values, 95), 2),
                "unit": "ms",
                "n": runs,
                "target": target,
                "cobbler_systems": systems,
                "load_average": load,
            }
        )
    merge_results(results, entries)
    return entries


def main(argv: list[str] | None = None) -> int:
    """Run it, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vm_requests", description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="approved requests to time")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 200:
        parser.error("--runs: 1 to 200")
    for entry in bench(args.runs, args.results):
        print(f"{entry['name']:<24} p50 {entry['p50']:>8.1f} ms   p95 {entry['p95']:>8.1f} ms")
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
