"""Scale benchmarks: server-side latency of the pool tree, the host list and a subtree query.

``make bench`` (``python -m benchmarks.run``) builds a PostgreSQL dataset of 100 hosts and one
of 1,000 hosts (see ``benchmarks.dataset``), builds the real WSGI app on each, logs in as a
super admin through the login form and times, with ``time.perf_counter``:

* ``pool_tree_page``: ``GET /pools``, the whole tree with subtree host and VM counts;
* ``host_list_first_page``: ``GET /hosts``, 25 hosts by host name;
* ``host_list_last_page``: the last page of the host list (``GET /hosts?page=40`` at 1,000
  hosts, ``?page=4`` at 100), the deepest OFFSET a user can reach;
* ``pool_subtree_hardware``: ``PoolService.subtree()`` on ``root/hardware`` (nearly the
  whole tree), in a fresh session, as a request would;
* ``pool_subtree_site``: the same on one site, a mid-level hardware pool.

Within a metric the two datasets take turns, so noise from a shared machine falls on both
alike.  Every response is checked (status 200, the expected rows and totals) outside the
timed region.  It prints a table of p50 and p95 per metric and dataset, the 1,000-host / 100-host
ratios and whether the issue's goals are met, and merges the figures into
``benchmarks/results.json`` by (name, dataset).  The issue's goals are p95 < 50 ms at 1,000
hosts and a 1,000-host cost (p50) at most twice the 100-host cost.  Benchmarks report; they
do not assert.

The scratch databases ``fc_bench_100`` and ``fc_bench_1000`` are rebuilt on every run and
dropped at its end; ``--keep`` leaves them and reuses them next time if they still hold
exactly the dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import webtest
from passlib.apache import HtpasswdFile
from sqlalchemy.orm import Session

from fedoracloud import main as make_app
from fedoracloud.models import Pool
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService

from .dataset import Dataset, DatasetSpec, drop_database, prepare

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results.json")
ADMIN, ADMIN_PASSWORD = "admin", "bench-admin-password"
#: a sysadmin-cloud member with grants on GRANTED_POOLS pools (the login issue's benchmark)
MEMBER, MEMBER_PASSWORD = "member", "bench-member-password"
GRANTED_POOLS = 50
PAGE_SIZE = 25
#: the issue's goals
GOAL_P95_MS = 50.0
GOAL_RATIO = 2.0
SMALL, LARGE = 100, 1000

_HOST_ROW = 'data-testid="host-row"'
_POOL_ITEM = re.compile(r'<li data-testid="pool-')


@dataclass
class Metric:
    """One timed metric on one dataset."""

    name: str
    dataset: str
    target: str
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        """The median, in ms."""
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        """The 95th percentile, in ms."""
        return percentile(self.samples_ms, 95)


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct`` percentile of the samples, interpolating linearly between ranks."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Probe:
    """One thing to time on one dataset: the call, and the check of what it returns."""

    dataset: str
    target: str
    call: Callable[[], Any]
    check: Callable[[Any], None]


def timed(probes: list[Probe], warmup: int, n: int) -> list[list[float]]:
    """Warm every probe up, then time ``n`` rounds, one call per probe a round.

    The probes of a metric (one per dataset) take turns, in an order that rotates every
    round, so that noise from the machine falls on every dataset alike.  Every result is
    checked outside the timed region.
    """
    for probe in probes:
        for _ in range(warmup):
            probe.check(probe.call())
    samples: list[list[float]] = [[] for _ in probes]
    for round_ in range(n):
        for k in range(len(probes)):
            i = (round_ + k) % len(probes)
            started = time.perf_counter()
            result = probes[i].call()
            samples[i].append((time.perf_counter() - started) * 1000)
            probes[i].check(result)
    return samples


# -- the app -------------------------------------------------------------------------------


def app_settings(url: str, instance_dir: str) -> dict[str, str]:
    """Settings as the test suite gives them, with the production page size of 25."""
    htpasswd = os.path.join(instance_dir, "htpasswd")
    ht = HtpasswdFile(htpasswd, new=True, default_scheme="apr_md5_crypt")
    ht.set_password(ADMIN, ADMIN_PASSWORD)
    ht.set_password(MEMBER, MEMBER_PASSWORD)
    ht.save()
    groups = os.path.join(instance_dir, "groups")
    with open(groups, "w", encoding="utf-8") as out:
        out.write(f"sysadmin-cloud: {MEMBER}\n")
    return {
        "fedoracloud.htpasswd.groups_file": groups,
        "sqlalchemy.url": url,
        "fedoracloud.session_secret": "bench-secret-" + "x" * 20,
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.auth.backend": "htpasswd",
        "fedoracloud.htpasswd.file": htpasswd,
        "fedoracloud.admins": ADMIN,
        "fedoracloud.instance_dir": instance_dir,
        "fedoracloud.page_size": str(PAGE_SIZE),
    }


def logged_in_app(
    settings: dict[str, str],
    router: Any = None,
    username: str = ADMIN,
    password: str = ADMIN_PASSWORD,
) -> tuple[webtest.TestApp, Any]:
    """The real WSGI app in WebTest, logged in through the login form (the super admin by
    default)."""
    router = router or make_app({}, **settings)
    testapp = webtest.TestApp(router, extra_environ={"HTTP_HOST": "example.com"})
    form = testapp.get("/login").forms[0]
    form["username"] = username
    form["password"] = password
    response = form.submit()
    if response.status_int != 303:
        raise RuntimeError(f"login failed: {response.status}")
    return testapp, router


def grant_member(url: str) -> int:
    """Give the member a ``user`` role on GRANTED_POOLS pools: half hardware pools (their
    hosts and VM pools), half VM pools elsewhere; returns how many VMs they may then see."""
    from fedoracloud.models import RoleGrant, User, Vm

    engine = sa.create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            member = session.scalars(sa.select(User).where(User.username == MEMBER)).first()
            if member is None:
                member = User(username=MEMBER)
                session.add(member)
                session.flush()
            session.execute(sa.delete(RoleGrant).where(RoleGrant.user_id == member.id))
            half = GRANTED_POOLS // 2
            hardware = session.scalars(
                sa.select(Pool)
                .where(Pool.kind == "hardware", Pool.depth >= 3)
                .order_by(Pool.id.desc())
                .limit(half)
            ).all()
            covered = [p.path for p in hardware]
            vm_pools = [
                p
                for p in session.scalars(sa.select(Pool).where(Pool.kind == "vm").order_by(Pool.id))
                if not any(p.path.startswith(c) for c in covered)
            ][: GRANTED_POOLS - len(hardware)]
            for pool in [*hardware, *vm_pools]:
                session.add(RoleGrant(pool_id=pool.id, user_id=member.id, role="user"))
            paths = covered + [p.path for p in vm_pools]
            visible = sa.or_(*(Pool.path.startswith(path) for path in paths))
            return (
                session.scalar(
                    sa.select(sa.func.count(Vm.id)).join(Pool, Pool.id == Vm.pool_id).where(visible)
                )
                or 0
            )
    finally:
        engine.dispose()


# -- checks --------------------------------------------------------------------------------


def check_pool_tree(spec: DatasetSpec) -> Callable[[Any], None]:
    """The tree page lists every pool and the root's subtree counts every host and VM."""
    hosts = f"{spec.hosts} hosts</span>"
    vms = f"{spec.vms} VMs</span>"

    def check(response: Any) -> None:
        if response.status_int != 200:
            raise RuntimeError(f"GET /pools: {response.status}")
        text = response.text
        items = len(_POOL_ITEM.findall(text))
        if items != spec.pools or hosts not in text or vms not in text:
            raise RuntimeError(f"GET /pools: {items} pools, or the root's counts are wrong")

    return check


def check_host_page(spec: DatasetSpec, page: int) -> Callable[[Any], None]:
    """A host list page has its 25 rows (fewer on a short last page) and the right total."""
    pages = math.ceil(spec.hosts / PAGE_SIZE)
    rows = min(PAGE_SIZE, spec.hosts - (page - 1) * PAGE_SIZE)
    marks = (f"{spec.hosts} hosts</div>", f"Page {page} of {pages}</span>")

    def check(response: Any) -> None:
        if response.status_int != 200:
            raise RuntimeError(f"GET /hosts?page={page}: {response.status}")
        text = response.text
        found = text.count(_HOST_ROW)
        if found != rows or not all(mark in text for mark in marks):
            raise RuntimeError(f"GET /hosts?page={page}: {found} rows, expected {rows}")

    return check


def check_subtree(size: int) -> Callable[[list[Pool]], None]:
    """A subtree query returns the whole subtree."""

    def check(pools: list[Pool]) -> None:
        if len(pools) != size:
            raise RuntimeError(f"subtree: {len(pools)} pools, expected {size}")

    return check


# -- measuring -----------------------------------------------------------------------------


def subtree_call(engine: sa.Engine, pool_id: int) -> Callable[[], list[Pool]]:
    """``PoolService.subtree`` on a pool, in a fresh session as each request has."""
    with Session(engine) as session:
        pool = session.get(Pool, pool_id)
        if pool is None:
            raise RuntimeError(f"no pool {pool_id}")
        session.expunge(pool)

    def call() -> list[Pool]:
        with Session(engine) as session:
            return PoolService(ServiceContext.for_session(session)).subtree(pool)

    return call


def check_vm_page(total: int) -> Callable[[Any], None]:
    """A VM list's first page has its rows (25, or all if fewer) and the right total."""
    rows = min(PAGE_SIZE, total)

    def check(response: Any) -> None:
        if response.status_int != 200:
            raise RuntimeError(f"GET /vms: {response.status}")
        found = response.text.count('data-testid="vm-row"')
        if found != rows:
            raise RuntimeError(f"GET /vms: {found} rows, expected {rows} of {total}")

    return check


@dataclass
class Bench:
    """A dataset with the logged-in apps (super admin and member) and an engine."""

    dataset: Dataset
    testapp: webtest.TestApp
    engine: sa.Engine
    member_app: webtest.TestApp
    member_vms: int

    def get(self, path: str) -> Callable[[], Any]:
        """A call that GETs a page through the whole WSGI app."""
        return lambda: self.testapp.get(path)


def probe_for(name: str, bench: Bench) -> Probe:
    """The probe of one metric on one dataset."""
    ds, spec = bench.dataset, bench.dataset.spec
    last = math.ceil(spec.hosts / PAGE_SIZE)
    if name == "pool_tree_page":
        return Probe(spec.name, "GET /pools", bench.get("/pools"), check_pool_tree(spec))
    if name == "host_list_first_page":
        return Probe(spec.name, "GET /hosts", bench.get("/hosts"), check_host_page(spec, 1))
    if name == "host_list_last_page":
        path = f"/hosts?page={last}"
        return Probe(spec.name, f"GET {path}", bench.get(path), check_host_page(spec, last))
    if name == "vm_list_super_admin":
        return Probe(
            spec.name, "GET /vms (super admin)", bench.get("/vms"), check_vm_page(spec.vms)
        )
    if name == "vm_list_member_50_grants":
        return Probe(
            spec.name,
            f"GET /vms ({GRANTED_POOLS} grants)",
            lambda: bench.member_app.get("/vms"),
            check_vm_page(bench.member_vms),
        )
    if name == "host_list_member_50_grants":
        return Probe(
            spec.name,
            f"GET /hosts ({GRANTED_POOLS} grants)",
            lambda: bench.member_app.get("/hosts"),
            _status_ok("/hosts"),
        )
    if name == "pool_subtree_hardware":
        label, pool_id, size = "root/hardware", ds.hardware_id, ds.hardware_subtree
    elif name == "pool_subtree_site":
        label, pool_id, size = "root/hardware/site-00", ds.site_id, ds.site_subtree
    else:
        raise ValueError(f"unknown metric {name!r}")
    target = f"PoolService.subtree({label}) -> {size} pools"
    return Probe(spec.name, target, subtree_call(bench.engine, pool_id), check_subtree(size))


def _status_ok(path: str) -> Callable[[Any], None]:
    def check(response: Any) -> None:
        if response.status_int != 200 or 'data-testid="host-row"' not in response.text:
            raise RuntimeError(f"GET {path}: {response.status}")

    return check


METRICS = (
    "pool_tree_page",
    "host_list_first_page",
    "host_list_last_page",
    "vm_list_super_admin",
    "vm_list_member_50_grants",
    "host_list_member_50_grants",
    "pool_subtree_hardware",
    "pool_subtree_site",
)


def measure(datasets: list[Dataset], warmup: int, n: int) -> list[Metric]:
    """Every metric on every dataset, the datasets taking turns within each metric."""
    with contextlib.ExitStack() as stack:
        benches: list[Bench] = []
        for dataset in datasets:
            instance_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="fc-bench-"))
            settings = app_settings(dataset.url, instance_dir)
            testapp, router = logged_in_app(settings)
            stack.callback(router.registry["dbengine"].dispose)
            member_vms = grant_member(dataset.url)
            member_app, _ = logged_in_app(settings, router, MEMBER, MEMBER_PASSWORD)
            engine = sa.create_engine(dataset.url)
            stack.callback(engine.dispose)
            benches.append(Bench(dataset, testapp, engine, member_app, member_vms))
        metrics: list[Metric] = []
        for name in METRICS:
            probes = [probe_for(name, bench) for bench in benches]
            samples = timed(probes, warmup, n)
            metrics += [
                Metric(name, p.dataset, p.target, s) for p, s in zip(probes, samples, strict=True)
            ]
    return metrics


# -- reporting -----------------------------------------------------------------------------


def ratios(metrics: list[Metric]) -> dict[str, tuple[float, float]]:
    """Per metric: (p50, p95) at 1,000 hosts divided by the same at 100 hosts."""
    by_key = {(m.name, m.dataset): m for m in metrics}
    small, large = DatasetSpec(SMALL).name, DatasetSpec(LARGE).name
    found: dict[str, tuple[float, float]] = {}
    for m in metrics:
        a, b = by_key.get((m.name, small)), by_key.get((m.name, large))
        if m.dataset == large and a is not None and b is not None:
            found[m.name] = (b.p50 / a.p50, b.p95 / a.p95)
    return found


def entries(metrics: list[Metric], found: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """The results.json entries for these metrics."""
    large = DatasetSpec(LARGE).name
    out: list[dict[str, Any]] = []
    for m in metrics:
        entry: dict[str, Any] = {
            "name": m.name,
            "dataset": m.dataset,
            "p50": round(m.p50, 3),
            "p95": round(m.p95, 3),
            "unit": "ms",
            "n": len(m.samples_ms),
            "target": m.target,
            "min": round(min(m.samples_ms), 3),
            "max": round(max(m.samples_ms), 3),
        }
        if m.dataset == large and m.name in found:
            p50_ratio, p95_ratio = found[m.name]
            entry["ratio_vs_100_hosts"] = {"p50": round(p50_ratio, 3), "p95": round(p95_ratio, 3)}
            entry["goal_p95_under_50ms"] = m.p95 < GOAL_P95_MS
            entry["goal_at_most_2x_100_hosts"] = p50_ratio <= GOAL_RATIO
        out.append(entry)
    return out


def merge_results(path: str, new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace entries with the same (name, dataset), keep every other entry, write the file."""
    existing: list[dict[str, Any]] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            try:
                loaded = json.load(f)
            except json.JSONDecodeError:
                loaded = []
        existing = [e for e in loaded if isinstance(e, dict)] if isinstance(loaded, list) else []
    fresh = {(e["name"], e["dataset"]): e for e in new}
    merged: list[dict[str, Any]] = []
    for entry in existing:
        key = (entry.get("name"), entry.get("dataset"))
        merged.append(fresh.pop(key, entry))
    merged.extend(fresh.values())
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return merged


def table(metrics: list[Metric], found: dict[str, tuple[float, float]]) -> str:
    """The printed report: figures, ratios and goals."""
    lines = [
        f"{'metric':<24} {'dataset':<11} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}  target",
        "-" * 100,
    ]
    for m in metrics:
        lines.append(
            f"{m.name:<24} {m.dataset:<11} {len(m.samples_ms):>4} {m.p50:>8.2f} {m.p95:>8.2f}"
            f"  {m.target}"
        )
    if found:
        large = DatasetSpec(LARGE).name
        p95_at_large = {m.name: m.p95 for m in metrics if m.dataset == large}
        lines += [
            "",
            f"{'metric':<24} {'p50 1000/100':>12} {'p95 1000/100':>12}"
            f"  {'p95 < 50 ms @1000':<18} {'p50 ratio <= 2':<14}",
            "-" * 88,
        ]
        for name, (p50_ratio, p95_ratio) in found.items():
            fast = "met" if p95_at_large[name] < GOAL_P95_MS else "NOT met"
            flat = "met" if p50_ratio <= GOAL_RATIO else "NOT met"
            lines.append(f"{name:<24} {p50_ratio:>12.2f} {p95_ratio:>12.2f}  {fast:<18} {flat:<14}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--iterations", "-n", type=int, default=200, help="timed runs per metric")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per metric first")
    parser.add_argument(
        "--hosts",
        type=int,
        nargs="+",
        default=[SMALL, LARGE],
        help="dataset sizes in hosts (20 VMs each); ratios need 100 and 1000",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch databases fc_bench_<hosts> afterwards, and reuse them next"
        " time if they still hold exactly the dataset (default: rebuild, then drop)",
    )
    parser.add_argument("--results", default=RESULTS, help="the JSON file to merge into")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the datasets, measure, print the table, merge results.json, drop the databases."""
    args = parse_args(argv)
    datasets: list[Dataset] = []
    try:
        for hosts in args.hosts:
            spec = DatasetSpec(hosts)
            dataset = prepare(spec, reuse=args.keep)
            datasets.append(dataset)
            how = "reused" if dataset.reused else "generated"
            print(
                f"{spec.name}: {how} {spec.db_name} in {dataset.seconds:.1f} s ({spec.hosts}"
                f" hosts, {spec.vms} VMs, {spec.users} users, {spec.pools} pools)",
                flush=True,
            )
        metrics = measure(datasets, args.warmup, args.iterations)
    finally:
        if not args.keep:
            for dataset in datasets:
                drop_database(dataset.spec.db_name)
    found = ratios(metrics)
    print()
    print(table(metrics, found))
    merge_results(args.results, entries(metrics, found))
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
