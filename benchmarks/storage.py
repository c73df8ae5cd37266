"""Storage benchmark: how long a storage pool refresh and a volume take through the app,
on PostgreSQL (a scratch database ``fc_bench_storage``, dropped at the end).

``python -m benchmarks.storage [--rounds 30] [--volumes 200]``:

* ``storage_refresh_test_driver``: ``StorageService.refresh`` of an LVM pool holding
  ``--volumes`` volumes on libvirt's test driver, and the commit: libvirt's list of
  volumes, the rows brought in line, the figures written (the app's own share);
* as root, on the machine's libvirtd: ``storage_volume_create_delete_dir`` (a 1 GiB raw
  volume made in a ``dir`` pool, recorded, then deleted and forgotten) and
  ``storage_refresh_iscsi_direct`` (a refresh of an ``iscsi-direct`` pool on a real
  tgtd target with two LUNs: libiscsi logs in, reports the LUNs, logs out).

Each sample is checked (the volume count, the LUNs) outside the timed region.  Figures
merge into ``benchmarks/results.json`` by (name, dataset).  Benchmarks report; they do not
assert.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from typing import Any

import libvirt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from alembic import command
from fedoracloud.models import Host, HostState, PoolKind, StoragePool, get_session_factory
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.storage import GIB, StorageService
from fedoracloud.virt.connection import ConnectionPool

from .dataset import alembic_config, create_database, database_url, drop_database
from .run import RESULTS, merge_results
from .virt import entry, print_entry

DB_NAME = "fc_bench_storage"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ISCSI_SCRIPT = os.path.join(ROOT, "scripts", "iscsi-test-env")


def _host(db: Session, hardware: Any, uri: str, name: str) -> Host:
    host = Host(
        uuid=f"00000000-0000-4000-8000-{secrets.token_hex(6)}",
        hostname=name,
        pool_id=hardware.id,
        pool_kind=PoolKind.HARDWARE.value,
        state=HostState.AVAILABLE.value,
        libvirt_uri=uri,
    )
    db.add(host)
    db.flush()
    return host


def _pool(db: Session, hardware: Any, **fields: Any) -> StoragePool:
    pool = StoragePool(state="defined", **fields)
    pool.hardware_pools = [hardware]
    db.add(pool)
    db.flush()
    return pool


def _refresh_ms(service: StorageService, pool: StoragePool, db: Session) -> float:
    """One timed refresh and its commit."""
    started = time.perf_counter()
    service.refresh(pool)
    db.commit()
    return (time.perf_counter() - started) * 1000


def bench(rounds: int, volumes: int) -> list[dict[str, Any]]:
    """Run the benchmark; returns the results.json entries."""
    found: list[dict[str, Any]] = []
    create_database(DB_NAME)
    url = database_url(DB_NAME)
    engine = sa.create_engine(url)
    connections = ConnectionPool()
    workdir = tempfile.mkdtemp(prefix="fc-bench-storage-")
    names: list[tuple[str, str]] = []
    try:
        command.upgrade(alembic_config(url), "head")
        factory = get_session_factory(engine)
        with factory() as db:
            pools = PoolService(ServiceContext.for_session(db))
            hardware = pools.create("bench", PoolKind.HARDWARE, pools.ensure_builtin()["hardware"])
            _host(db, hardware, "test:///default", "fake.bench.example.org")
            lvm = _pool(
                db,
                hardware,
                name=f"bench-lvm-{secrets.token_hex(3)}",
                kind="logical",
                volume_group="vg_bench",
                source_path="/dev/sdb",
            )
            names.append(("test:///default", lvm.name))
            service = StorageService(ServiceContext.for_session(db), connections=connections)
            service.define_on_hosts(lvm)
            lpool = connections.get("test:///default").storagePoolLookupByName(lvm.name)
            for n in range(volumes):
                lpool.createXML(
                    f"<volume><name>lv{n:04d}</name><capacity unit='bytes'>{2**26}</capacity>"
                    "</volume>",
                    0,
                )
            db.commit()
            samples = []
            for n in range(rounds + 1):
                ms = _refresh_ms(service, lvm, db)
                assert len(lvm.volumes) == volumes
                if n:
                    samples.append(ms)
            found.append(
                entry(
                    "storage_refresh_test_driver",
                    f"PostgreSQL, test driver, {volumes} volumes",
                    samples,
                    "StorageService.refresh + commit",
                )
            )
            if os.geteuid() == 0:
                found += _real(db, hardware, connections, rounds, workdir, names)
    finally:
        for uri, name in names:
            _forget(connections, uri, name)
        connections.close_all()
        engine.dispose()
        drop_database(DB_NAME)
        if os.geteuid() == 0:
            subprocess.run([ISCSI_SCRIPT, "target-down", workdir], capture_output=True)
            subprocess.run([ISCSI_SCRIPT, "libvirtd-down", workdir], capture_output=True)
    for e in found:
        print_entry(e)
    return found


def _real(
    db: Session,
    hardware: Any,
    connections: ConnectionPool,
    rounds: int,
    workdir: str,
    names: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    """The real libvirtd's figures: a dir pool's volumes, and an iscsi-direct refresh."""
    port, iqn = subprocess.run(
        [ISCSI_SCRIPT, "target-up", workdir], capture_output=True, text=True, check=True
    ).stdout.split()
    uri = subprocess.run(
        [ISCSI_SCRIPT, "libvirtd", workdir], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    _host(db, hardware, uri, "real.bench.example.org")
    db.query(Host).filter(Host.libvirt_uri == "test:///default").update(
        {"state": HostState.DISABLED.value}
    )
    service = StorageService(ServiceContext.for_session(db), connections=connections)
    directory = _pool(
        db,
        hardware,
        name=f"fc-bench-dir-{secrets.token_hex(3)}",
        kind="dir",
        target_path=os.path.join(workdir, "images"),
    )
    names.append((uri, directory.name))
    service.define_on_hosts(directory)
    made = []
    for n in range(rounds + 1):
        started = time.perf_counter()
        volume = service.create_volume(directory, f"bench{n}.img", GIB)
        service.delete_volume(volume)
        db.commit()
        if n:
            made.append((time.perf_counter() - started) * 1000)
    lun = _pool(
        db,
        hardware,
        name=f"fc-bench-iscsi-{secrets.token_hex(3)}",
        kind="iscsi-direct",
        portal_address="127.0.0.1",
        port=int(port),
        target_iqn=iqn,
    )
    names.append((uri, lun.name))
    service.define_on_hosts(lun)
    refreshed = []
    for n in range(rounds + 1):
        ms = _refresh_ms(service, lun, db)
        assert [v.name for v in lun.volumes] == ["unit:0:0:1", "unit:0:0:2"]
        if n:
            refreshed.append(ms)
    return [
        entry(
            "storage_volume_create_delete_dir",
            "PostgreSQL, real libvirtd, dir pool",
            made,
            "1 GiB raw volume made + recorded, deleted + forgotten",
        ),
        entry(
            "storage_refresh_iscsi_direct",
            "PostgreSQL, real libvirtd, tgtd (2 LUNs)",
            refreshed,
            "StorageService.refresh + commit (libiscsi login, LUN report)",
        ),
    ]


def _forget(connections: ConnectionPool, uri: str, name: str) -> None:
    """Undefine a pool the benchmark made (the test driver's volumes with it)."""
    with contextlib.suppress(libvirt.libvirtError):
        pool = connections.get(uri).storagePoolLookupByName(name)
        if pool.isActive():
            if uri.startswith("test:"):
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
            pool.destroy()
        pool.undefine()


def main(argv: list[str] | None = None) -> int:
    """Run the storage benchmarks, print them, merge results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="samples of each figure (30)")
    parser.add_argument("--volumes", type=int, default=200, help="volumes in the pool (200)")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    merge_results(args.results, bench(args.rounds, args.volumes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
