"""The ``fedoracloud`` command's start-up: whole processes, from exec to exit.

``python -m benchmarks.cli`` makes a demo site on SQLite in a temporary directory
(``initdb`` and ``demo``: eight hosts) and times, with ``time.perf_counter`` around
``subprocess.run``:

* ``cli_help``: ``fedoracloud --help`` (argument parsing only: no command runs);
* ``cli_enc``: ``fedoracloud -c INI enc CERTNAME`` as Puppet runs it for an approved demo
  host (settings, database, the node's classes as YAML);
* ``cli_host_list``: ``fedoracloud -c INI host list``.

Each run's output is checked outside the timed region.  The machine's load average is
printed with the figures, since whole processes on a shared machine vary with it.  The
issue's goals: ``--help`` and ``enc`` under 300 ms.  Figures are merged into
``benchmarks/results.json`` by (name, dataset); benchmarks report, they do not assert.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from .run import RESULTS, merge_results, percentile

GOALS_MS = {"cli_help": 300.0, "cli_enc": 300.0}
DATASET = "sqlite-demo"
FC = [sys.executable, "-m", "fedoracloud.cli"]
#: what ``enc`` needs to render a node's classes
PUPPET_SETTINGS = {
    "fedoracloud.management_network": "10.5.0.0/16",
    "fedoracloud.console_proxy.address": "10.6.0.10",
    "fedoracloud.collectd.password": "bench-signing-secret",
    "fedoracloud.collectd.server": "stats.example.org",
}


def write_ini(directory: str) -> str:
    """A demo site's ini on SQLite under ``directory``."""
    settings = {
        "use": "egg:fedoracloud",
        "sqlalchemy.url": f"sqlite:///{directory}/fc.sqlite",
        "fedoracloud.session_secret": "bench-cli-secret-0123456789",
        "fedoracloud.htpasswd.file": f"{directory}/htpasswd",
        "fedoracloud.htpasswd.groups_file": f"{directory}/groups",
        "fedoracloud.instance_dir": f"{directory}/var",
        **PUPPET_SETTINGS,
    }
    ini = os.path.join(directory, "bench.ini")
    with open(ini, "w", encoding="utf-8") as stream:
        stream.write("[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return ini


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """One ``fedoracloud`` process as an operator runs it: no PYTHONWARNINGS, and with the
    bytecode caches an install has (PYTHONDONTWRITEBYTECODE would compile every module)."""
    unset = ("PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([*FC, *args], capture_output=True, text=True, timeout=300, env=env)


def sample(args: list[str], check: Callable[[str], bool], n: int) -> list[float]:
    """``n`` timed runs after one warm-up (which also writes the bytecode caches)."""
    samples = []
    for i in range(n + 1):
        started = time.perf_counter()
        done = run(*args)
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0 or not check(done.stdout) or done.stderr.strip():
            raise SystemExit(f"fedoracloud {' '.join(args)} failed: {done.stderr[-500:]}")
        if i:
            samples.append(elapsed)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Make the demo site, time the three commands, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fc-bench-cli-") as tmp:
        ini = write_ini(tmp)
        for step in (["initdb"], ["demo"]):
            done = run("-c", ini, *step)
            if done.returncode != 0:
                raise SystemExit(f"fedoracloud {step[0]} failed: {done.stderr[-500:]}")
        listing = run("-c", ini, "host", "list").stdout.split()
        approved = [
            name
            for state, name in zip(listing[1::4], listing[2::4], strict=True)
            if state == "available"
        ]
        certname = approved[0]
        results = {
            "cli_help": (
                "fedoracloud --help (whole process)",
                sample(["--help"], lambda out: "add-host" in out, args.runs),
            ),
            "cli_enc": (
                "fedoracloud -c INI enc CERTNAME (whole process, SQLite)",
                sample(["-c", ini, "enc", certname], lambda out: certname in out, args.runs),
            ),
            "cli_host_list": (
                "fedoracloud -c INI host list (whole process, SQLite, 8 hosts)",
                sample(["-c", ini, "host", "list"], lambda out: certname in out, args.runs),
            ),
        }
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"\n{'metric':<14} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}  goal")
    entries = []
    for name, (target, samples) in results.items():
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        goal = GOALS_MS.get(name)
        verdict = f"p50 < {goal:.0f} ms {'met' if p50 < goal else 'NOT met'}" if goal else ""
        print(f"{name:<14} {len(samples):>4} {p50:>8.1f} {p95:>8.1f}  {verdict}")
        entry = {
            "name": name,
            "dataset": DATASET,
            "p50": round(p50, 3),
            "p95": round(p95, 3),
            "unit": "ms",
            "n": len(samples),
            "target": target,
            "min": round(min(samples), 3),
            "max": round(max(samples), 3),
            "load_average": round(load[0], 2),
        }
        if goal:
            entry[f"goal_p50_under_{goal:.0f}ms"] = p50 < goal
        entries.append(entry)
    merge_results(args.results, entries)
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
