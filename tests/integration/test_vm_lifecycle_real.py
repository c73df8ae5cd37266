"""The VM lifecycle through the app on a real libvirtd: a VM made through the API boots
the tiny TCG guest, ``running`` arrives through libvirt's event path (committed by the
event service) within a second, the guest's serial console proves it booted, then power
off and delete; and a live migration between two real daemons as a task of the app.

The app here is a real one on a database of its own (requests commit; tasks run through
the task runner the worker uses; the event service listens as ``fedoracloud events`` does).
"""

from __future__ import annotations

import os
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import webtest
from sqlalchemy import select

from fedoracloud import main
from fedoracloud.models import Host, PoolKind, Vm
from fedoracloud.services import tasks as task_queue
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.tasks import TaskRunner
from fedoracloud.services.vm_events import EventService, reconcile_host
from fedoracloud.virt.connection import ConnectionPool
from fedoracloud.virt.hypervisor import Hypervisor

from ..conftest import PASSWORDS
from ..databases import scratch_database
from ..libvirtd import BOOTED, TICK, read_serial, ticks, wait_for_serial

pytestmark = pytest.mark.integration

LOG_DIR = "/var/log/libvirt/qemu"


@dataclass
class Live:
    """A committed app, its worker's runner and its event service."""

    web: webtest.TestApp
    app: Any
    runner: TaskRunner
    events: EventService
    session_factory: Any
    pools: dict[str, int]
    csrf: str = ""

    def api(
        self, method: str, url: str, body: dict[str, Any] | None = None, status: Any = "*"
    ) -> Any:
        call = getattr(self.web, f"{method.lower()}_json")
        return call(url, body or {}, headers={"X-CSRF-Token": self.csrf}, status=status)

    def run(self, task_id: int) -> str:
        """Run one task as the worker does; the state it ended in."""
        return self.runner.run(task_id)

    def vm(self, vm_id: int) -> dict[str, Any]:
        return self.web.get(f"/api/v1/vms/{vm_id}").json


def _csrf(web: webtest.TestApp) -> str:
    page = web.get("/pools")
    return page.html.find("input", {"name": "csrf_token"})["value"]


@pytest.fixture
def pg_database(tmp_path: Any) -> Iterator[str]:
    """A scratch PostgreSQL database at Alembic's head: the production shape, where the
    event service, the worker and the web requests write at the same time (SQLite is the
    single-user demo)."""
    with scratch_database("postgresql", str(tmp_path), "fc_vm", migrated=True) as url:
        yield url


@pytest.fixture
def live(app_settings: dict[str, Any], pg_database: str) -> Iterator[Live]:
    settings = {
        **app_settings,
        "sqlalchemy.url": pg_database,
        "fedoracloud.libvirt.domain_type": "qemu",  # KVM guests hang here: TCG
        "fedoracloud.libvirt.serial_log_dir": LOG_DIR,
    }
    previous = task_queue.current_dispatcher()
    app = main({}, **settings)
    task_queue.install_dispatcher(previous)
    session_factory = app.registry["dbsession_factory"]
    with session_factory() as session:
        pools = PoolService(ServiceContext.for_session(session))
        made = pools.ensure_builtin()
        fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
        vms = pools.create("fedora-vms", PoolKind.VM, fedora)
        session.commit()
        ids = {"fedora": fedora.id, "fedora-vms": vms.id}
    web = webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    form = web.get("/login").forms[0]
    form["username"], form["password"] = "admin", PASSWORDS["admin"]
    assert form.submit().status_int == 303
    events = EventService(app.registry["dbengine"], ConnectionPool(), rescan_every=0.2)
    yield Live(web, app, TaskRunner(session_factory), events, session_factory, ids, _csrf(web))
    events.stop()
    app.registry["dbengine"].dispose()


def add_host(live: Live, hostname: str, uri: str, address: str | None = None) -> int:
    """A host row for a real daemon, its facts read by a reconcile, approved."""
    with live.session_factory() as session:
        host = Host(
            uuid=str(uuidlib.uuid4()),
            hostname=hostname,
            pool_id=live.pools["fedora"],
            pool_kind="hardware",
            state="available",
            libvirt_uri=uri,
        )
        if address:
            host.management_address = address
        session.add(host)
        session.flush()
        reconcile_host(session, host, Hypervisor(uri, live.events.pool))
        assert host.state == "available", host.state_reason
        session.commit()
        return host.id


def listen(live: Live, *host_ids: int) -> None:
    """Start the event service; wait until it listens to the hosts and reconciled them."""
    live.events.start()
    deadline = time.monotonic() + 20
    while not all(h in live.events.reconciled for h in host_ids):
        assert time.monotonic() < deadline, "the event service did not reconcile the hosts"
        time.sleep(0.05)


def create_and_define(live: Live, name: str, host_id: int, guest: Any) -> dict[str, Any]:
    made = live.api(
        "POST",
        "/api/v1/vms",
        {
            "name": name,
            "pool": live.pools["fedora-vms"],
            "vcpus": 1,
            "memory_mib": 128,
            "host": host_id,
            "boot": {
                "kernel": guest.kernel,
                "initrd": guest.initrd,
                "cmdline": "console=ttyS0 panic=-1 quiet",
            },
        },
        status=201,
    ).json
    assert live.run(made["task"]["id"]) == "finished"
    assert live.vm(made["id"])["state"] == "stopped"
    return made


def wait_state(live: Live, vm_id: int, state: str, timeout: float) -> float:
    """Seconds until the API shows the state (fails after ``timeout``)."""
    started = time.monotonic()
    while live.vm(vm_id)["state"] != state:
        if time.monotonic() - started > timeout:
            pytest.fail(f"VM {vm_id} not {state} after {timeout} s: {live.vm(vm_id)}")
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_vm_through_the_api_on_a_real_libvirtd(
    live: Live, real_libvirt: str, tcg_guest: Any, libvirt_domains: Any
) -> None:
    host_id = add_host(live, "real.example.org", real_libvirt)
    applied: list[tuple[str, str, str | None, float]] = []
    live.events.recorder.listeners.append(
        lambda event, state: applied.append(
            (event.domain_uuid, event.event, state, time.time() - event.timestamp)
        )
    )
    listen(live, host_id)
    name = libvirt_domains.new()
    vm = create_and_define(live, name, host_id, tcg_guest)

    task = live.api("POST", f"/api/v1/vms/{vm['id']}/start", status=202).json
    assert live.vm(vm["id"])["state"] == "creating"
    assert live.run(task["id"]) == "finished"
    wait_state(live, vm["id"], "running", 30)
    deadline = time.monotonic() + 30
    # libvirt's callback → committed row
    while not any(u == vm["uuid"] and e == "started" for u, e, _s, _t in applied):
        assert time.monotonic() < deadline, f"no started event committed: {applied}"
        time.sleep(0.01)
    serial = os.path.join(LOG_DIR, f"{vm['uuid']}.log")
    wait_for_serial(serial, BOOTED, timeout=60)
    assert live.vm(vm["id"])["allowed_actions"] == [
        "shutdown",
        "poweroff",
        "suspend",
        "save",
        "reboot",
        "migrate",
    ]

    task = live.api("POST", f"/api/v1/vms/{vm['id']}/suspend", status=202).json
    assert live.run(task["id"]) == "finished"
    wait_state(live, vm["id"], "paused", 30)
    page = live.web.get(f"/vms/{vm['id']}")
    assert page.html.find(attrs={"data-testid": "action-resume"}) is not None
    assert page.html.find(attrs={"data-testid": "action-suspend"}) is None
    task = live.api("POST", f"/api/v1/vms/{vm['id']}/resume", status=202).json
    assert live.run(task["id"]) == "finished"
    wait_state(live, vm["id"], "running", 30)

    task = live.api("POST", f"/api/v1/vms/{vm['id']}/poweroff", status=202).json
    assert live.run(task["id"]) == "finished"
    wait_state(live, vm["id"], "stopped", 30)
    assert any(u == vm["uuid"] and e == "stopped" for u, e, _s, _t in applied)

    task = live.web.delete(f"/api/v1/vms/{vm['id']}", headers={"X-CSRF-Token": live.csrf}).json
    assert live.run(task["id"]) == "finished"
    live.web.get(f"/api/v1/vms/{vm['id']}", status=404)
    assert not Hypervisor(real_libvirt, live.events.pool).exists(vm["uuid"])


def test_a_live_migration_through_the_app(
    live: Live, migration_pair: Any, tcg_guest: Any, libvirt_domains: Any
) -> None:
    pair = migration_pair
    host_a = add_host(live, "hosta.example.org", pair.uri_a, pair.address_a)
    host_b = add_host(live, "hostb.example.org", pair.uri_b, pair.address_b)
    listen(live, host_a, host_b)
    name = libvirt_domains.new()
    vm = create_and_define(live, name, host_a, tcg_guest)
    task = live.api("POST", f"/api/v1/vms/{vm['id']}/start", status=202).json
    assert live.run(task["id"]) == "finished"
    serial_a = os.path.join(pair.log_dir("A"), "qemu", f"{vm['uuid']}.log")
    serial_b = os.path.join(pair.log_dir("B"), "qemu", f"{vm['uuid']}.log")
    boot_id = wait_for_serial(serial_a, BOOTED).group(1)
    wait_for_serial(serial_a, TICK)

    refused = live.api("POST", f"/api/v1/vms/{vm['id']}/migrate", {"host": host_a}, status=400)
    assert "pick another host" in refused.json["error"]["message"]
    task = live.api("POST", f"/api/v1/vms/{vm['id']}/migrate", {"host": host_b}, status=202).json
    assert live.vm(vm["id"])["state"] == "migrating"
    assert live.run(task["id"]) == "finished"
    done = live.web.get(f"/api/v1/tasks/{task['id']}").json
    assert "migrated from hosta.example.org to hostb.example.org" in done["message"]
    shown = live.vm(vm["id"])
    assert (shown["host"], shown["state"]) == (host_b, "running")
    before = len(ticks(serial_b))
    deadline = time.monotonic() + 20
    while len(ticks(serial_b)) < before + 2:
        assert time.monotonic() < deadline, read_serial(serial_b)
        time.sleep(0.2)
    assert {boot for _n, boot in ticks(serial_b)} == {boot_id}  # the same boot: kept running
    assert BOOTED.search(read_serial(serial_b)) is None  # never booted again
    with live.session_factory() as session:
        assert session.scalar(select(Vm.host_id).where(Vm.id == vm["id"])) == host_b
