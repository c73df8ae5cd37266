"""IP allocation on PostgreSQL: allocations per second with concurrent clients, no duplicates.

``python -m benchmarks.ip_allocation`` makes a scratch database (``fc_bench_ip``, migrated by
Alembic), a guest network with one IP pool of ``--addresses`` addresses and as many VM NICs
without an address, then lets ``--clients`` processes (8 by default, and 1 for comparison;
processes, as separate UI boxes and workers would be, each with its own connection) hand
them out at once: each allocation is ``NetworkService.allocate_nic_address()`` in its own
session and transaction, committed, as a VM-creating request does it.  It reports, per
client count:

* ``ip_allocation_throughput``: allocations per second from the start line (every client
  connected) to the last commit;
* ``ip_allocation_latency``: ms per allocation and commit, p50/p95.

and ``ip_allocation_one_transaction``: one client giving every NIC its address in a single
transaction (the allocation statement's own rate, without a commit each).

After each run it checks, outside the timed region, that every NIC got an address and no
address was given twice (distinct addresses == allocations == pool size), then frees the
pool for the next run.  Figures are merged into ``benchmarks/results.json`` by
(name, dataset).  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import sys
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from alembic import command
from fedoracloud.models import IpAddress, PoolKind, Vm, VmNic, get_engine
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.networks import NetworkInput, NetworkService
from fedoracloud.services.pools import PoolService

from .dataset import alembic_config, create_database, database_url, drop_database
from .run import RESULTS, merge_results, percentile

DB_NAME = "fc_bench_ip"
CIDR = "10.64.0.0/16"


def seed(engine: sa.Engine, addresses: int) -> list[int]:
    """The network, its pool and one NIC per address (committed); the NIC ids."""
    with Session(engine) as session:
        pools = PoolService(ServiceContext.for_session(session))
        vm_pool = pools.create("bench-vms", PoolKind.VM, pools.ensure_builtin()["default"])
        service = NetworkService(ServiceContext.for_session(session))
        network = service.create(
            NetworkInput.parse({"name": "bench", "bridge": "brbench", "cidr": CIDR})
        )
        first = ipaddress.ip_address("10.64.1.0")
        service.create_pool(network, "bench", str(first), str(first + addresses - 1))
        vms = [
            {
                "uuid": f"00000000-0000-4000-8000-{n:012d}",
                "name": f"vm{n}",
                "pool_id": vm_pool.id,
                "pool_kind": "vm",
            }
            for n in range(addresses)
        ]
        session.execute(sa.insert(Vm), vms)
        vm_ids = session.scalars(sa.select(Vm.id).order_by(Vm.id)).all()
        session.execute(
            sa.insert(VmNic),
            [
                {
                    "vm_id": vm_id,
                    "mac": f"52:54:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}",
                    "network_id": network.id,
                    "model": "virtio",
                }
                for n, vm_id in enumerate(vm_ids)
            ],
        )
        session.commit()
        return list(session.scalars(sa.select(VmNic.id).order_by(VmNic.id)))


def free_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(IpAddress).values(vm_nic_id=None, allocated_at=None))


def client(url: str, share: list[int], start: Any, out: Any) -> None:
    """One client process: its own engine and connection, one transaction per allocation;
    puts its latencies (ms) or its error on ``out``."""
    engine = get_engine({"sqlalchemy.url": url})
    try:
        samples = []
        with engine.connect():
            pass  # connected before the start line
        start.wait()
        for nic_id in share:
            began = time.perf_counter()
            with Session(engine) as session:
                nic = session.get(VmNic, nic_id)
                assert nic is not None
                NetworkService(ServiceContext.for_session(session)).allocate_nic_address(nic)
                session.commit()
            samples.append((time.perf_counter() - began) * 1000)
        out.put(("ok", samples))
    except BaseException as exc:  # reported by the parent
        out.put(("error", repr(exc)))
    finally:
        engine.dispose()


def run_clients(url: str, nic_ids: list[int], clients: int) -> dict[str, Any]:
    """Every NIC gets an address from ``clients`` processes at once; the figures."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(clients + 1)
    out = context.Queue()
    shares = [nic_ids[i::clients] for i in range(clients)]
    processes = [context.Process(target=client, args=(url, share, start, out)) for share in shares]
    for process in processes:
        process.start()
    start.wait(timeout=120)
    began = time.perf_counter()
    answers = [out.get(timeout=600) for _ in processes]
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=60)
    errors = [detail for kind, detail in answers if kind == "error"]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    samples = [ms for _kind, batch in answers for ms in batch]
    engine = get_engine({"sqlalchemy.url": url})
    try:
        with engine.connect() as conn:
            allocated, distinct, nics = conn.execute(
                sa.select(
                    sa.func.count(IpAddress.vm_nic_id),
                    sa.func.count(sa.distinct(IpAddress.address)).filter(
                        IpAddress.vm_nic_id.is_not(None)
                    ),
                    sa.func.count(sa.distinct(IpAddress.vm_nic_id)),
                )
            ).one()
    finally:
        engine.dispose()
    return {
        "clients": clients,
        "n": len(samples),
        "seconds": seconds,
        "per_second": len(samples) / seconds,
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "no_duplicates": allocated == distinct == nics == len(nic_ids),
        "allocated": allocated,
        "distinct": distinct,
    }


def one_transaction(engine: sa.Engine, nic_ids: list[int]) -> dict[str, Any]:
    """Every NIC its address in one transaction and one session, committed once."""
    began = time.perf_counter()
    with Session(engine) as session:
        service = NetworkService(session)
        for nic in session.scalars(sa.select(VmNic).where(VmNic.id.in_(nic_ids))):
            service.allocate_nic_address(nic)
        session.commit()
    seconds = time.perf_counter() - began
    with engine.connect() as conn:
        allocated = conn.scalar(sa.select(sa.func.count(IpAddress.vm_nic_id)))
    return {
        "name": "ip_allocation_one_transaction",
        "dataset": f"PostgreSQL, 1 client, {len(nic_ids)}-address IP pool, one transaction",
        "value": round(len(nic_ids) / seconds, 1),
        "unit": "allocations/s",
        "n": len(nic_ids),
        "seconds": round(seconds, 3),
        "target": "NetworkService.allocate_nic_address() for every NIC, one commit",
        "no_duplicates": allocated == len(nic_ids),
    }


def entries(result: dict[str, Any], addresses: int) -> list[dict[str, Any]]:
    """The results.json entries of one run."""
    dataset = f"PostgreSQL, {result['clients']} client(s), {addresses}-address IP pool"
    target = "NetworkService.allocate_nic_address() + commit, one transaction each"
    return [
        {
            "name": "ip_allocation_throughput",
            "dataset": dataset,
            "value": round(result["per_second"], 1),
            "unit": "allocations/s",
            "n": result["n"],
            "seconds": round(result["seconds"], 3),
            "target": target,
            "no_duplicates": result["no_duplicates"],
        },
        {
            "name": "ip_allocation_latency",
            "dataset": dataset,
            "p50": round(result["p50"], 3),
            "p95": round(result["p95"], 3),
            "unit": "ms",
            "n": result["n"],
            "target": target,
        },
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=2000, help="the IP pool's size")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[8, 1], help="concurrent clients per run"
    )
    parser.add_argument("--keep", action="store_true", help="leave the scratch database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Seed, run each client count, print the figures, merge results.json, drop the DB."""
    args = parse_args(argv)
    create_database(DB_NAME)
    url = database_url(DB_NAME)
    try:
        command.upgrade(alembic_config(url), "head")
        engine = get_engine({"sqlalchemy.url": url})
        try:
            nic_ids = seed(engine, args.addresses)
            found = []
            for clients in args.clients:
                free_all(engine)
                found.append(run_clients(url, nic_ids, clients))
            free_all(engine)
            batch = one_transaction(engine, nic_ids)
        finally:
            engine.dispose()
    finally:
        if not args.keep:
            drop_database(DB_NAME)
    print(f"{'clients':>7} {'allocs':>7} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8}  duplicates")
    new: list[dict[str, Any]] = []
    for r in found:
        verdict = "none" if r["no_duplicates"] else f"{r['allocated'] - r['distinct']} FOUND"
        print(
            f"{r['clients']:>7} {r['n']:>7} {r['per_second']:>8.1f} {r['p50']:>8.2f}"
            f" {r['p95']:>8.2f}  {verdict}"
        )
        new.extend(entries(r, args.addresses))
    print(f"one transaction: {batch['value']} allocations/s ({batch['n']} in {batch['seconds']} s)")
    merge_results(RESULTS, [*new, batch])
    return 0


if __name__ == "__main__":
    sys.exit(main())
