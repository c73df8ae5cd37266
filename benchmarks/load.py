"""Load on the rehearsed split deployment: concurrent API clients through Apache's balancer.

``python -m benchmarks.load`` (part of ``make bench``) builds the 1,000-host dataset of
``benchmarks.dataset`` (1,000 fake hosts, 20,000 VMs, 200 pools, 500 users), copies it into
a scratch database (``fc_bench_load``), and starts the rehearsal's cluster on it
(``tests/faults/cluster.py``: two app instances from ``deploy/production.ini`` behind
Apache with TLS and ``mod_proxy_balancer``, a worker on RabbitMQ, an event listener, a
private libvirtd).  The fake hosts keep their rows but have an empty libvirt URI, so the event
listener watches only the real (private) libvirtd host, where ``--guests`` tiny TCG guests
run: the VM actions go to them.

First one client alone for 15 s (what a request costs when nothing queues).  Then
``--clients`` clients (threads, each its own HTTPS connection, all in the super
admin's session) call the front for ``--seconds`` seconds (and at most ``--max-requests``
requests), each pausing a random 0 to twice ``--think`` seconds between calls: one run
without pauses (the most the deployment serves; latency is then mostly queueing) and one
at a mean of 2 s (50 scripts at their own pace).  The mix, per client call:

* 85 % reads: a page of the VM list or of the host list (a random page of 20,000 VMs or
  1,000 hosts), one VM, one host, the pool list;
* 15 % VM actions: ``suspend`` or ``resume`` on one of the running guests (202 with the
  task, or 409 when the VM's state does not allow it at that moment: both are answers,
  not errors; the worker and the event listener carry them out on the real libvirtd).

It reports throughput, p50/p95/p99 latency of reads and of actions, errors (any other
status, or a connection closed without an answer; goal 0), whether reads meet p95 < 200 ms,
the app instances' own CPU time per request (user + system time of their processes, from
``/proc/<pid>/stat``: unlike latency, it does not depend on the load generator and the
cluster sharing the cores; a first phase also reads each kind of page ``--cpu-reads`` times
alone, one client, for the CPU of one API read; goal at most 4 ms),
and the PostgreSQL connections of the deployment (``pg_stat_activity``, sampled every
0.5 s: the most at once in total and per process, against the pool limit of each process,
``pool_size + max_overflow`` from deploy/production.ini).  Figures are merged into
``benchmarks/results.json``.  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import configparser
import os
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

import requests
import sqlalchemy as sa

from tests.faults.cluster import DEPLOY_INI, Client, Cluster, guest_vm
from tests.faults.rehearsal import BROKER, running_cluster, tiny_guest

from .dataset import (
    DatasetSpec,
    _admin_engine,
    database_url,
    drop_database,
    prepare,
)
from .run import RESULTS, merge_results, percentile

LOAD_DB = "fc_bench_load"
GOAL_READ_P95_MS = 200.0
GOAL_CPU_PER_READ_MS = 4.0
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and of every process in their sessions
    (``/proc/<pid>/stat``; pserve serves from its own threads, but a forked helper counts
    too)."""
    sessions, total = set(pids), 0
    for entry in os.listdir("/proc"):
        if not entry.isdecimal():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        # after the name: state ppid pgrp session … utime (11) stime (12)
        if int(fields[3]) in sessions or int(entry) in sessions:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def rss_mib(pid: int) -> float:
    """A process's resident memory (``VmRSS`` of ``/proc/<pid>/status``), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def web_pids(cluster: Cluster) -> list[int]:
    """The app instances' processes (each started in a session of its own)."""
    return [p.popen.pid for p in cluster.web if p.popen is not None]


def copy_dataset(spec: DatasetSpec) -> str:
    """The dataset copied into LOAD_DB (a template copy: seconds, not a refill)."""
    drop_database(LOAD_DB)
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{LOAD_DB}" TEMPLATE "{spec.db_name}"'))
    finally:
        admin.dispose()
    url = database_url(LOAD_DB)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # only the real libvirtd's host is listened to
        conn.execute(sa.text("UPDATE hosts SET libvirt_uri = ''"))
        # the dataset fills the default quota; the load's guests need room
        conn.execute(
            sa.text(
                "UPDATE quotas SET vcpus = NULL, memory_mib = NULL, vms = NULL, nics = NULL,"
                " storage_gib = NULL"
            )
        )
    engine.dispose()
    return url


def pool_limit() -> int:
    """pool_size + max_overflow of one process, from deploy/production.ini."""
    ini = configparser.RawConfigParser()
    ini.read(DEPLOY_INI)
    app = ini["app:main"]
    return int(app.get("sqlalchemy.pool_size", "5")) + int(app.get("sqlalchemy.max_overflow", "10"))


class Sampler(threading.Thread):
    """pg_stat_activity of the load database every 0.5 s: connections per process."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        self.stop = threading.Event()
        self.total_max = 0
        self.per_process_max: Counter[str] = Counter()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT application_name, count(*) FROM pg_stat_activity"
                        " WHERE datname = :db AND pid <> pg_backend_pid()"
                        " GROUP BY application_name"
                    ),
                    {"db": LOAD_DB},
                ).all()
            self.total_max = max(self.total_max, sum(n for _a, n in rows))
            for name, count in rows:
                if count > self.per_process_max[name or "?"]:
                    self.per_process_max[name or "?"] = count

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.engine.dispose()


class Load:
    """The clients and what they measured."""

    def __init__(
        self,
        cluster: Cluster,
        client: Client,
        vm_ids: list[int],
        args: Any,
        think: float,
        clients: int,
        seconds: float,
    ) -> None:
        self.think = think
        self.clients = clients
        self.seconds = seconds
        self.cluster = cluster
        self.client = client
        self.vm_ids = vm_ids
        self.args = args
        self.reads: list[float] = []
        self.actions: list[float] = []
        #: read latencies by what was read (``GET /api/v1/vms?page``, ``…/vms/{id}`` …)
        self.by_target: dict[str, list[float]] = {}
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.count = 0
        self.deadline = 0.0
        self.cpu_before = self.cpu_used = 0.0
        with cluster.engine.connect() as conn:
            self.sample_vms = [r for (r,) in conn.execute(sa.text("SELECT id FROM vms LIMIT 2000"))]
            self.sample_hosts = [
                r for (r,) in conn.execute(sa.text("SELECT id FROM hosts LIMIT 1000"))
            ]
            self.vm_pages = int(conn.scalar(sa.text("SELECT count(*) FROM vms")) or 1) // 25 + 1
            self.host_pages = int(conn.scalar(sa.text("SELECT count(*) FROM hosts")) or 1) // 25 + 1

    def request(self, rng: random.Random) -> tuple[str, str, str]:
        """(kind, method, path) of the next call."""
        roll = rng.random()
        if roll < 0.15:
            action = rng.choice(("suspend", "resume"))
            return "action", "POST", f"/api/v1/vms/{rng.choice(self.vm_ids)}/{action}"
        if roll < 0.40:
            return "read", "GET", f"/api/v1/vms?page={rng.randrange(1, self.vm_pages)}"
        if roll < 0.65:
            return "read", "GET", f"/api/v1/hosts?page={rng.randrange(1, self.host_pages)}"
        if roll < 0.80:
            return "read", "GET", f"/api/v1/vms/{rng.choice(self.sample_vms)}"
        if roll < 0.95:
            return "read", "GET", f"/api/v1/hosts/{rng.choice(self.sample_hosts)}"
        return "read", "GET", "/api/v1/pools"

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        client = self.client.clone()
        while time.monotonic() < self.deadline:
            with self.lock:
                if self.count >= self.args.max_requests:
                    return
                self.count += 1
            kind, method, path = self.request(rng)
            started = time.perf_counter()
            try:
                status = client.call(method, path).status_code
            except requests.RequestException as exc:
                with self.lock:
                    self.errors[f"{method} {path.split('?')[0]}: {type(exc).__name__}"] += 1
                continue
            took = (time.perf_counter() - started) * 1000
            ok = status == 200 if kind == "read" else status in (202, 409)
            with self.lock:
                self.statuses[status] += 1
                (self.reads if kind == "read" else self.actions).append(took)
                if kind == "read":
                    self.by_target.setdefault(_target(path), []).append(took)
                if not ok:
                    self.errors[f"{method} {path.split('?')[0]}: {status}"] += 1
            if self.think:
                time.sleep(rng.uniform(0, 2 * self.think))

    def run(self) -> float:
        threads = [
            threading.Thread(target=self.worker, args=(i,), daemon=True)
            for i in range(self.clients)
        ]
        self.cpu_before = cpu_seconds(web_pids(self.cluster))
        started = time.monotonic()
        self.deadline = started + self.seconds
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.seconds + 120)
        elapsed = time.monotonic() - started
        self.cpu_used = cpu_seconds(web_pids(self.cluster)) - self.cpu_before
        return elapsed


def _target(path: str) -> str:
    """``/api/v1/vms?page=7`` → ``GET /api/v1/vms?page``, ``/api/v1/hosts/12`` → ``…/{id}``."""
    base, _, query = path.partition("?")
    parts = ["{id}" if p.isdecimal() else p for p in base.split("/")]
    return "GET " + "/".join(parts) + ("?page" if query else "")


def cpu_per_read(load: Load, calls: int) -> dict[str, Any]:
    """The app instances' CPU for one API read of each kind, one client, nothing else
    running: ``calls`` reads of each (varied ids and pages), the CPU they took / calls."""
    rng = random.Random(7)
    client = load.client.clone()
    kinds = {
        "GET /api/v1/vms?page": lambda: f"/api/v1/vms?page={rng.randrange(1, load.vm_pages)}",
        "GET /api/v1/hosts?page": lambda: f"/api/v1/hosts?page={rng.randrange(1, load.host_pages)}",
        "GET /api/v1/vms/{id}": lambda: f"/api/v1/vms/{rng.choice(load.sample_vms)}",
        "GET /api/v1/hosts/{id}": lambda: f"/api/v1/hosts/{rng.choice(load.sample_hosts)}",
        "GET /api/v1/pools": lambda: "/api/v1/pools",
    }
    pids = web_pids(load.cluster)
    by_kind: dict[str, float] = {}
    for kind, path in kinds.items():
        for _ in range(5):  # warm: connections, compiled statements
            client.call("GET", path())
        before = cpu_seconds(pids)
        for _ in range(calls):
            client.call("GET", path())
        by_kind[kind] = round((cpu_seconds(pids) - before) * 1000 / calls, 2)
        print(f"    {kind:<28} app CPU {by_kind[kind]:6.2f} ms per read", flush=True)
    every = sorted(by_kind.values())
    return {
        "name": "load_cpu_per_read",
        "dataset": "1000 hosts, one client, reads one after the other",
        "unit": "ms",
        "value": round(sum(every) / len(every), 2),
        "by_target": by_kind,
        "calls_each": calls,
        "target": "user + system CPU of the two app instances per API read (/proc/<pid>/stat)",
        "goal_at_most_4ms": every[-1] <= GOAL_CPU_PER_READ_MS,
        "machine_load_1min": round(os.getloadavg()[0], 1),
    }


def start_guests(cluster: Cluster, client: Client, count: int) -> list[int]:
    """``count`` tiny TCG guests running on the private libvirtd host, made via the API."""
    guest = tiny_guest()
    ids = []
    for i in range(count):
        made = client.api("POST", "/api/v1/vms", guest_vm(cluster, guest, f"load-{i:02d}"))
        client.wait_task(made["task"]["id"], 120)
        ids.append(made["id"])
    for vm_id in ids:
        client.api("POST", f"/api/v1/vms/{vm_id}/start", expect=(202,))
    for vm_id in ids:
        client.wait_vm(vm_id, "running", 120)
    return ids


def summary(name: str, samples: list[float], **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "unit": "ms"}
    if samples:
        entry.update(
            p50=round(percentile(samples, 50), 3),
            p95=round(percentile(samples, 95), 3),
            p99=round(percentile(samples, 99), 3),
            n=len(samples),
            max=round(max(samples), 3),
        )
    entry.update(extra)
    return entry


def report(
    load: Load, sampler: Sampler, elapsed: float, think: float, limit: int
) -> list[dict[str, Any]]:
    """The run's results.json entries, printed."""
    clients = load.clients
    label = f"1000 hosts, {clients} clients, think {think:g} s"
    total = len(load.reads) + len(load.actions)
    errors = sum(load.errors.values())
    reads = summary(
        "load_reads",
        load.reads,
        dataset=label,
        target="GET VM/host lists, a VM, a host, pools: through Apache to 2 instances",
        goal_p95_under_200ms=bool(load.reads) and percentile(load.reads, 95) < GOAL_READ_P95_MS,
    )
    actions = summary(
        "load_vm_actions", load.actions, dataset=label, target="suspend/resume: 202 or 409"
    )
    processes = dict(sorted(sampler.per_process_max.items()))
    overall = {
        "name": "load_run",
        "dataset": label,
        "unit": "requests/s",
        "value": round(total / elapsed, 1),
        "requests": total,
        "seconds": round(elapsed, 1),
        "errors": errors,
        "error_kinds": dict(load.errors.most_common(10)),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "db_connections_max": sampler.total_max,
        "db_connections_per_process_max": processes,
        "db_pool_limit_per_process": limit,
        "db_within_pool_limits": all(v <= limit + 1 for v in processes.values()),
        # the app instances' own CPU, whatever the load generator and the rest cost
        "server_cpu_ms_per_request": round(load.cpu_used * 1000 / total, 2) if total else None,
        "server_rss_mib": [round(rss_mib(pid), 1) for pid in web_pids(load.cluster)],
        # the figures depend on what else the machine runs: its load average at the end
        "machine_load_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
    }
    print(
        f"\nload ({label}): {total} requests in {elapsed:.1f} s = {overall['value']} req/s,"
        f" {errors} errors {dict(load.errors.most_common(5))};"
        f" app CPU {overall['server_cpu_ms_per_request']} ms per request,"
        f" app RSS {overall['server_rss_mib']} MiB"
    )
    for entry in (reads, actions):
        if "p50" in entry:
            print(
                f"  {entry['name']:<16} n={entry['n']:<6} p50 {entry['p50']:8.1f}"
                f"  p95 {entry['p95']:8.1f}  p99 {entry['p99']:8.1f} ms"
            )
    reads["by_target"] = {}
    for target, samples in sorted(load.by_target.items()):
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        reads["by_target"][target] = {"p50": round(p50, 1), "p95": round(p95, 1), "n": len(samples)}
        print(f"    {target:<28} n={len(samples):<5} p50 {p50:8.1f}  p95 {p95:8.1f} ms")
    print(f"  reads p95 < {GOAL_READ_P95_MS:g} ms: {reads.get('goal_p95_under_200ms')}")
    print(f"  statuses: {overall['statuses']}")
    print(
        f"  PostgreSQL connections: at most {sampler.total_max} at once; per process"
        f" {processes} (limit {limit} each: pool_size + max_overflow; +1 for the event"
        " listener's lock connection)",
        flush=True,
    )
    return [reads, actions, overall]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="per run (60)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per run")
    parser.add_argument(
        "--think",
        type=float,
        nargs="+",
        default=[0.0, 2.0],
        help="one run per value: the mean pause of each client between calls (0 and 2 s)",
    )
    parser.add_argument("--guests", type=int, default=4, help="running TCG guests for actions")
    parser.add_argument(
        "--cpu-reads", type=int, default=200, help="reads of each kind for the CPU per read"
    )
    parser.add_argument("--keep", action="store_true", help="keep the dataset's database")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 600:
        parser.error("--clients 1-200 and --seconds 1-600")
    if len(args.think) > 4 or not all(0 <= t <= 30 for t in args.think):
        parser.error("--think: at most 4 values of 0-30 s")
    if os.geteuid() != 0:
        print("benchmarks.load: needs root (the rehearsal's private libvirtd)", file=sys.stderr)
        return 2
    spec = DatasetSpec(hosts=1000)
    print(f"building the dataset ({spec.name}, {spec.vms} VMs) …", file=sys.stderr)
    prepare(spec, reuse=True)
    url = copy_dataset(spec)
    limit = pool_limit()
    results: list[dict[str, Any]] = []
    try:
        with running_cluster(url, BROKER, instances=2, workers=1, listeners=1) as cluster:
            client = Client(cluster.front, cluster.cert, timeout=60).login()
            vm_ids = start_guests(cluster, client, args.guests)
            print("app CPU per API read (one client):", flush=True)
            results.append(
                cpu_per_read(Load(cluster, client, vm_ids, args, 0.0, 1, 0.0), args.cpu_reads)
            )
            # one client first: what a request costs here when nothing queues
            runs = [(1, 0.0, min(15.0, args.seconds))]
            runs += [(args.clients, think, args.seconds) for think in args.think]
            for clients, think, seconds in runs:
                load = Load(cluster, client, vm_ids, args, think, clients, seconds)
                sampler = Sampler(url)
                sampler.start()
                print(
                    f"{clients} clients for {seconds:g} s, think {think:g} s,"
                    f" through {cluster.front} …",
                    file=sys.stderr,
                )
                elapsed = load.run()
                sampler.close()
                results += report(load, sampler, elapsed, think, limit)
    finally:
        drop_database(LOAD_DB)
        if not args.keep:
            drop_database(spec.db_name)
    merge_results(args.results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
