"""The rehearsal of the split deployment on one machine (``make rehearsal``,
``scripts/rehearsal``; ``tests/integration/test_rehearsal.py`` runs it too).

It starts a ``Cluster`` (two app instances behind Apache's balancer, two workers, two
event listeners, a private libvirtd, a scratch database on the running PostgreSQL, a queue
of its own on the running RabbitMQ), then, through the front: logs in, creates a VM that
boots the tiny TCG guest, starts it and watches it become ``running``; then the failovers:
an app instance killed mid-traffic (sessions go on, retried POSTs create nothing twice)
and the event listener holding the host's lock killed (the other takes over, and a state
change made while nobody listened is reconciled).  Each step's time is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import libvirt
import requests

from ..databases import scratch_database
from .cluster import ROOT, Client, Cluster, Timings, guest_vm, new_key, say
from .services import PrivateLibvirtd, wait_for

BROKER = os.environ.get("FEDORACLOUD_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
GUEST_DIR = os.environ.get("FEDORACLOUD_TEST_GUEST_DIR", "/var/cache/fedoracloud-test/guest")


@dataclass(frozen=True)
class GuestFiles:
    """The tiny TCG guest (scripts/libvirt-test-env guest)."""

    kernel: str
    initrd: str


def tiny_guest() -> GuestFiles:
    """Build (once, cached) and return the tiny TCG guest."""
    subprocess.run(
        [os.path.join(ROOT, "scripts", "libvirt-test-env"), "guest", GUEST_DIR],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return GuestFiles(os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initrd.img"))


@contextlib.contextmanager
def running_cluster(
    database_url: str, broker_url: str = BROKER, timings: Timings | None = None, **kwargs: Any
) -> Iterator[Cluster]:
    """A started Cluster on a private libvirtd, stopped and cleaned up afterwards."""
    base = tempfile.mkdtemp(prefix="fc-cluster-")
    libvirtd = PrivateLibvirtd(os.path.join(base, "libvirtd"))
    cluster = None
    try:
        timings = timings or Timings()
        with timings.step("start a private libvirtd (own mount namespace and socket)"):
            libvirtd.start()
        cluster = Cluster(
            os.path.join(base, "cluster"),
            database_url,
            broker_url,
            libvirtd,
            timings=timings,
            **kwargs,
        )
        cluster.start()
        yield cluster
    except BaseException:
        if cluster is not None:
            for name in ("web1", "web2", "worker1", "events1", "events2"):
                tail = cluster.log_tail(name, 1500)
                if tail:
                    say(f"--- {name}.log ---\n{tail}")
            say(f"--- apache error.log ---\n{cluster.apache_error()}")
        raise
    finally:
        if cluster is not None:
            cluster.stop()
        libvirtd.destroy()
        shutil.rmtree(base, ignore_errors=True)


# -- the drive through the front -------------------------------------------------------------------


@dataclass
class Drive:
    """What the drive made, for the failover steps."""

    client: Client
    vm: dict[str, Any]
    figures: dict[str, float] = field(default_factory=dict)


def drive(cluster: Cluster, guest: GuestFiles, timings: Timings) -> Drive:
    """Log in, create a VM, start it, watch it run: through the front, timed."""
    with timings.step("log in through the front (form, htpasswd backend)"):
        client = Client(cluster.front, cluster.cert).login()
    with timings.step("create a VM (POST /api/v1/vms) until its domain is defined"):
        made = client.api(
            "POST",
            "/api/v1/vms",
            guest_vm(cluster, guest, "rehearsal-vm1"),
            expect=(201,),
            headers={"Idempotency-Key": new_key()},
        )
        task = client.wait_task(made["task"]["id"], 60)
        if task["state"] != "finished":
            raise RuntimeError(f"vm.create {task['state']}: {task['message']}")
        client.wait_vm(made["id"], "stopped", 30)
    with timings.step("start it; the state changes to running (libvirt event)"):
        started = time.monotonic()
        task = client.api("POST", f"/api/v1/vms/{made['id']}/start", expect=(202,))
        seen = [client.vm(made["id"])["state"]]
        while seen[-1] != "running":
            if time.monotonic() - started > 60:
                raise RuntimeError(f"VM not running after 60 s: {client.vm(made['id'])}")
            ended = client.api("GET", f"/api/v1/tasks/{task['id']}")
            if ended["state"] in ("failed", "canceled"):
                raise RuntimeError(f"vm.start {ended['state']}: {ended['message']}")
            time.sleep(0.05)
            state = client.vm(made["id"])["state"]
            if state != seen[-1]:
                seen.append(state)
        say(f"           states seen through the API: {' -> '.join(seen)}")
    return Drive(client, made, {"start_to_running_s": time.monotonic() - started})


# -- failover: an app instance killed mid-traffic --------------------------------------------------


@dataclass
class Traffic:
    """Clients calling the front in a loop; every answer counted by status."""

    client: Client
    cluster: Cluster
    guest: GuestFiles
    statuses: dict[int, int] = field(default_factory=dict)
    creates: list[tuple[str, str, int]] = field(default_factory=list)  # name, key, status
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def reads(self) -> None:
        client = self.client.clone()
        while not self.stop.is_set():
            for path in ("/api/v1/vms", "/api/v1/hosts", "/api/v1/tasks"):
                try:
                    self.count(client.call("GET", path).status_code)
                except requests.RequestException as exc:
                    self.errors.append(f"GET {path}: {exc}")

    def create(self, name: str, client: Client) -> dict[str, Any]:
        """Create a VM (no boot) with one Idempotency-Key, retrying until it is answered
        by an instance that is alive: a retried POST must not create it twice."""
        key = new_key()
        body = {**_small_vm(self.cluster), "name": name}
        for _attempt in range(20):
            try:
                response = client.call("POST", "/api/v1/vms", body, {"Idempotency-Key": key})
            except requests.RequestException as exc:
                self.errors.append(f"POST {name}: {exc}")
                time.sleep(0.2)
                continue
            self.creates.append((name, key, response.status_code))
            self.count(response.status_code)
            if response.status_code in (200, 201):
                return response.json()
            if response.status_code not in (502, 503):
                raise RuntimeError(f"create {name}: {response.status_code} {response.text[:300]}")
            time.sleep(0.2)
        raise RuntimeError(f"create {name}: no answer after 20 tries")


def _small_vm(cluster: Cluster) -> dict[str, Any]:
    """A VM that is only defined, never booted (cheap)."""
    return {
        "pool": cluster.pools["rehearsal-vms"],
        "vcpus": 1,
        "memory_mib": 64,
        "host": cluster.host_id,
    }


def kill_an_app_instance(
    cluster: Cluster, client: Client, guest: GuestFiles, timings: Timings
) -> dict[str, Any]:
    """Reads and creates through the front while web1 is killed with SIGKILL; the session
    goes on on web2, every create lands exactly once; web1 comes back and serves again."""
    traffic = Traffic(client, cluster, guest)
    readers = [threading.Thread(target=traffic.reads, daemon=True) for _ in range(3)]
    for thread in readers:
        thread.start()
    names = [f"failover-{i:02d}" for i in range(16)]
    made: list[dict[str, Any]] = []

    def creator(mine: list[str]) -> None:
        own = client.clone()
        for name in mine:
            made.append(traffic.create(name, own))

    creators = [
        threading.Thread(target=creator, args=(names[i::2],), daemon=True) for i in range(2)
    ]
    with timings.step("a create retried with its key, on both instances: one VM"):
        key = new_key()
        body = {**_small_vm(cluster), "name": "failover-replay"}
        answers = [
            client.call("POST", "/api/v1/vms", body, {"Idempotency-Key": key}) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    with timings.step("kill app instance web1 (SIGKILL) amid reads and 16 creates"):
        for thread in creators:
            thread.start()
        wait_for(lambda: len(made) >= 4, 120, "the first creates")
        # web1 freezes first (what it is handed now stays in flight), then dies
        os.killpg(cluster.web[0].popen.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        time.sleep(1.5)
        cluster.kill(cluster.web[0])
        for thread in creators:
            thread.join(180)
        traffic.stop.set()
        for thread in readers:
            thread.join(30)
    # nothing lost, nothing twice: each name is one VM with one create task
    rows = cluster.rows(
        "SELECT v.name, count(DISTINCT v.id), count(t.id) FROM vms v LEFT JOIN tasks t"
        " ON t.target_type = 'vm' AND t.target_id = v.id AND t.kind = 'vm.create'"
        " WHERE v.name LIKE 'failover-%' GROUP BY v.name"
    )
    found = {name: (vms, tasks) for name, vms, tasks in rows}
    assert found == {name: (1, 1) for name in [*names, "failover-replay"]}, found
    del found["failover-replay"]
    assert {m["name"] for m in made} == set(names)
    with timings.step("restart web1; it serves again behind the balancer"):
        cluster.start_web(cluster.web[0])
        cluster.wait_web(cluster.web[0])
        # the balancer retries a failed member after its retry period (5 s)
        wait_for(
            lambda: _served_by(cluster, f"127.0.0.1:{cluster.web[0].port}", client),
            30,
            "web1 to get requests again",
            every=0.5,
        )
    failed = sum(n for s, n in traffic.statuses.items() if s >= 500)
    result = {
        "statuses": dict(sorted(traffic.statuses.items())),
        "failed_requests": failed,
        "transport_errors": len(traffic.errors),
        "retried_creates": sum(1 for _n, _k, s in traffic.creates if s >= 500)
        + sum(1 for e in traffic.errors if e.startswith("POST")),
        "vms_created": len(found),
    }
    say(
        f"           answers by status: {result['statuses']}; {failed} failed (5xx),"
        f" {len(traffic.errors)} closed without an answer (the requests web1 had in hand),"
        f" {result['retried_creates']} creates retried with their key; each of 16 VMs made once"
    )
    return result


def _served_by(cluster: Cluster, member: str, client: Client) -> bool:
    for _ in range(4):
        client.call("GET", "/api/v1/hosts")
    with open(os.path.join(cluster.apache_dir, "access.log"), encoding="utf-8") as log:
        tail = log.readlines()[-4:]
    return any(member in line for line in tail)


# -- failover: the event listener holding the lock killed ------------------------------------------


def kill_the_event_listener(cluster: Cluster, drive_: Drive, timings: Timings) -> dict[str, Any]:
    """Kill the listener holding the host's lock; while nobody listens, the VM is powered
    off behind the app's back; the other listener takes over and the VM shows stopped."""
    client, vm = drive_.client, drive_.vm
    holder = cluster.lock_holder()
    assert holder is not None, "no listener holds the host's lock"
    victim = next(p for p in cluster.listeners if p.name == holder)
    other = next(p for p in cluster.listeners if p.name != holder)
    with timings.step(f"kill the event listener holding the lock ({holder}); another takes over"):
        cluster.kill(victim)
        killed = time.monotonic()
        # a change nobody hears: the domain is destroyed straight on libvirt
        conn = libvirt.open(cluster.libvirtd.uri)
        try:
            conn.lookupByUUIDString(vm["uuid"]).destroy()
        finally:
            conn.close()
        wait_for(
            lambda: cluster.lock_holder() == other.name,
            30,
            f"{other.name} to take the lock",
            every=0.1,
        )
        takeover = time.monotonic() - killed
        client.wait_vm(vm["id"], "stopped", 30)
        corrected = time.monotonic() - killed
    say(
        f"           {other.name} held the lock {takeover:.2f} s after the kill;"
        f" the VM showed stopped after {corrected:.2f} s"
    )
    with timings.step(f"restart {victim.name} (it waits for the lock)"):
        cluster.start_listener(victim)
        time.sleep(1)
        assert cluster.lock_holder() == other.name
    return {"takeover_s": round(takeover, 2), "state_corrected_s": round(corrected, 2)}


# -- the command -----------------------------------------------------------------------------------


def rehearse(short: bool = False) -> dict[str, Any]:
    """The whole rehearsal; returns the figures."""
    timings = Timings()
    figures: dict[str, Any] = {}
    with timings.step("build the tiny TCG guest (cached)"):
        guest = tiny_guest()
    with (
        scratch_database("postgresql", tempfile.gettempdir(), "fc_rehearsal") as url,
        running_cluster(url, timings=timings, listeners=2) as cluster,
    ):
        say(f"           front: {cluster.front}  app instances: {[p.port for p in cluster.web]}")
        drove = drive(cluster, guest, timings)
        figures.update(drove.figures)
        figures["app_instance_killed"] = kill_an_app_instance(cluster, drove.client, guest, timings)
        figures["event_listener_killed"] = kill_the_event_listener(cluster, drove, timings)
        if not short:
            with timings.step("start the VM again; running"):
                drove.client.api("POST", f"/api/v1/vms/{drove.vm['id']}/start", expect=(202,))
                drove.client.wait_vm(drove.vm["id"], "running", 60)
        stopping = time.monotonic()
    timings.steps.append(("stop everything, drop the database", time.monotonic() - stopping))
    say(f"[{timings.steps[-1][1]:7.2f} s] {timings.steps[-1][0]}")
    say("\nRehearsal timings:\n" + timings.table())
    figures["steps"] = timings.steps
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/rehearsal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="skip the last restart of the VM")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "scripts/rehearsal: needs root (a private libvirtd, apache2 as www-data)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rehearse(short=args.short)
    return 0
