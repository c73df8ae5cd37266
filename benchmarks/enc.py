"""Puppet ENC latency: ``fedoracloud enc CERTNAME`` in-process and as a whole process.

``python -m benchmarks.enc`` builds (or with ``--keep`` reuses) the PostgreSQL dataset of
``--hosts`` hosts (300 by default; see ``benchmarks.dataset``) and times, with
``time.perf_counter``:

* ``enc_in_process``: ``EncService.classify(certname).to_yaml()`` in a fresh session, as
  the CLI and the HTTP endpoint run it (database query, rendering of the four node files,
  YAML), for approved hosts taken in turn;
* ``enc_process``: the ``fedoracloud -c INI enc CERTNAME`` command as Puppet runs it, a
  whole process from exec to exit (interpreter start, imports, settings, database, YAML);
* ``enc_http_process``: ``puppet/enc/fedoracloud-enc CERTNAME``, the ENC script a
  puppetserver runs, as a whole process asking ``fedoracloud serve`` (on loopback, same
  database) over HTTP with the ENC token.

Every answer is checked (it names the node class, and its collectd.conf names the host)
outside the timed region.  The issue's goals: p95 < 10 ms in-process, < 150 ms as a process.
Figures are merged into ``benchmarks/results.json`` by (name, dataset); benchmarks report,
they do not assert.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from fedoracloud.models import Host, HostState
from fedoracloud.puppet.enc import NODE_CLASS, EncService
from fedoracloud.services.context import ServiceContext
from fedoracloud.settings import Settings

from .dataset import DatasetSpec, drop_database, prepare
from .run import RESULTS, merge_results, percentile

GOALS_MS = {"enc_in_process": 10.0, "enc_process": 150.0, "enc_http_process": 150.0}
HTTP_ENC = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "puppet", "enc", "fedoracloud-enc"
)
ENC_TOKEN = "bench-enc-token-0123456789"
PUPPET_SETTINGS = {
    "fedoracloud.management_network": "10.5.0.0/16",
    "fedoracloud.console_proxy.address": "10.6.0.10",
    "fedoracloud.collectd.password": "bench-signing-secret",
    "fedoracloud.collectd.server": "stats.example.org",
    "fedoracloud.qpid.broker": "qpid.example.org",
    "fedoracloud.enc.token": ENC_TOKEN,
}


def ini_settings(url: str, instance_dir: str) -> dict[str, str]:
    """The ini's settings: the dataset's database and the Puppet settings."""
    return {
        "sqlalchemy.url": url,
        "fedoracloud.session_secret": "bench-secret-" + "x" * 20,
        "fedoracloud.htpasswd.file": os.path.join(instance_dir, "htpasswd"),
        "fedoracloud.instance_dir": instance_dir,
        **PUPPET_SETTINGS,
    }


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60) -> None:
    """Wait until something listens on the loopback port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            time.sleep(0.1)


def check(document: str, certname: str) -> None:
    """The ENC's answer gives the host its node class, with its own collectd.conf."""
    node = yaml.safe_load(document)
    params = node["classes"][NODE_CLASS]
    if f'Hostname "{certname}"' not in params["collectd_conf"]:
        raise RuntimeError(f"enc {certname}: wrong collectd.conf")


def sample(call: Callable[[str], str], certnames: list[str], warmup: int, n: int) -> list[float]:
    """Time ``n`` calls (after ``warmup``), the certnames taken in turn."""
    for i in range(warmup):
        check(call(certnames[i % len(certnames)]), certnames[i % len(certnames)])
    samples: list[float] = []
    for i in range(n):
        name = certnames[i % len(certnames)]
        started = time.perf_counter()
        document = call(name)
        samples.append((time.perf_counter() - started) * 1000)
        check(document, name)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Build the dataset, time both ways, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enc", description=__doc__)
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--iterations", "-n", type=int, default=300, help="in-process calls")
    parser.add_argument("--processes", type=int, default=40, help="whole-process runs")
    parser.add_argument("--keep", action="store_true", help="keep and reuse the database")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)

    spec = DatasetSpec(args.hosts)
    dataset = prepare(spec, reuse=args.keep)
    print(f"{spec.name}: {spec.db_name} ready in {dataset.seconds:.1f} s", flush=True)
    engine = sa.create_engine(dataset.url)
    try:
        with Session(engine) as session:
            certnames = list(
                session.scalars(
                    sa.select(Host.hostname)
                    .where(Host.state == HostState.AVAILABLE.value)
                    .order_by(Host.id)
                    .limit(50)
                )
            )
        with tempfile.TemporaryDirectory(prefix="fc-bench-enc-") as tmp:
            raw = ini_settings(dataset.url, tmp)
            settings = Settings.from_dict(raw)

            def in_process(name: str) -> str:
                with Session(engine) as session:
                    return EncService(ServiceContext(session, settings)).classify(name).to_yaml()

            ini = os.path.join(tmp, "bench.ini")
            with open(ini, "w", encoding="utf-8") as out:
                out.write("[app:main]\nuse = egg:fedoracloud\n")
                out.writelines(f"{k} = {v}\n" for k, v in raw.items())
            command = os.path.join(os.path.dirname(sys.executable), "fedoracloud")

            def process(name: str) -> str:
                done = subprocess.run(
                    [command, "-c", ini, "enc", name],
                    capture_output=True,
                    text=True,
                    check=False,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                if done.returncode != 0:
                    raise RuntimeError(f"fedoracloud enc {name}: {done.stderr.strip()}")
                return done.stdout

            port = free_port()
            server = subprocess.Popen(
                [command, "-c", ini, "serve", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
            token_file = os.path.join(tmp, "enc.token")
            with open(token_file, "w", encoding="utf-8") as out:
                out.write(ENC_TOKEN + "\n")
            http_env = {
                **os.environ,
                "FEDORACLOUD_ENC_URL": f"http://127.0.0.1:{port}/puppet/enc",
                "FEDORACLOUD_ENC_TOKEN_FILE": token_file,
            }

            def http_process(name: str) -> str:
                done = subprocess.run(
                    [HTTP_ENC, name], capture_output=True, text=True, check=False, env=http_env
                )
                if done.returncode != 0:
                    raise RuntimeError(f"fedoracloud-enc {name}: {done.stderr.strip()}")
                return done.stdout

            try:
                wait_for_port(port)
                http_samples = sample(http_process, certnames, 10, args.iterations)
            finally:
                server.terminate()
                server.wait(timeout=30)
            results = {
                "enc_in_process": (
                    "EncService.classify().to_yaml(), fresh session",
                    sample(in_process, certnames, 30, args.iterations),
                ),
                "enc_process": (
                    "fedoracloud -c INI enc CERTNAME (whole process)",
                    sample(process, certnames, 3, args.processes),
                ),
                "enc_http_process": (
                    "puppet/enc/fedoracloud-enc CERTNAME via fedoracloud serve (whole process)",
                    http_samples,
                ),
            }
    finally:
        engine.dispose()
        if not args.keep:
            drop_database(spec.db_name)

    entries = []
    print(f"\n{'metric':<16} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}  goal")
    for name, (target, samples) in results.items():
        p50, p95 = percentile(samples, 50), percentile(samples, 95)
        met = p95 < GOALS_MS[name]
        print(
            f"{name:<16} {len(samples):>4} {p50:>8.2f} {p95:>8.2f}  p95 < {GOALS_MS[name]:.0f} ms"
            f" {'met' if met else 'NOT met'}"
        )
        entries.append(
            {
                "name": name,
                "dataset": spec.name,
                "p50": round(p50, 3),
                "p95": round(p95, 3),
                "unit": "ms",
                "n": len(samples),
                "target": target,
                "min": round(min(samples), 3),
                "max": round(max(samples), 3),
                f"goal_p95_under_{GOALS_MS[name]:.0f}ms": met,
            }
        )
    merge_results(args.results, entries)
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
