"""Graph latency: reading collectd's RRD files for a host's and a VM's graphs.

``python -m benchmarks.graphs`` writes a week of readings every 10 s in collectd's layout
(its rrdtool plugin's data sources and RRAs) for two hosts, the seed's node (2 x quad-core:
8 CPUs, 2 NICs: 73 RRD files, 64 of them for the CPU graph) and a small one (2 CPUs, 1 NIC:
24 files), and a VM (CPU, one disk, one NIC: 3 files), then times with
``time.perf_counter``:

* ``graph_read_<graph>_<range>``: ``GraphsService.host_graph`` / ``vm_graph`` in-process
  (the graph's one ``rrdtool.xport`` of all its files, the averaging into the range's step);
* ``graph_api_<graph>_<range>``: ``GET /api/v1/hosts/{id}/graphs/{graph}?range=…`` through
  the real app (WebTest, logged in; security policy, PostgreSQL lookup of the host, JSON,
  the OpenAPI request check and response check as production runs them) and the answer's
  size in bytes;
* ``graph_host_page_all``: the four graphs a host page asks for, one after the other.

A scratch PostgreSQL database ``fc_bench_graphs`` is made and dropped; the RRD files go in
a temporary directory.  Figures are merged into ``benchmarks/results.json`` by (name,
dataset).  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import rrdtool
import sqlalchemy as sa
from alembic.config import Config

from alembic import command
from fedoracloud import main as make_app
from fedoracloud.models import Host, PoolKind, Vm
from fedoracloud.services import tasks as task_queue
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.graphs import RANGES, GraphsService, GraphsSettings
from fedoracloud.services.pools import PoolService

from .run import RESULTS, app_settings, logged_in_app, merge_results, percentile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = os.environ.get("FEDORACLOUD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DB_NAME = "fc_bench_graphs"
STEP = 10
WEEK = 7 * 86400
#: collectd's RRAs at a 10 s step (see tests/rrd.py): (rows, steps per row)
RRAS = ((360, 1), (1235, 7), (1210, 50), (1202, 223), (1201, 2635))
HOSTS = {
    "seed node": ("node01.bench.example.org", 8, ("eth0", "eth1")),
    "small node": ("node02.bench.example.org", 2, ("eth0",)),
}


def write_rrd(path: str, sources: Sequence[tuple[str, str]], end: int) -> None:
    """A week of readings as collectd's rrdtool plugin writes them (AVERAGE, MIN, MAX)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    start = end - WEEK
    rrdtool.create(
        path,
        *("--step", str(STEP), "--start", str(start - STEP)),
        *(f"DS:{name}:{kind}:{2 * STEP}:0:U" for name, kind in sources),
        *(f"RRA:{cf}:0.1:{per}:{rows}" for rows, per in RRAS for cf in ("AVERAGE", "MIN", "MAX")),
    )
    cells = ":".join("{d}" if kind == "DERIVE" else "{g}" for _, kind in sources)
    rows = [
        f"{t}:" + cells.format(d=(t - start) * 37 + (t % 7), g=1 + (t % 600) / 600)
        for t in range(start, end + 1, STEP)
    ]
    for i in range(0, len(rows), 5000):
        rrdtool.update(path, *rows[i : i + 5000])


def write_host(rrd_dir: str, hostname: str, cpus: int, nics: Sequence[str], end: int) -> int:
    base = os.path.join(rrd_dir, hostname)
    files = 0
    for cpu in range(cpus):
        for state in ("user", "system", "wait", "nice", "softirq", "interrupt", "steal", "idle"):
            write_rrd(f"{base}/cpu-{cpu}/cpu-{state}.rrd", [("value", "DERIVE")], end)
            files += 1
    for kind in ("used", "buffered", "cached", "slab_recl", "slab_unrecl", "free"):
        write_rrd(f"{base}/memory/memory-{kind}.rrd", [("value", "GAUGE")], end)
        files += 1
    load = [("shortterm", "GAUGE"), ("midterm", "GAUGE"), ("longterm", "GAUGE")]
    write_rrd(f"{base}/load/load.rrd", load, end)
    for nic in nics:
        write_rrd(
            f"{base}/interface-{nic}/if_octets.rrd", [("rx", "DERIVE"), ("tx", "DERIVE")], end
        )
    return files + 1 + len(nics)


def write_vm(rrd_dir: str, vm_uuid: str, end: int) -> int:
    base = os.path.join(rrd_dir, vm_uuid, "virt")
    write_rrd(f"{base}/virt_cpu_total.rrd", [("value", "DERIVE")], end)
    write_rrd(f"{base}/disk_octets-vda.rrd", [("read", "DERIVE"), ("write", "DERIVE")], end)
    write_rrd(f"{base}/if_octets-vnet0.rrd", [("rx", "DERIVE"), ("tx", "DERIVE")], end)
    return 3


@contextmanager
def scratch_app(rrd_dir: str, tmp: str) -> Iterator[Any]:
    """The real app on a fresh PostgreSQL database, reading ``rrd_dir``."""
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DB_NAME}"'))
    url = sa.engine.make_url(PG).set(database=DB_NAME).render_as_string(False)
    settings = {**app_settings(url, tmp), "fedoracloud.stats.rrd_dir": rrd_dir}
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(ROOT, "alembic"))
    cfg.attributes["settings"] = settings
    command.upgrade(cfg, "head")
    previous = task_queue.current_dispatcher()
    app = make_app({}, **settings)
    task_queue.install_dispatcher(previous)
    try:
        yield app
    finally:
        app.registry["dbengine"].dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


def add_rows(app: Any, vm_uuid: str) -> dict[str, int]:
    """The hosts and the VM in the database; their ids."""
    with app.registry["dbsession_factory"]() as session:
        pools = PoolService(ServiceContext.for_session(session))
        made = pools.ensure_builtin()
        fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
        vm_pool = pools.create("fedora-vms", PoolKind.VM, fedora)
        ids: dict[str, int] = {}
        for name, (hostname, cpus, _) in HOSTS.items():
            host = Host(
                uuid=str(uuidlib.uuid4()),
                hostname=hostname,
                pool_id=fedora.id,
                state="available",
                cpu_count=cpus,
            )
            session.add(host)
            session.flush()
            ids[name] = host.id
        vm = Vm(
            uuid=vm_uuid,
            name="bench-vm",
            pool_id=vm_pool.id,
            pool_kind="vm",
            host_id=ids["seed node"],
            vcpus=2,
            memory_mib=2048,
            state="running",
        )
        session.add(vm)
        session.flush()
        ids["vm"] = vm.id
        session.commit()
    return ids


def timed(call: Callable[[], Any], warmup: int, n: int) -> tuple[list[float], Any]:
    for _ in range(warmup):
        call()
    samples, last = [], None
    for _ in range(n):
        started = time.perf_counter()
        last = call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, last


def entry(
    name: str, dataset: str, target: str, samples: list[float], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "dataset": dataset,
        "p50": round(percentile(samples, 50), 3),
        "p95": round(percentile(samples, 95), 3),
        "unit": "ms",
        "n": len(samples),
        "target": target,
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
        **extra,
    }


def bench(n: int, warmup: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fc-bench-graphs-") as tmp:
        rrd_dir = os.path.join(tmp, "rrd")
        end = int(time.time()) // STEP * STEP
        vm_uuid = str(uuidlib.uuid4())
        started = time.perf_counter()
        files = {name: write_host(rrd_dir, h, c, nics, end) for name, (h, c, nics) in HOSTS.items()}
        files["vm"] = write_vm(rrd_dir, vm_uuid, end)
        print(f"wrote a week of RRD files in {time.perf_counter() - started:.1f} s: {files}")
        reader = GraphsService(GraphsSettings(rrd_dir))
        datasets = {
            name: f"{name}: {files[name]} RRD files (a week at 10 s), PostgreSQL" for name in files
        }
        for name, (hostname, _, _) in HOSTS.items():
            for graph, range_name in (
                ("cpu", "1h"),
                ("cpu", "1d"),
                ("cpu", "1w"),
                ("memory", "1d"),
                ("load", "1d"),
                ("interfaces", "1d"),
            ):
                samples, graph_data = timed(
                    lambda h=hostname, g=graph, r=range_name: reader.host_graph(h, g, RANGES[r]),
                    warmup,
                    n,
                )
                assert not graph_data.no_data, (hostname, graph)
                results.append(
                    entry(
                        f"graph_read_{graph}_{range_name}",
                        datasets[name],
                        f"GraphsService.host_graph({graph}, {range_name})",
                        samples,
                    )
                )
        for graph in ("cpu", "disk", "network"):
            samples, graph_data = timed(
                lambda g=graph: reader.vm_graph(vm_uuid, g, RANGES["1d"], 2), warmup, n
            )
            assert not graph_data.no_data, graph
            results.append(
                entry(
                    f"graph_read_vm_{graph}_1d",
                    datasets["vm"],
                    f"GraphsService.vm_graph({graph}, 1d)",
                    samples,
                )
            )
        with scratch_app(rrd_dir, tmp) as app:
            ids = add_rows(app, vm_uuid)
            web, _ = logged_in_app(app.registry.settings, router=app)
            for name in HOSTS:
                base = f"/api/v1/hosts/{ids[name]}/graphs"
                for graph, range_name in (
                    ("cpu", "1h"),
                    ("cpu", "1d"),
                    ("cpu", "1w"),
                    ("load", "1d"),
                ):
                    path = f"{base}/{graph}?range={range_name}"
                    samples, response = timed(lambda p=path: web.get(p), warmup, n)
                    assert response.json["no_data"] is False
                    results.append(
                        entry(
                            f"graph_api_{graph}_{range_name}",
                            datasets[name],
                            f"GET {path.replace(str(ids[name]), '{id}')}",
                            samples,
                            bytes=len(response.body),
                        )
                    )

                def page(base: str = base) -> int:
                    return sum(
                        len(web.get(f"{base}/{g}?range=1h").body)
                        for g in ("cpu", "memory", "load", "interfaces")
                    )

                samples, size = timed(page, warmup, n)
                results.append(
                    entry(
                        "graph_host_page_all",
                        datasets[name],
                        "the 4 graphs of a host page (1h), one after the other",
                        samples,
                        bytes=size,
                    )
                )
            path = f"/api/v1/vms/{ids['vm']}/graphs/disk?range=1d"
            samples, response = timed(lambda: web.get(path), warmup, n)
            results.append(
                entry(
                    "graph_api_vm_disk_1d",
                    datasets["vm"],
                    "GET /api/v1/vms/{id}/graphs/disk?range=1d",
                    samples,
                    bytes=len(response.body),
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    """Write the files, time the reads and the API, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    results = bench(args.n, args.warmup)
    print(f"{'name':<28} {'dataset':<58} {'p50':>8} {'p95':>8} {'bytes':>8}")
    for r in results:
        print(
            f"{r['name']:<28} {r['dataset']:<58} {r['p50']:>8.2f} {r['p95']:>8.2f}"
            f" {r.get('bytes', ''):>8}"
        )
    merge_results(RESULTS, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
