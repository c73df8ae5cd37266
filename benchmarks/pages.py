"""Web UI benchmarks: the main pages at 1,000 hosts / 20,000 VMs, and how fast a VM's state
change shows in a page open in a browser.

``python -m benchmarks.pages`` (part of ``make bench``):

1. **Pages.** Builds the 1,000-host dataset of ``benchmarks.dataset`` (20 VMs a host, 200
   pools, 500 people) in its own PostgreSQL database, builds the real WSGI app on it, logs in
   through the login form (the super admin, and a member with grants on 50 pools) and times
   each main page in process (server time, ``time.perf_counter``; WebTest, no network),
   checking each answer (status 200, its heading) outside the timed region.  It reports p50
   and p95 and the bytes of each page's HTML, and once, through Chromium, what a first visit
   to the pool tree transfers in all (HTML, CSS, JavaScript, fonts; nothing is compressed,
   as waitress serves it) and what a second visit transfers (the static files cached).

2. **VM state to page.** Serves that app with waitress on 127.0.0.1 (a thread, as
   ``fedoracloud serve`` does), opens a VM's page in headless Chromium, then changes the VM's
   state ``--changes`` times through ``VmStateRecorder.apply`` (what the libvirt event
   listener calls for each lifecycle event: the row change, committed) and measures, with the
   wall clock both sides share, the time from just before that call to the moment the page's
   state label shows the new state (a MutationObserver in the page stamps it).  The page is
   never reloaded (checked).  Goal: under 1 s.

Figures are merged into ``benchmarks/results.json``.  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from fedoracloud import main as make_app
from fedoracloud.models import Host, Pool, Vm
from fedoracloud.services.vm_list import Cursor

from .dataset import DatasetSpec, drop_database, prepare
from .run import (
    MEMBER,
    MEMBER_PASSWORD,
    RESULTS,
    app_settings,
    grant_member,
    logged_in_app,
    merge_results,
    percentile,
)

CHROMIUM = "/usr/bin/chromium"
HOSTS = 1000
GOAL_LIVE_MS = 1000.0


@dataclass(frozen=True)
class PagesSpec(DatasetSpec):
    """The 1,000-host dataset in a database of its own (``make bench`` runs the others)."""

    @property
    def db_name(self) -> str:
        return f"fc_bench_pages_{self.hosts}"


@dataclass
class PageFigure:
    name: str
    path: str
    who: str
    samples_ms: list[float]
    html_bytes: int

    def entry(self, dataset: str) -> dict[str, Any]:
        return {
            "name": f"page {self.name}",
            "dataset": dataset,
            "path": self.path,
            "who": self.who,
            "p50": round(percentile(self.samples_ms, 50), 3),
            "p95": round(percentile(self.samples_ms, 95), 3),
            "unit": "ms",
            "n": len(self.samples_ms),
            "html_bytes": self.html_bytes,
            "target": "server time of the page, in process",
        }


def _ids(engine: sa.Engine) -> dict[str, Any]:
    """Real ids in the dataset for the pages that show one thing."""
    with Session(engine) as s:
        host = s.scalars(select(Host).order_by(Host.id).limit(1)).one()
        vm = s.scalars(select(Vm).where(Vm.host_id == host.id).order_by(Vm.id).limit(1)).one()
        site = s.scalars(select(Pool).where(Pool.depth == 2, Pool.kind == "hardware")).first()
        vm_pool = s.scalars(select(Pool).where(Pool.kind == "vm").order_by(Pool.id)).first()
        vms = s.scalar(select(sa.func.count(Vm.id))) or 0
        assert site is not None and vm_pool is not None
        last_page = max(1, -(-vms // 25))
        # the cursor of the last page's next link on the page before it (name order)
        before = s.execute(
            select(Vm.name, Vm.id)
            .order_by(Vm.name, Vm.id)
            .offset((last_page - 1) * 25 - 1)
            .limit(1)
        ).one()
        return {
            "host": host.id,
            "vm": vm.id,
            "site": site.id,
            "vm_pool": vm_pool.id,
            "vm_last_page": last_page,
            "vm_last_after": Cursor("name", before.name, before.id).encode(),
        }


def page_list(ids: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, path, who, text the answer must hold)."""
    return [
        ("pool tree", "/pools", "admin", "<h1"),
        ("hardware pool", f"/pools/{ids['site']}", "admin", 'data-testid="pool-name"'),
        ("VM pool", f"/pools/{ids['vm_pool']}", "admin", 'data-testid="pool-name"'),
        ("host list", "/hosts", "admin", 'data-testid="host-row"'),
        ("host list, last page", "/hosts?page=40", "admin", 'data-testid="host-row"'),
        ("host", f"/hosts/{ids['host']}", "admin", 'data-testid="hostname"'),
        ("VM list", "/vms", "admin", 'data-testid="vm-row"'),
        ("VM list, last page", f"/vms?page={ids['vm_last_page']}", "admin", 'data-testid="vm-row"'),
        (
            "VM list, last page by cursor",
            f"/vms?after={ids['vm_last_after']}&page={ids['vm_last_page']}",
            "admin",
            'data-testid="vm-row"',
        ),
        ("VM list, member", "/vms", "member", 'data-testid="vm-row"'),
        ("VM list, search", "/vms?q=vm-1", "admin", 'data-testid="total"'),
        ("VM", f"/vms/{ids['vm']}", "admin", 'data-testid="vm-state"'),
        ("VM live poll", f"/vms/{ids['vm']}/live", "admin", '"version"'),
        ("tasks", "/tasks", "admin", "<h1"),
        ("audit log", "/audit", "admin", "<h1"),
        ("approvals", "/approvals", "admin", "<h1"),
        ("people", "/users", "admin", "<h1"),
        ("account", "/account", "member", 'data-testid="account-username"'),
    ]


def time_pages(
    settings: dict[str, str], ids: dict[str, Any], warmup: int, n: int
) -> list[PageFigure]:
    admin, router = logged_in_app(settings)
    member, _ = logged_in_app(settings, router, MEMBER, MEMBER_PASSWORD)
    apps = {"admin": admin, "member": member}
    figures = []
    for name, path, who, must in page_list(ids):
        app = apps[who]

        def call(app: Any = app, path: str = path) -> Any:
            return app.get(path, expect_errors=True)

        def check(response: Any, path: str = path, must: str = must) -> None:
            if response.status_int != 200 or must not in response.text:
                raise RuntimeError(f"GET {path}: {response.status} {response.text[:200]!r}")

        for _ in range(warmup):
            check(call())
        samples, size = [], 0
        for _ in range(n):
            started = time.perf_counter()
            response = call()
            samples.append((time.perf_counter() - started) * 1000)
            check(response)
            size = len(response.body)
        figures.append(PageFigure(name, path, who, samples, size))
        print(
            f"  {name:<22} p50 {percentile(samples, 50):7.1f} ms  "
            f"p95 {percentile(samples, 95):7.1f} ms  {size / 1024:7.1f} KiB",
            flush=True,
        )
    return figures


class Served:
    """The app served by waitress on 127.0.0.1:<free port> in a thread."""

    def __init__(self, router: Any) -> None:
        import waitress

        self.server = waitress.create_server(router, host="127.0.0.1", port=0, threads=8)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
        self.thread.join(timeout=5)


def _login(page: Any, url: str, username: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


TRANSFERRED = """() => {
  const all = [...performance.getEntriesByType('navigation'),
               ...performance.getEntriesByType('resource')];
  return {bytes: all.reduce((n, e) => n + (e.transferSize || 0), 0),
          requests: all.filter(e => e.transferSize > 0).length};
}"""

OBSERVE = """() => {
  window.__seen = [];
  const el = () => document.querySelector('[data-testid=vm-state]');
  new MutationObserver(() => {
    const s = el() && el().getAttribute('data-state');
    const last = window.__seen.length ? window.__seen[window.__seen.length - 1][0] : null;
    if (s && s !== last) { window.__seen.push([s, performance.timeOrigin + performance.now()]); }
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
  window.__notReloaded = true;
}"""


def browser_figures(
    settings: dict[str, str], ids: dict[str, Any], changes: int
) -> list[dict[str, Any]]:
    """First-visit bytes, and state change → page latency, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    from fedoracloud.services.vm_events import VmStateRecorder
    from fedoracloud.virt.events import LifecycleEvent

    from .run import ADMIN, ADMIN_PASSWORD

    router = make_app({}, **settings)
    engine = router.registry["dbengine"]
    recorder = VmStateRecorder(router.registry["dbsession_factory"])
    with Session(engine) as s:
        vm = s.get(Vm, ids["vm"])
        assert vm is not None and vm.host is not None
        uri, uuid, name, state = vm.host.libvirt_uri, vm.uuid, vm.name, vm.state
    out: list[dict[str, Any]] = []
    with Served(router) as served, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        page = context.new_page()
        _login(page, served.url, ADMIN, ADMIN_PASSWORD)

        # what the browser received for the pool tree: a first visit with an empty cache,
        # then a second one (the Resource Timing API's transferSize: 0 when cached)
        cdp = context.new_cdp_session(page)
        for visit in ("first visit", "second visit"):
            if visit == "first visit":
                cdp.send("Network.clearBrowserCache")
            page.goto(served.url + "/pools")
            page.wait_for_load_state("load")
            got = page.evaluate(TRANSFERRED)
            out.append(
                {
                    "name": f"pool tree, {visit}, bytes",
                    "dataset": f"{HOSTS} hosts",
                    "value": got["bytes"],
                    "requests": got["requests"],
                    "unit": "bytes",
                    "target": "what the browser received (HTML, and what was not cached)",
                }
            )
            print(
                f"  pool tree, {visit}: {got['bytes'] / 1024:.0f} KiB, {got['requests']} requests"
            )

        page.goto(f"{served.url}/vms/{ids['vm']}")
        page.evaluate(OBSERVE)
        latencies = []
        for k in range(changes):
            new_state = "stopped" if state == "running" else "running"
            before = time.time()
            recorder.apply(
                LifecycleEvent(
                    host_uri=uri,
                    domain_uuid=uuid,
                    domain_name=name,
                    event="stopped" if new_state == "stopped" else "started",
                    detail="destroyed" if new_state == "stopped" else "booted",
                    state=new_state,
                    timestamp=before,
                )
            )
            page.wait_for_function(
                "s => window.__seen.length && window.__seen[window.__seen.length - 1][0] === s",
                arg=new_state,
                timeout=10_000,
            )
            seen_at = page.evaluate("window.__seen[window.__seen.length - 1][1]") / 1000
            latencies.append((seen_at - before) * 1000)
            state = new_state
            time.sleep(0.2 + (k % 5) * 0.1)  # changes at varied points of the poll cycle
        assert page.evaluate("window.__notReloaded === true"), "the VM page reloaded"
        browser.close()
    out.append(
        {
            "name": "VM state change to open page",
            "dataset": f"{HOSTS} hosts",
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "max": round(max(latencies), 1),
            "unit": "ms",
            "n": len(latencies),
            "target": "VmStateRecorder.apply (committed row) until the page shows it",
            "goal_under_1s": percentile(latencies, 95) < GOAL_LIVE_MS,
        }
    )
    print(
        f"  VM state change -> page: p50 {percentile(latencies, 50):.0f} ms, "
        f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms (n={len(latencies)})"
    )
    router.registry["dbengine"].dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--changes", type=int, default=20, help="VM state changes to time")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument("--no-browser", action="store_true", help="only the server times")
    args = parser.parse_args(argv)
    spec = PagesSpec(HOSTS)
    print(f"dataset: {spec.hosts} hosts, {spec.vms} VMs ({spec.db_name})", flush=True)
    dataset = prepare(spec, reuse=args.keep)
    try:
        grant_member(dataset.url)
        engine = sa.create_engine(dataset.url)
        ids = _ids(engine)
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            settings = app_settings(dataset.url, tmp)
            print("server time per page (in process):", flush=True)
            figures = time_pages(settings, ids, args.warmup, args.n)
            entries = [f.entry(spec.name) for f in figures]
            if not args.no_browser and os.path.exists(CHROMIUM):
                print("in Chromium:", flush=True)
                entries += browser_figures(settings, ids, args.changes)
        merge_results(RESULTS, entries)
        print(f"written to {RESULTS}")
    finally:
        if not args.keep:
            drop_database(spec.db_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
