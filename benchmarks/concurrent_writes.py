"""Writes under contention: people logging in while nodes enroll and the CLI issues tokens.

``python -m benchmarks.concurrent_writes [--db sqlite|postgresql] [--nodes 30]`` makes a
scratch database (a SQLite file, or a PostgreSQL database made and dropped), runs
``fedoracloud initdb``, serves the real app with waitress on a local port (8 threads, as
``fedoracloud serve`` does) and runs, at once:

* ``--clients`` (4) people logging in through the form over and over (GET the form, POST
  it, GET the pool tree), each a requests session of its own;
* ``--nodes`` (30) nodes enrolling one after another, each with a token that
  ``fedoracloud add-host --json`` (run in this process, with its own engine, as the
  command does) has just issued.

It prints how many logins, enrollments and add-hosts there were, how many failed (any
answer but the expected one, or a CLI exit status but 0) and the p50/p95 of a login.  On
SQLite this load once answered 503 to 2 of 30 enrollments and 2 of ~965 logins, and
add-host failed 4 times.  ``run()`` is also what the regression test runs.  Benchmarks
report; they do not assert.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from passlib.apache import HtpasswdFile

PG_BASE_URL = os.environ.get(
    "FEDORACLOUD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PEOPLE = {f"person{i}": f"password-{i}" for i in range(8)}


@dataclass
class Figures:
    """What happened: counts of answers by kind and status, and login times."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    login_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(n for (k, _), n in self.statuses.items() if k == kind)


def write_ini(directory: Path, url: str) -> Path:
    """An ini for the scratch site: local logins for PEOPLE, all in the access group."""
    htpasswd = directory / "htpasswd"
    ht = HtpasswdFile(str(htpasswd), new=True, default_scheme="apr_md5_crypt")
    for username, password in PEOPLE.items():
        ht.set_password(username, password)
    ht.save()
    groups = directory / "groups"
    groups.write_text("sysadmin-cloud: " + " ".join(PEOPLE) + "\n")
    settings = {
        "use": "egg:fedoracloud",
        "sqlalchemy.url": url,
        "fedoracloud.session_secret": "concurrent-writes-" + "x" * 20,
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.auth.backend": "htpasswd",
        "fedoracloud.htpasswd.file": str(htpasswd),
        "fedoracloud.htpasswd.groups_file": str(groups),
        "fedoracloud.instance_dir": str(directory / "var"),
        "fedoracloud.enroll.rate_limit": "100000",
    }
    ini = directory / "site.ini"
    ini.write_text("[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return ini


def _cli(ini: Path, *args: str) -> tuple[int, str]:
    from fedoracloud.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["-c", str(ini), *args])
    return code, out.getvalue()


def _facts(hostname: str) -> dict[str, Any]:
    node = uuid.uuid4()
    return {
        "uuid": str(node),
        "hostname": hostname,
        "arch": "x86_64",
        "memory_mib": 16384,
        "cpus": [{"index": i, "socket": 0, "core": i, "thread": 0} for i in range(4)],
        "nics": [{"name": "eth0", "mac": "52:54:00:" + node.bytes[-3:].hex(":")}],
    }


def _person(base: str, username: str, stop: threading.Event, figures: Figures) -> None:
    session = requests.Session()
    while not stop.is_set():
        started = time.perf_counter()
        form = session.get(f"{base}/login", timeout=60)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        if form.status_code != 200 or token is None:
            figures.statuses["login", form.status_code] += 1
            figures.failures.append(f"login form: {form.status_code}")
            continue
        answer = session.post(
            f"{base}/login",
            data={
                "csrf_token": token.group(1),
                "username": username,
                "password": PEOPLE[username],
                "next": "/pools",
            },
            allow_redirects=False,
            timeout=60,
        )
        figures.statuses["login", answer.status_code] += 1
        if answer.status_code != 303:
            figures.failures.append(f"login: {answer.status_code} {answer.text[:200]}")
            continue
        tree = session.get(f"{base}/pools", timeout=60)
        figures.statuses["pools", tree.status_code] += 1
        if tree.status_code != 200:
            figures.failures.append(f"pool tree: {tree.status_code} {tree.text[:200]}")
        figures.login_seconds.append(time.perf_counter() - started)
        session.cookies.clear()


def _nodes(base: str, ini: Path, count: int, figures: Figures) -> None:
    from fedoracloud.node_agent import make_csr, make_key

    for i in range(count):
        hostname = f"node{i:03d}.cloud.example.org"
        code, out = _cli(ini, "add-host", "--hostname", hostname, "--json")
        figures.statuses["add-host", code] += 1
        if code != 0:
            figures.failures.append(f"add-host {hostname}: exit {code}")
            continue
        token = re.search(r'"token": "([^"]+)"', out)
        assert token is not None, out
        body = {"token": token.group(1), "csr": make_csr(make_key(), hostname)}
        body["facts"] = _facts(hostname)
        answer = requests.post(f"{base}/api/v1/enroll", json=body, timeout=60)
        figures.statuses["enroll", answer.status_code] += 1
        if answer.status_code != 202:
            figures.failures.append(f"enroll {hostname}: {answer.status_code} {answer.text[:200]}")


def run(ini: Path, nodes: int = 30, clients: int = 4) -> Figures:
    """Serve the site of ``ini`` and run the load; the figures once the nodes are done."""
    import waitress
    from pyramid.paster import get_app

    code, _ = _cli(ini, "initdb")
    assert code == 0, "initdb failed"
    server = waitress.create_server(get_app(str(ini)), host="127.0.0.1", port=0, threads=8)
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    figures, stop = Figures(), threading.Event()
    people = [
        threading.Thread(target=_person, args=(base, name, stop, figures), daemon=True)
        for name in list(PEOPLE)[:clients]
    ]
    try:
        for thread in people:
            thread.start()
        _nodes(base, ini, nodes, figures)
    finally:
        stop.set()
        for thread in people:
            thread.join(timeout=120)
        server.close()
    return figures


@contextlib.contextmanager
def scratch_database(kind: str, directory: Path) -> Any:
    """A SQLite file, or a PostgreSQL database made for the run and dropped after it."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'site.sqlite'}"
        return
    name = f"fc_bench_writes_{os.getpid()}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    """Run the load on a scratch site and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.db, Path(tmp)) as url:
        started = time.perf_counter()
        figures = run(write_ini(Path(tmp), url), args.nodes, args.clients)
        seconds = time.perf_counter() - started
    print(f"database {args.db}, {args.clients} people logging in, {args.nodes} nodes enrolling")
    print(f"{'kind':10} {'total':>6} {'failed':>7}  statuses")
    expected = {"login": 303, "pools": 200, "enroll": 202, "add-host": 0}
    for kind, ok in expected.items():
        statuses = {s: n for (k, s), n in sorted(figures.statuses.items()) if k == kind}
        failed = sum(n for s, n in statuses.items() if s != ok)
        print(f"{kind:10} {figures.count(kind):>6} {failed:>7}  {statuses}")
    if figures.login_seconds:
        ordered = sorted(figures.login_seconds)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            f"login round (form, POST, pool tree): p50 {statistics.median(ordered) * 1000:.0f} ms,"
            f" p95 {p95 * 1000:.0f} ms; {seconds:.1f} s in all"
        )
    for failure in figures.failures[:10]:
        print("  ", failure)


if __name__ == "__main__":
    main()
