"""Live migration through Hypervisor.migrate() between two real libvirtd daemons, each in
its own network + mount + UTS namespace with its own host UUID (``migration_pair``).

The TCG guest prints a tick every second with its boot id: after the migration the ticks
go on on the destination with the same boot id and no second boot, so it kept running.
"""

from __future__ import annotations

import os
import queue
import time

import pytest

from fedoracloud.virt.connection import ConnectionPool
from fedoracloud.virt.events import EventListener, LifecycleEvent
from fedoracloud.virt.hypervisor import Hypervisor, MigrationFailed

from ..libvirtd import BOOTED, TICK, read_serial, ticks, wait_for_serial

pytestmark = pytest.mark.integration


@pytest.fixture
def pool():
    pool = ConnectionPool()
    yield pool
    pool.close_all()


def _serial(pair, host, name):
    return os.path.join(pair.log_dir(host), "qemu", f"{name}-serial.log")


def test_a_running_guest_migrates_live_and_keeps_running(
    migration_pair, tcg_guest, libvirt_domains, pool
):
    pair = migration_pair
    source, dest = Hypervisor(pair.uri_a, pool), Hypervisor(pair.uri_b, pool)
    name = libvirt_domains.new()
    # /var/log/libvirt is each host's own directory: the log follows the guest
    spec = tcg_guest.spec(name, f"/var/log/libvirt/qemu/{name}-serial.log")
    arrived: queue.Queue[LifecycleEvent] = queue.Queue()
    listener = EventListener(pair.uri_b, arrived.put, pool=pool).start()
    assert listener.wait_connected(10)
    try:
        source.define(spec)
        source.start(spec.uuid)
        log_a, log_b = _serial(pair, "A", name), _serial(pair, "B", name)
        boot_id = wait_for_serial(log_a, BOOTED).group(1)
        wait_for_serial(log_a, TICK)

        checks = {c.name: c for c in source.migration_checks(spec.uuid, dest)}
        assert all(c.ok for c in checks.values()), checks
        assert set(checks) == {
            "different host",
            "architecture",
            "CPU compatible",
            "free memory",
            "shared storage",
        }
        assert "needs 128 MiB" in checks["free memory"].message

        progress = []
        result = source.migrate(
            spec.uuid,
            pair.tcp_b,  # as hostA's libvirtd reaches hostB: peer to peer, inside the netns
            migration_address=pair.address_b,
            on_progress=progress.append,
            poll_interval=0.1,
        )
        assert result.seconds < 60
        assert progress, "no progress was reported while migrating"
        assert progress[-1].percent == 100.0

        assert not source.exists(spec.uuid)
        state = dest.state(spec.uuid)
        assert (state.state, state.reason, state.persistent) == ("running", "migrated", True)
        while True:
            event = arrived.get(timeout=10)
            if event.domain_uuid == spec.uuid and event.event in ("started", "resumed"):
                break
        assert event.detail == "migrated"

        last_on_a = ticks(log_a)[-1][0]
        deadline = time.monotonic() + 15
        while len(ticks(log_b)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        on_b = ticks(log_b)
        assert len(on_b) >= 2, f"the guest printed nothing on hostB:\n{read_serial(log_b)}"
        assert on_b[0][0] > last_on_a, "the tick counter restarted: the guest rebooted"
        assert {boot for _n, boot in on_b} == {boot_id}
        assert "FEDORACLOUD-GUEST-BOOTED" not in read_serial(log_b)

        # and back, client-managed this time: FedoraCloud drives both daemons
        back = dest.migrate(
            spec.uuid, pair.uri_a, peer_to_peer=False, migration_address=pair.address_a
        )
        assert back.downtime_ms is not None and back.downtime_ms < 5000
        assert not dest.exists(spec.uuid)
        assert source.state(spec.uuid).state == "running"
        ticks_before = len(ticks(log_a))
        deadline = time.monotonic() + 15
        while len(ticks(log_a)) <= ticks_before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ticks(log_a)[-1][0] > on_b[-1][0]
        assert {boot for _n, boot in ticks(log_a)} == {boot_id}

        source.destroy(spec.uuid)
        source.undefine(spec.uuid)
    finally:
        listener.stop()


def test_a_refused_migration_says_why_and_the_guest_stays(
    migration_pair, tcg_guest, libvirt_domains, pool
):
    pair = migration_pair
    source = Hypervisor(pair.uri_a, pool)
    name = libvirt_domains.new()
    spec = tcg_guest.spec(name, f"/var/log/libvirt/qemu/{name}-serial.log")
    source.define(spec)
    source.start(spec.uuid)

    checks = {c.name: c for c in source.migration_checks(spec.uuid, source)}
    assert not checks["different host"].ok
    assert checks["different host"].message == "the destination is the host the VM runs on"

    with pytest.raises(MigrationFailed, match=f"migration of {name} from .* failed: .*same host"):
        source.migrate(spec.uuid, pair.tcp_a, migration_address=pair.address_a)
    with pytest.raises(MigrationFailed, match="outside 49152-49216"):
        source.migrate(spec.uuid, pair.tcp_b, migration_address=pair.address_b, migration_port=5900)
    state = source.state(spec.uuid)
    assert (state.state, state.persistent) == ("running", True)
    source.destroy(spec.uuid)
    source.undefine(spec.uuid)
