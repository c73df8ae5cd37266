"""Faults survived, nothing lost: the split deployment (``tests/faults/cluster.py``: an app
instance behind Apache's balancer, a worker, an event listener, a private libvirtd with the
tiny TCG guest) on a PostgreSQL cluster of its own (so it can be restarted without touching
the machine's), and RabbitMQ through a TCP proxy that can cut it (the machine's broker is
shared, so it is never stopped: cutting every connection and refusing new ones is what its
clients see of a stopped broker).  Each case checks its expected outcome and prints what the
fault cost (seconds to recover, requests failed).

A worker killed mid-task is ``test_task_queue.py``'s
``test_200_tasks_survive_a_killed_worker_and_each_runs_exactly_once`` (SIGKILL half-way
through 200 tasks on the real RabbitMQ: every task finishes exactly once, none stays
``running``; the sweep takes back the killed worker's tasks) and the sweep's
tests in ``tests/unit/test_tasks.py`` (a task whose worker died is retried, one out of
attempts fails with the reason, never stuck); Cobbler gone is
``test_vm_request_provisioning.py`` (a real XML-RPC Cobbler on loopback refusing the
connection or stopping mid-way: the provisioning fails with the reason, everything it did
is undone, and an admin's retry completes).  They are not repeated here.

Only in the ``--db=postgresql`` pass (the deployment runs on PostgreSQL; the ``--db=sqlite``
pass would run the same thing again).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest
import requests
import sqlalchemy as sa

from ..faults.cluster import ROOT, Client, Cluster, guest_vm, new_key, say
from ..faults.rehearsal import BROKER, GuestFiles, running_cluster, tiny_guest
from ..faults.services import FaultProxy, PrivatePostgres, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment_only_on_postgresql(db_kind: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("the deployment needs root (a private libvirtd, apache2 as www-data)")
    if db_kind != "postgresql":
        pytest.skip("the split deployment runs on PostgreSQL: run with --db=postgresql")


@pytest.fixture(scope="module")
def private_pg(deployment_only_on_postgresql: None) -> Iterator[PrivatePostgres]:
    conf = os.path.join(ROOT, "deploy", "postgresql", "fedoracloud.conf")
    pg = PrivatePostgres(tempfile.mkdtemp(prefix="fc-pg-"), include=conf).init()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="module")
def broker_proxy(deployment_only_on_postgresql: None) -> Iterator[FaultProxy]:
    port = int(BROKER.rsplit(":", 1)[1].split("/")[0])
    proxy = FaultProxy(port).start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def guest(deployment_only_on_postgresql: None) -> GuestFiles:
    return tiny_guest()


@pytest.fixture(scope="module")
def rrd_dir(deployment_only_on_postgresql: None) -> Iterator[str]:
    """collectd's RRD directory: a small filesystem of its own, to be filled."""
    with tiny_filesystem("64m") as path:
        yield path


@pytest.fixture(scope="module")
def cluster(
    private_pg: PrivatePostgres, broker_proxy: FaultProxy, rrd_dir: str
) -> Iterator[Cluster]:
    admin = sa.create_engine(private_pg.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE fedoracloud"))
    admin.dispose()
    broker = BROKER.replace(
        f":{broker_proxy.upstream[1]}/", f":{broker_proxy.port}/"
    )  # the same broker, through the proxy
    with running_cluster(
        private_pg.url("fedoracloud"),
        broker,
        instances=1,
        workers=1,
        listeners=1,
        extra={"fedoracloud.stats.rrd_dir": rrd_dir},
    ) as started:
        yield started


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Client:
    return Client(cluster.front, cluster.cert).login()


def create_body(cluster: Cluster, name: str) -> dict[str, Any]:
    """A VM that is only defined (not booted): cheap on a shared machine."""
    return {
        "name": name,
        "pool": cluster.pools["rehearsal-vms"],
        "vcpus": 1,
        "memory_mib": 64,
        "host": cluster.host_id,
    }


def domains_named(cluster: Cluster, prefix: str) -> dict[str, int]:
    """How many domains of each name (with this prefix) the libvirtd has."""
    conn = libvirt.open(cluster.libvirtd.uri)
    try:
        names = [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
    finally:
        conn.close()
    return {n: names.count(n) for n in set(names)}


def wait_tasks(cluster: Cluster, prefix: str, count: int, timeout: float) -> list[Any]:
    """Wait until the vm.create tasks of the VMs named ``prefix…`` all ended; their rows."""
    query = (
        "SELECT v.name, t.state, t.attempts, t.message FROM tasks t JOIN vms v"
        " ON t.target_type = 'vm' AND t.target_id = v.id AND t.kind = 'vm.create'"
        " WHERE v.name LIKE :prefix ORDER BY v.name"
    )

    def ended() -> list[Any] | None:
        rows = cluster.rows(query, prefix=prefix + "%")
        done = [r for r in rows if r.state in ("finished", "failed", "canceled")]
        return rows if len(done) == count == len(rows) else None

    return wait_for(ended, timeout, f"the {count} {prefix} tasks to end", every=0.2)


def assert_made_once(cluster: Cluster, names: list[str]) -> None:
    """Each name is exactly one VM, with one create task and one audit event: nothing
    half-written, nothing twice."""
    rows = cluster.rows(
        "SELECT v.name, count(DISTINCT v.id),"
        " (SELECT count(*) FROM tasks t WHERE t.target_type = 'vm' AND t.target_id = v.id"
        "  AND t.kind = 'vm.create'),"
        " (SELECT count(*) FROM audit_events a WHERE a.action = 'vm.create'"
        "  AND a.target_id = v.id)"
        " FROM vms v WHERE v.name = ANY(:names) GROUP BY v.id, v.name",
        names=names,
    )
    assert sorted(r[0] for r in rows) == sorted(names)
    assert {(r[1], r[2], r[3]) for r in rows} == {(1, 1, 1)}, rows
    orphans = cluster.scalar(
        "SELECT count(*) FROM tasks t WHERE t.target_type = 'vm'"
        " AND NOT EXISTS (SELECT 1 FROM vms v WHERE v.id = t.target_id)"
    )
    assert orphans == 0


def create_until_answered(client: Client, body: dict[str, Any], log: list[Any]) -> Any:
    """POST with one Idempotency-Key, again while the answer is 503 (the database is down);
    every answer is logged as (time, status, error code)."""
    key = new_key()
    deadline = time.monotonic() + 90
    while True:
        response = client.call("POST", "/api/v1/vms", body, {"Idempotency-Key": key})
        code = None
        if response.status_code >= 400:
            with contextlib.suppress(ValueError):
                code = response.json()["error"]["code"]
        log.append((time.monotonic(), response.status_code, code))
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


# -- PostgreSQL restarted --------------------------------------------------------------------------


def test_postgresql_restarted_during_requests_fails_cleanly_and_loses_nothing(
    cluster: Cluster, client: Client, private_pg: PrivatePostgres
) -> None:
    names = [f"pgfault-{i:02d}" for i in range(10)]
    answers: list[Any] = []
    reads: list[Any] = []
    stop = threading.Event()
    reader = client.clone()
    dropped: list[str] = []  # connections closed without an answer
    stopped_at = [time.monotonic()]

    def read_loop() -> None:
        while not stop.is_set():
            try:
                response = reader.call("GET", "/api/v1/vms")
            except requests.RequestException as exc:
                dropped.append(f"{exc} at {time.monotonic() - stopped_at[0]:.2f} s")
                continue
            code = None
            if response.status_code == 503:
                code = response.json()["error"]["code"]
            reads.append((time.monotonic(), response.status_code, code))
            time.sleep(0.05)

    thread = threading.Thread(target=read_loop, daemon=True)
    thread.start()
    made = []
    page = None
    for i, name in enumerate(names):
        if i == 3:
            private_pg.stop()  # an admin restarts the database box: down, then up
            stopped = stopped_at[0] = time.monotonic()
            page = client.call("GET", "/pools")
            wait_for(lambda: sum(1 for _t, s, _c in reads if s == 503) >= 3, 20, "503s")
            private_pg.start()
            restarted = time.monotonic()
        made.append(create_until_answered(client, create_body(cluster, name), answers))
    wait_for(lambda: reads and reads[-1][1] == 200, 30, "reads to succeed again")
    stop.set()
    thread.join(10)

    assert not dropped, dropped  # every request was answered
    statuses = {s for _t, s, _c in answers + reads}
    assert statuses <= {200, 201, 503}, statuses  # never a 500, never a lost connection
    assert {c for _t, s, c in answers + reads if s == 503} == {"database_unavailable"}
    assert page is not None and page.status_code == 503
    assert "unavailable for a moment" in page.text and page.headers["Retry-After"] == "5"
    assert [r.status_code for r in made] == [201] * len(names)
    assert_made_once(cluster, names)
    rows = wait_tasks(cluster, "pgfault-", len(names), 90)
    assert {r.state for r in rows} == {"finished"}, rows
    assert domains_named(cluster, "pgfault-") == dict.fromkeys(names, 1)
    # the event listener took its host's lock again (its connection died with the server)
    wait_for(cluster.listening, 30, "the event listener to hold its host's lock again")
    # the database box's settings from deploy/postgresql: dead clients are dropped in ~1 min
    assert cluster.scalar("SHOW tcp_keepalives_idle") == "30"
    first_ok = min(t for t, s, _c in reads if s == 200 and t > restarted)
    failed = sum(1 for _t, s, _c in answers + reads if s == 503)
    say(
        f"\nPostgreSQL down {restarted - stopped:.1f} s: {failed} requests answered 503"
        f" (of {len(answers) + len(reads)}), first success {first_ok - restarted:.2f} s after"
        f" it was back; {len(names)} VMs made once each, 0 half-written"
    )


# -- RabbitMQ stopped ------------------------------------------------------------------------------


def test_rabbitmq_stopped_tasks_wait_in_the_database_and_each_runs_once(
    cluster: Cluster, client: Client, broker_proxy: FaultProxy
) -> None:
    names = [f"mqfault-{i:02d}" for i in range(5)]
    broker_proxy.cut()
    try:
        took = []
        for name in names:
            started = time.monotonic()
            client.api("POST", "/api/v1/vms", create_body(cluster, name), expect=(201,))
            took.append(time.monotonic() - started)
        time.sleep(2)
        states = cluster.rows(
            "SELECT t.state FROM tasks t JOIN vms v ON t.target_id = v.id"
            " WHERE t.target_type = 'vm' AND v.name LIKE 'mqfault-%'"
        )
        assert [s for (s,) in states] == ["queued"] * len(names)  # accepted, waiting
    finally:
        broker_proxy.restore()
    back = time.monotonic()
    rows = wait_tasks(cluster, "mqfault-", len(names), 90)
    recovered = time.monotonic() - back
    assert {(r.state, r.attempts) for r in rows} == {("finished", 1)}, rows  # once each
    assert domains_named(cluster, "mqfault-") == dict.fromkeys(names, 1)
    say(
        f"\nRabbitMQ cut: {len(names)} creates accepted (slowest {max(took):.2f} s), 0 failed;"
        f" all ran once {recovered:.1f} s after it was back"
    )


# -- libvirtd killed on a host ---------------------------------------------------------------------


def test_libvirtd_killed_host_unavailable_actions_refused_then_reconciled(
    cluster: Cluster, client: Client, guest: GuestFiles
) -> None:
    made = client.api("POST", "/api/v1/vms", guest_vm(cluster, guest, "lvfault-vm"), expect=(201,))
    assert client.wait_task(made["task"]["id"], 60)["state"] == "finished"
    started = client.api("POST", f"/api/v1/vms/{made['id']}/start", expect=(202,))
    assert client.wait_task(started["id"], 60)["state"] == "finished"
    client.wait_vm(made["id"], "running", 30)
    tasks_before = cluster.scalar("SELECT count(*) FROM tasks")

    cluster.libvirtd.kill()
    killed = time.monotonic()

    def host() -> dict[str, Any]:
        return client.api("GET", f"/api/v1/hosts/{cluster.host_id}")

    wait_for(lambda: host()["state"] == "unavailable", 30, "the host to be unavailable")
    client.wait_vm(made["id"], "unknown", 10)
    noticed = time.monotonic() - killed
    refused = client.call("POST", f"/api/v1/vms/{made['id']}/poweroff")
    assert refused.status_code == 409, refused.text
    assert "does not answer" in refused.json()["error"]["message"]
    assert cluster.scalar("SELECT count(*) FROM tasks") == tasks_before  # nothing queued

    cluster.libvirtd.start()
    back = time.monotonic()
    client.wait_vm(made["id"], "running", 60)  # QEMU kept running without its daemon
    assert host()["state"] == "available"
    recovered = time.monotonic() - back
    assert cluster.scalar("SELECT count(*) FROM vms WHERE uuid = :u", u=made["uuid"]) == 1
    assert cluster.scalar("SELECT count(*) FROM vms WHERE NOT managed") == 0  # no duplicates
    assert client.vm(made["id"])["allowed_actions"][:2] == ["shutdown", "poweroff"]
    say(
        f"\nlibvirtd killed: host unavailable and its VM unknown after {noticed:.2f} s, actions"
        f" refused (409); {recovered:.2f} s after it was back, the VM was running again"
        " (reconciled, no duplicate)"
    )


# -- disk full for the CA --------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(size: str = "256k") -> Iterator[str]:
    """A small tmpfs of its own (unmounted afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = tempfile.mkdtemp(prefix="fc-tiny-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def fill(path: str) -> None:
    """Fill the filesystem to the last byte."""
    fd = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 4096, b"\0"):
            with contextlib.suppress(OSError):
                while os.write(fd, chunk):
                    pass
    finally:
        os.close(fd)


def digests(path: str) -> dict[str, str]:
    found = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            if name == "filler":
                continue
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return found


def test_a_full_disk_under_the_ca_gives_a_clear_error_and_corrupts_nothing(
    deployment_only_on_postgresql: None,
) -> None:
    from fedoracloud.pki import CaError, CaSettings, CertificateAuthority

    class Settings:
        instance_dir = "/nonexistent"

        def __init__(self, base: str) -> None:
            self.extra = {
                "fedoracloud.ca.dir": os.path.join(base, "ca"),
                "fedoracloud.ca.client_dir": os.path.join(base, "client"),
            }

    with tiny_filesystem() as full:
        ca = CertificateAuthority(CaSettings.from_settings(Settings(full)))
        ca.init()
        # a new client certificate (the first approval on a new UI box) cannot be written
        os.unlink(ca.settings.client_cert_path)
        before = digests(full)
        fill(full)
        with pytest.raises(CaError, match="No space left on device"):
            ca.ensure_client_certificate()
        assert digests(full) == before  # the CA's key and certificate untouched
        assert not [n for n in os.listdir(ca.settings.ca_dir) if ".tmp" in n]
        assert ca.fingerprint()  # still readable, still the same CA

    with tiny_filesystem("8k") as empty:
        fill(empty)
        ca = CertificateAuthority(CaSettings.from_settings(Settings(empty)))
        with pytest.raises(CaError, match="No space left on device"):
            ca.init()
        assert not ca.exists()
        assert digests(empty) == {}  # no half-made CA, no temporary file


# -- collectd gone, its disk full ----------------------------------------------------------------


def test_collectd_gone_or_its_disk_full_graphs_say_no_data(
    cluster: Cluster, client: Client, rrd_dir: str, tmp_path: Any
) -> None:
    """The collectd server (the app's rendered config) writes RRD files on a full disk: it
    can write none, and the host's graph says "no data" (200), never an error; space
    freed, the files appear and the graph has points; collectd stopped, the graph still
    answers with what was written."""
    from fedoracloud.puppet import ConfigRenderer
    from fedoracloud.settings import PuppetSettings

    from ..collectd import collectd_pair, wait_until
    from ..faults.cluster import HOSTNAME
    from ..faults.services import free_port

    settings = PuppetSettings.from_dict(
        {
            "fedoracloud.collectd.server": "127.0.0.1",
            "fedoracloud.collectd.certname": "stats.rehearsal.example",
            "fedoracloud.collectd.listen": "127.0.0.1",
            "fedoracloud.collectd.port": str(free_port()),
            "fedoracloud.collectd.password": "signing-secret",
            "fedoracloud.collectd.data_dir": rrd_dir,
            "fedoracloud.collectd.libvirt_uri": cluster.libvirtd.uri,
            "fedoracloud.management_network": "127.0.0.0/8",
        }
    )
    renderer = ConfigRenderer(settings)
    server = {f.path: f.content for f in renderer.collectd_server_files()}
    node = {f.path: f.content for f in renderer.node_files(HOSTNAME)}
    auth = tmp_path / "collectd.passwd"
    auth.write_text(server["/etc/collectd.passwd"])
    url = f"/api/v1/hosts/{cluster.host_id}/graphs/load"
    load_rrd = os.path.join(rrd_dir, HOSTNAME, "load", "load.rrd")
    fill(rrd_dir)
    with collectd_pair(
        tmp_path, server["/etc/collectd.conf"], node["/etc/collectd.conf"], auth, interval=1
    ) as processes:
        time.sleep(5)  # five intervals of values the server could not write
        full = client.call("GET", url)
        assert full.status_code == 200, full.text
        assert full.json()["no_data"] is True
        os.unlink(os.path.join(rrd_dir, "filler"))
        freed = time.monotonic()
        try:
            wait_until(lambda: os.path.exists(load_rrd), processes, 40, "no load RRD file")
        except AssertionError:
            for root, _d, files in os.walk(rrd_dir):
                print(root, files)
            for name in ("server", "node"):
                print(name, (tmp_path / f"collectd-{name}" / "log").read_text()[-3000:])
            raise

        def points() -> bool:
            graph = client.api("GET", url)
            return not graph["no_data"]

        wait_until(points, processes, 60, "no points in the load graph")
        recovered = time.monotonic() - freed
    gone = client.call("GET", url)  # collectd stopped: what it wrote is still shown
    assert gone.status_code == 200 and gone.json()["no_data"] is False, gone.text
    say(
        f"\ncollectd's disk full: the graph said no data (200); {recovered:.1f} s after space"
        " was freed it had points; collectd stopped, it still answers"
    )
