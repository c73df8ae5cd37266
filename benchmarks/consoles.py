"""Console benchmarks on a real libvirtd and PostgreSQL (root, after
``scripts/install-system-packages test``): ``python -m benchmarks.consoles``.

* ``console_token_issue``: ``POST /api/v1/vms/{id}/console`` for the tiny TCG guest running
  with VNC: the live domain XML read from libvirt, the token row and its audit event
  committed.  Goal: p95 < 50 ms.  ``console_vnc_port_read`` is libvirt's share (the live
  domain XML read and parsed); ``console_baseline_get_vm`` (``GET /api/v1/vms/{id}`` on the
  same app) is what any API call costs, for comparison.
* ``console_token_consume``: the console proxy's atomic ``UPDATE … RETURNING`` of one token
  (what each WebSocket handshake costs in the database).
* ``console_handshake_to_rfb_banner``: a WebSocket handshake to the console proxy on
  loopback with a fresh token → the guest's ``RFB 003.008`` banner through it (token
  consumed, TCP connection to QEMU's VNC server, first bytes relayed).  Goal: p95 < 100 ms.

A scratch PostgreSQL database ``fc_bench_consoles`` is made and dropped.  Figures are
merged into ``benchmarks/results.json`` by (name, dataset).  Benchmarks report; they do not
assert.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from typing import Any

import transaction
from websockets.sync.client import connect

from fedoracloud.console_proxy import make_server, start
from fedoracloud.models import ConsoleToken, Host, PoolKind, Vm, get_tm_session
from fedoracloud.services.consoles import TOKEN_PROTOCOL, ConsoleService, consume_token
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.virt.console import vnc_display
from fedoracloud.virt.domain import DirectBoot, DomainSpec, GraphicsSpec, SerialSpec
from fedoracloud.virt.hypervisor import hypervisor

from . import vms
from .run import RESULTS, merge_results
from .virt import GUEST_DIR, SCRIPT, entry, print_entry

URI = "qemu:///system"
DATASET = "1 TCG guest, real libvirtd, PostgreSQL"


def _spec(name: str) -> DomainSpec:
    return DomainSpec(
        name=name,
        vcpus=1,
        memory_mib=128,
        virt_type="qemu",
        direct_boot=DirectBoot(
            f"{GUEST_DIR}/vmlinuz", f"{GUEST_DIR}/initrd.img", "console=ttyS0 panic=-1 quiet"
        ),
        graphics=GraphicsSpec(listen="127.0.0.1"),
        serial=SerialSpec(None),
    )


def _add_vm(app: Any, uuid: str, name: str) -> int:
    factory = app.registry["dbsession_factory"]
    with factory() as session:
        pools = PoolService(ServiceContext.for_session(session))
        made = pools.ensure_builtin()
        fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
        vm_pool = pools.create("fedora-vms", PoolKind.VM, fedora)
        host = Host(
            uuid=str(uuidlib.uuid4()),
            hostname="bench.example.org",
            pool_id=fedora.id,
            state="available",
            libvirt_uri=URI,
        )
        session.add(host)
        session.flush()
        vm = Vm(uuid=uuid, name=name, pool_id=vm_pool.id, host_id=host.id, state="running")
        session.add(vm)
        session.commit()
        return vm.id


def _mint(app: Any, vm_id: int) -> str:
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        session = get_tm_session(app.registry["dbsession_factory"], manager)
        vm = session.get(Vm, vm_id)
        return (
            ConsoleService(ServiceContext.for_session(session, None, "127.0.0.1"))
            .mint(vm, "127.0.0.1", 5900)
            .token
        )


def _banner(url: str, token: str) -> bytes:
    offered = ["binary", TOKEN_PROTOCOL + token]
    with connect(url, subprotocols=offered, compression=None, proxy=None) as ws:
        data = b""
        while len(data) < 12:
            data += ws.recv(timeout=30)
    return data


def bench(rounds: int) -> list[dict[str, Any]]:
    """The three figures, over ``rounds`` samples each."""
    found: list[dict[str, Any]] = []
    name = f"fc-bench-console-{uuidlib.uuid4().hex[:6]}"
    spec = _spec(name)
    vms.DB_NAME = "fc_bench_consoles"  # its scratch app, on a database of our own
    with tempfile.TemporaryDirectory() as tmp, hypervisor(URI) as hv:
        hv.define(spec)
        try:
            hv.start(spec.uuid)
            with vms.scratch_app(tmp) as (app, web, csrf):
                vm_id = _add_vm(app, spec.uuid, name)
                port_read: list[float] = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    vnc_display(hv, spec.uuid)
                    port_read.append((time.perf_counter() - started) * 1000)
                found.append(entry("console_vnc_port_read", DATASET, port_read, "libvirt live XML"))
                baseline: list[float] = []
                for _ in range(rounds + 3):
                    started = time.perf_counter()
                    web.get(f"/api/v1/vms/{vm_id}")
                    baseline.append((time.perf_counter() - started) * 1000)
                found.append(
                    entry("console_baseline_get_vm", DATASET, baseline[3:], "GET the VM (API)")
                )
                issue: list[float] = []
                for _ in range(rounds + 3):
                    started = time.perf_counter()
                    response = web.post_json(
                        f"/api/v1/vms/{vm_id}/console", {}, headers={"X-CSRF-Token": csrf}
                    )
                    issue.append((time.perf_counter() - started) * 1000)
                    assert response.status_int == 201, response.text
                found.append(entry("console_token_issue", DATASET, issue[3:], "POST token", 50))
                engine = app.registry["dbengine"]
                tokens = [_mint(app, vm_id) for _ in range(rounds)]
                consume: list[float] = []
                for token in tokens:
                    started = time.perf_counter()
                    assert consume_token(engine, token) is not None
                    consume.append((time.perf_counter() - started) * 1000)
                found.append(entry("console_token_consume", DATASET, consume, "UPDATE RETURNING"))
                with engine.begin() as conn:  # the next tokens lead to the guest's display
                    conn.execute(ConsoleToken.__table__.delete())
                server = make_server(engine, "127.0.0.1", 0)
                thread = start(server)
                try:
                    url = f"ws://127.0.0.1:{server.port}/"
                    handshake: list[float] = []
                    for _ in range(rounds):
                        issued = web.post_json(
                            f"/api/v1/vms/{vm_id}/console", {}, headers={"X-CSRF-Token": csrf}
                        ).json["token"]
                        started = time.perf_counter()
                        assert _banner(url, issued) == b"RFB 003.008\n"
                        handshake.append((time.perf_counter() - started) * 1000)
                    found.append(
                        entry(
                            "console_handshake_to_rfb_banner",
                            DATASET,
                            handshake,
                            "WebSocket → RFB banner",
                            100,
                        )
                    )
                finally:
                    server.shutdown()
                    server.server_close()
                    thread.join(timeout=5)
        finally:
            conn = hv.connection()
            dom = conn.lookupByUUIDString(spec.uuid)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for e in found:
        print_entry(e)
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the console benchmarks, print them, merge results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="samples of each figure (50)")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.consoles needs root (a real libvirtd)", file=sys.stderr)
        return 2
    subprocess.run([SCRIPT, "daemon"], check=True)
    subprocess.run([SCRIPT, "guest", GUEST_DIR], check=True)
    merge_results(args.results, bench(args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
