"""libvirt benchmarks: the reconcile read of 1,000 fake hosts, and a real libvirtd's own
start/destroy latency and live migration time.

``python -m benchmarks.virt`` (root, after ``scripts/install-system-packages test``):

* ``reconcile_read_1000_test_hosts``: 1,000 ``test:///…xml`` hosts (8 CPUs, 2 NICs and 20
  domains each, 5 of them running) read as a reconcile would — ``Hypervisor.facts()``
  (host facts + every domain with its state) for every host — through a thread pool of
  ``--concurrency`` workers and one ConnectionPool.  ``cold``: the pool opens every
  connection; ``warm``: the connections are reused (the steady state of a periodic
  reconcile).  The figure is the time of one full pass over the 1,000 hosts.
* ``libvirt_start`` / ``libvirt_destroy``: ``Hypervisor.start()`` / ``destroy()`` of the
  tiny TCG guest on the real libvirtd (``scripts/libvirt-test-env daemon``), ~20 cycles;
  ``lifecycle_event_after_call`` is how long after the call returned the EventListener
  delivered the ``started`` / ``stopped`` event (negative: before it returned).
* ``live_migration`` (``--migration``): ``Hypervisor.migrate()`` of the running TCG guest
  between the two namespaced daemons (``libvirt-test-env pair-up``), back and forth, with
  libvirt's own downtime figure.

Figures are merged into ``benchmarks/results.json`` by (name, dataset).  Benchmarks
report; they do not assert.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import libvirt

from fedoracloud.demo import FakeDomain
from fedoracloud.demo import fake_host_xml as demo_host_xml
from fedoracloud.virt.connection import ConnectionPool
from fedoracloud.virt.domain import DirectBoot, DomainSpec, SerialSpec
from fedoracloud.virt.events import EventListener, LifecycleEvent
from fedoracloud.virt.hypervisor import Hypervisor

from .run import RESULTS, merge_results, percentile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "libvirt-test-env")
GUEST_DIR = "/var/cache/fedoracloud-test/guest"


def fake_host_xml(index: int, domains: int = 20, running: int = 5) -> bytes:
    """A test-driver host file (the demo's builder): ``domains`` small domains, the first
    ``running`` of them running."""
    return demo_host_xml(
        index,
        [
            FakeDomain(f"vm-{index:04d}-{d:02d}", str(uuid.uuid4()), 1, 512, d < running)
            for d in range(domains)
        ],
    )


def reconcile_pass(uris: list[str], pool: ConnectionPool, concurrency: int) -> tuple[float, int]:
    """One full read of every host; returns (seconds, domains seen)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as workers:
        facts = list(workers.map(lambda uri: Hypervisor(uri, pool).facts(), uris))
    return time.perf_counter() - started, sum(len(f.domains) for f in facts)


def bench_reconcile(hosts: int, concurrency: list[int], rounds: int) -> list[dict[str, Any]]:
    """Cold and warm reconcile passes over ``hosts`` fake hosts at each concurrency."""
    out = []
    with tempfile.TemporaryDirectory(prefix="fc-bench-hosts-") as tmp:
        uris = []
        for i in range(hosts):
            path = os.path.join(tmp, f"host{i:04d}.xml")
            with open(path, "wb") as f:
                f.write(fake_host_xml(i))
            uris.append(f"test://{path}")
        for workers in concurrency:
            cold, warm = [], []
            seen = 0
            for _ in range(rounds):
                pool = ConnectionPool()
                seconds, seen = reconcile_pass(uris, pool, workers)
                cold.append(seconds)
                for _ in range(3):
                    warm.append(reconcile_pass(uris, pool, workers)[0])
                pool.close_all()
            for kind, samples in (("cold", cold), ("warm", warm)):
                out.append(
                    entry(
                        f"reconcile_read_{hosts}_test_hosts_{kind}",
                        f"{hosts} test:/// hosts, {workers} workers",
                        [s * 1000 for s in samples],
                        f"Hypervisor.facts() on every host ({seen} domains), one pass",
                        goal_ms=10_000,
                    )
                )
                print_entry(out[-1])
    return out


def entry(
    name: str, dataset: str, samples_ms: list[float], target: str, goal_ms: float | None = None
) -> dict[str, Any]:
    """A results.json entry."""
    found: dict[str, Any] = {
        "name": name,
        "dataset": dataset,
        "p50": round(percentile(samples_ms, 50), 3),
        "p95": round(percentile(samples_ms, 95), 3),
        "unit": "ms",
        "n": len(samples_ms),
        "target": target,
        "min": round(min(samples_ms), 3),
        "max": round(max(samples_ms), 3),
    }
    if goal_ms is not None:
        found[f"goal_p95_under_{int(goal_ms)}ms"] = percentile(samples_ms, 95) < goal_ms
    return found


def print_entry(e: dict[str, Any]) -> None:
    """One line of the report."""
    print(
        f"{e['name']:<40} {e['dataset']:<32} n={e['n']:<3} p50 {e['p50']:>9.1f} ms"
        f"  p95 {e['p95']:>9.1f} ms",
        flush=True,
    )


def _guest(name: str, log: str | None) -> DomainSpec:
    return DomainSpec(
        name=name,
        vcpus=1,
        memory_mib=128,
        virt_type="qemu",
        direct_boot=DirectBoot(
            f"{GUEST_DIR}/vmlinuz", f"{GUEST_DIR}/initrd.img", "console=ttyS0 panic=-1 quiet"
        ),
        serial=SerialSpec(log),
    )


def _wait(events: queue.Queue[LifecycleEvent], uuid_: str, kind: str) -> LifecycleEvent:
    while True:
        got = events.get(timeout=30)
        if got.domain_uuid == uuid_ and got.event == kind:
            return got


def bench_lifecycle(cycles: int) -> list[dict[str, Any]]:
    """start/destroy of the TCG guest on the real libvirtd, with event delivery delays."""
    subprocess.run([SCRIPT, "daemon"], check=True)
    subprocess.run([SCRIPT, "guest", GUEST_DIR], check=True)
    pool = ConnectionPool()
    uri = "qemu:///system"
    hv = Hypervisor(uri, pool)
    events: queue.Queue[LifecycleEvent] = queue.Queue()
    listener = EventListener(uri, events.put, pool=pool).start()
    listener.wait_connected(10)
    spec = _guest(f"fc-bench-{uuid.uuid4().hex[:6]}", None)
    hv.define(spec)
    start_ms, destroy_ms, start_event_ms, stop_event_ms = [], [], [], []
    try:
        for _ in range(cycles):
            t0 = time.time()
            hv.start(spec.uuid)
            t1 = time.time()
            start_event_ms.append((_wait(events, spec.uuid, "started").timestamp - t1) * 1000)
            start_ms.append((t1 - t0) * 1000)
            time.sleep(0.5)  # let the guest boot a little, as a real one would
            t0 = time.time()
            hv.destroy(spec.uuid)
            t1 = time.time()
            stop_event_ms.append((_wait(events, spec.uuid, "stopped").timestamp - t1) * 1000)
            destroy_ms.append((t1 - t0) * 1000)
    finally:
        if hv.state(spec.uuid).active:
            hv.destroy(spec.uuid)
        hv.undefine(spec.uuid)
        listener.stop()
        pool.close_all()
    dataset = "real libvirtd 9.0, TCG guest 128 MiB"
    out = [
        entry("libvirt_start", dataset, start_ms, "Hypervisor.start() call"),
        entry("libvirt_destroy", dataset, destroy_ms, "Hypervisor.destroy() call"),
        entry(
            "lifecycle_event_after_call_start",
            dataset,
            start_event_ms,
            "started event timestamp minus start() return",
        ),
        entry(
            "lifecycle_event_after_call_destroy",
            dataset,
            stop_event_ms,
            "stopped event timestamp minus destroy() return",
        ),
    ]
    for e in out:
        print_entry(e)
    return out


def bench_migration(rounds: int) -> list[dict[str, Any]]:
    """Live migrations of the running TCG guest between the two namespaced daemons."""
    base = tempfile.mkdtemp(prefix="fc-bench-mig-")
    subprocess.run([SCRIPT, "guest", GUEST_DIR], check=True)
    try:
        uri_a, uri_b = subprocess.run(
            [SCRIPT, "pair-up", base], check=True, capture_output=True, text=True
        ).stdout.split()
        pool = ConnectionPool()
        hosts = {
            "A": (Hypervisor(uri_a, pool), "qemu+tcp://10.99.0.1/system", "10.99.0.1"),
            "B": (Hypervisor(uri_b, pool), "qemu+tcp://10.99.0.2/system", "10.99.0.2"),
        }
        spec = _guest("fc-bench-mig", "/var/log/libvirt/qemu/fc-bench-mig-serial.log")
        hosts["A"][0].define(spec)
        hosts["A"][0].start(spec.uuid)
        time.sleep(4)  # booted
        seconds, downtime = [], []
        here, there = "A", "B"
        for _ in range(rounds):
            result = hosts[here][0].migrate(
                spec.uuid, hosts[there][1], migration_address=hosts[there][2]
            )
            seconds.append(result.seconds * 1000)
            stats = (
                hosts[there][0]
                .connection()
                .lookupByUUIDString(spec.uuid)
                .jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            )
            downtime.append(float(stats.get("downtime", 0)))
            here, there = there, here
        hosts[here][0].destroy(spec.uuid)
        hosts[here][0].undefine(spec.uuid)
        pool.close_all()
    finally:
        subprocess.run([SCRIPT, "pair-down", base], check=False)
    dataset = "2 namespaced libvirtd, TCG guest 128 MiB"
    out = [
        entry("live_migration", dataset, seconds, "Hypervisor.migrate() p2p, whole call"),
        entry("live_migration_downtime", dataset, downtime, "libvirt's completed-job downtime"),
    ]
    for e in out:
        print_entry(e)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print them, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.virt", description=__doc__)
    parser.add_argument("--hosts", type=int, default=1000, help="fake hosts to reconcile")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="cold reconcile passes")
    parser.add_argument("--cycles", type=int, default=20, help="start/destroy cycles")
    parser.add_argument("--migration", type=int, default=0, help="live migrations to time")
    parser.add_argument("--no-real", action="store_true", help="only the test:/// benchmark")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    found = bench_reconcile(args.hosts, args.concurrency, args.rounds)
    if not args.no_real:
        found += bench_lifecycle(args.cycles)
        if args.migration:
            found += bench_migration(args.migration)
    merge_results(args.results, found)
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
