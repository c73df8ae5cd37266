"""Enrollment benchmark: N nodes enrolling at once against the PostgreSQL-backed app served
on loopback.

``python -m benchmarks.enrollment [--nodes 500]`` makes a scratch PostgreSQL database
(``fc_bench_enroll``, dropped at the end), migrates it, creates the CA and N one-time tokens,
serves the app with ``fedoracloud serve`` (waitress, 8 threads) on a free loopback port, and
prepares, outside the timed region, one key, CSR and fake facts per node.  Then N client
threads, released together by a barrier, each POST ``/api/v1/enroll`` on their own
connection.  The figures:

* ``enroll_nodes_at_once``: wall time from the release to the last answer (goal < 60 s for
  500), with each request's latency p50/p95;
* the check afterwards, in the database: every answer was 202, N hosts exist, all
  ``pending``, N distinct UUIDs, N enrollments, N tokens used — none lost or duplicated.

All nodes come from 127.0.0.1, so the per-address rate limit is raised for the run
(``fedoracloud.enroll.rate_limit``).  Figures merge into ``benchmarks/results.json`` by
(name, dataset).  Benchmarks report; they do not assert.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
import transaction
from passlib.apache import HtpasswdFile

from alembic import command
from fedoracloud.models import (
    Enrollment,
    EnrollmentToken,
    Host,
    get_session_factory,
    get_tm_session,
)
from fedoracloud.node_agent import make_csr, make_key
from fedoracloud.pki import CaSettings, CertificateAuthority
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.enrollment import EnrollmentService
from fedoracloud.services.pools import PoolService
from fedoracloud.settings import Settings

from .dataset import alembic_config, create_database, database_url, drop_database
from .run import RESULTS, merge_results, percentile

DB_NAME = "fc_bench_enroll"
GOAL_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _facts(index: int) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "hostname": f"bench{index:04d}.cloud.example.org",
        "arch": "x86_64",
        "hypervisor": "qemu",
        "hypervisor_version": "7.2.0",
        "libvirt_version": "9.0.0",
        "memory_mib": 16384,
        "cpu_mhz": 2660,
        "cpus": [
            {"index": i, "socket": i // 4, "core": i % 4, "thread": 0, "model": "x86_64"}
            for i in range(8)
        ],
        "nics": [
            {
                "name": f"eth{n}",
                "mac": f"52:54:00:{n:02x}:{index >> 8 & 255:02x}:{index & 255:02x}",
                "ip_address": f"10.{n}.{index >> 8 & 255}.{index & 255}",
                "prefix_length": 16,
            }
            for n in range(2)
        ],
    }


def _post(port: int, body: bytes, barrier: threading.Barrier) -> tuple[int, float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    barrier.wait()
    start = time.perf_counter()
    conn.request("POST", "/api/v1/enroll", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    end = time.perf_counter()
    conn.close()
    return resp.status, start, end


def bench(nodes: int, results: str) -> dict[str, Any]:
    """Run the benchmark once; returns the results.json entry."""
    workdir = tempfile.mkdtemp(prefix="fc-bench-enroll-")
    create_database(DB_NAME)
    url = database_url(DB_NAME)
    server = None
    try:
        command.upgrade(alembic_config(url), "head")
        htpasswd = HtpasswdFile(os.path.join(workdir, "htpasswd"), new=True)
        htpasswd.set_password("admin", "bench-admin-password")
        htpasswd.save()
        raw = {
            "sqlalchemy.url": url,
            "fedoracloud.session_secret": "bench-secret-0123456789abcdef",
            "fedoracloud.secure_cookies": "false",
            "fedoracloud.htpasswd.file": os.path.join(workdir, "htpasswd"),
            "fedoracloud.instance_dir": workdir,
            "fedoracloud.enroll.rate_limit": str(nodes * 2),
        }
        settings = Settings.from_dict(raw)
        CertificateAuthority(CaSettings.from_settings(settings)).init()
        engine = sa.create_engine(url)
        tokens = []
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            dbsession = get_tm_session(get_session_factory(engine), manager)
            PoolService(ServiceContext.for_session(dbsession)).ensure_builtin()
            service = EnrollmentService(ServiceContext(dbsession, settings))
            tokens = [service.issue_token(expires="1h").token for _ in range(nodes)]
        bodies = [
            json.dumps(
                {"token": token, "csr": make_csr(make_key(), f["hostname"]), "facts": f}
            ).encode()
            for token, f in ((t, _facts(i)) for i, t in enumerate(tokens))
        ]
        ini = os.path.join(workdir, "bench.ini")
        with open(ini, "w") as out:
            out.write("[app:main]\nuse = egg:fedoracloud\n")
            out.writelines(f"{k} = {v}\n" for k, v in raw.items())
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore",
                "-m",
                "fedoracloud.cli",
                "-c",
                ini,
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/api/v1/ca.pem")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.2)
        barrier = threading.Barrier(nodes + 1)
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            futures = [pool.submit(_post, port, body, barrier) for body in bodies]
            barrier.wait()
            released = time.perf_counter()
            answers = [f.result() for f in futures]
        wall = max(end for _s, _start, end in answers) - released
        latencies = [(end - start) * 1000 for _s, start, end in answers]
        statuses = [s for s, _start, _end in answers]
        with engine.connect() as conn:
            hosts = conn.scalar(sa.select(sa.func.count()).select_from(Host)) or 0
            pending = conn.scalar(
                sa.select(sa.func.count()).select_from(Host).where(Host.state == "pending")
            )
            uuids = conn.scalar(sa.select(sa.func.count(sa.distinct(Host.uuid))))
            enrollments = conn.scalar(sa.select(sa.func.count()).select_from(Enrollment))
            used = conn.scalar(
                sa.select(sa.func.count())
                .select_from(EnrollmentToken)
                .where(EnrollmentToken.used_at.isnot(None))
            )
        engine.dispose()
        found = {
            "name": "enroll_nodes_at_once",
            "dataset": f"{nodes} nodes, PostgreSQL, loopback",
            "wall_s": round(wall, 3),
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "unit": "ms",
            "n": nodes,
            "target": "POST /api/v1/enroll, all at once (fedoracloud serve, 8 threads)",
            "answers_202": statuses.count(202),
            "hosts": hosts,
            "pending": pending,
            "distinct_uuids": uuids,
            "enrollments": enrollments,
            "tokens_used": used,
            "lost": nodes - (pending or 0),
            "duplicated": hosts - (uuids or 0),
            f"goal_under_{int(GOAL_SECONDS)}s": wall < GOAL_SECONDS,
        }
        merge_results(results, [found])
        return found
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        drop_database(DB_NAME)


def main(argv: list[str] | None = None) -> int:
    """Run it, print the figures, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enrollment", description=__doc__)
    parser.add_argument("--nodes", type=int, default=500, help="nodes enrolling at once")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    found = bench(args.nodes, args.results)
    for key, value in found.items():
        print(f"{key:<22} {value}")
    print(f"\nwrote {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
