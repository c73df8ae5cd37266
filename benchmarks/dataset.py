"""Scale datasets for the benchmarks: a scratch PostgreSQL database per dataset, filled fast.

Each dataset gets its own database (``fc_bench_<hosts>``), migrated to head by Alembic as
production is, given the built-in pools by ``PoolService.ensure_builtin()``, and then filled
with SQLAlchemy Core bulk inserts:

* a pool tree of ``spec.pools`` pools: the built-in ``root``, ``root/hardware``,
  ``root/hardware/default`` and ``root/users``; ``spec.sites`` site hardware pools under
  ``root/hardware``; ``spec.racks_per_site`` rack hardware pools under each site; and the
  rest as VM pools, spread round-robin over the racks;
* ``spec.hosts`` hosts spread evenly over the racks, each with ``spec.cpus_per_host`` CPU
  rows and ``spec.nics_per_host`` NIC rows (unique MACs);
* ``spec.vms_per_host`` VMs per host, each in a VM pool of its host's rack (so a VM always
  runs on a host of its VM pool's hardware pool), with a unique UUID;
* ``spec.users`` users, each granted the ``user`` role on one VM pool.

Ids are assigned here (so paths can be computed before the insert) and the sequences are
moved past them afterwards; the tables are ANALYZEd, as autovacuum would do in production.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from alembic import command
from fedoracloud.models import (
    Base,
    Host,
    HostCpu,
    HostNic,
    HostState,
    Pool,
    PoolKind,
    RoleGrant,
    User,
    Vm,
    VmState,
    get_engine,
)
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the server and credentials the scratch databases are made on (the tests' default)
PG_BASE_URL = os.environ.get(
    "FEDORACLOUD_BENCH_PG_URL",
    os.environ.get("FEDORACLOUD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
#: the rows inserted per executemany batch
BATCH = 5000


@dataclass(frozen=True)
class DatasetSpec:
    """The shape of one dataset; only ``hosts`` changes between the compared datasets."""

    hosts: int
    vms_per_host: int = 20
    users: int = 500
    pools: int = 200
    sites: int = 10
    racks_per_site: int = 5
    cpus_per_host: int = 8
    nics_per_host: int = 2
    seed: int = 20261124

    @property
    def name(self) -> str:
        """The dataset's label in results, e.g. ``1000 hosts``."""
        return f"{self.hosts} hosts"

    @property
    def db_name(self) -> str:
        """The scratch database's name."""
        return f"fc_bench_{self.hosts}"

    @property
    def vms(self) -> int:
        """How many VMs the dataset holds."""
        return self.hosts * self.vms_per_host

    @property
    def racks(self) -> int:
        """How many rack hardware pools there are."""
        return self.sites * self.racks_per_site

    @property
    def vm_pools(self) -> int:
        """How many VM pools fill the tree up to ``pools``."""
        return self.pools - 4 - self.sites - self.racks


@dataclass
class Dataset:
    """A generated (or reused) dataset and what the benchmarks need to know about it."""

    spec: DatasetSpec
    url: str
    #: the ``root/hardware`` pool's id
    hardware_id: int
    #: a site (mid-level hardware pool) and the size of its subtree, itself included
    site_id: int
    site_subtree: int
    #: the size of ``root/hardware``'s subtree, itself included
    hardware_subtree: int
    reused: bool
    seconds: float


def database_url(db_name: str) -> str:
    """The URL of a database on the benchmark server."""
    return sa.engine.make_url(PG_BASE_URL).set(database=db_name).render_as_string(False)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the app's migrations, aimed at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(ROOT, "alembic"))
    cfg.attributes["settings"] = {"sqlalchemy.url": url}
    return cfg


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")


def database_exists(db_name: str) -> bool:
    """Whether the benchmark server has a database of this name."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            found = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": db_name}
            )
    finally:
        engine.dispose()
    return found is not None


def create_database(db_name: str) -> None:
    """Make an empty database, dropping any old one of the same name first."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    finally:
        engine.dispose()


def drop_database(db_name: str) -> None:
    """Drop a scratch database, closing whatever connections are still on it."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    finally:
        engine.dispose()


# -- generation ----------------------------------------------------------------------------


def _table(model: type[Base]) -> sa.Table:
    """The Core table of a mapped class."""
    return cast(sa.Table, model.__table__)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _mac(n: int) -> str:
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        conn.execute(table.insert(), rows[start : start + BATCH])


def _next_id(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))) or 0) + 1


def _advance_sequence(conn: sa.Connection, table: sa.Table) -> None:
    """Move the table's id sequence past the ids inserted here."""
    sequence = sa.func.pg_get_serial_sequence(table.name, "id")
    conn.execute(
        sa.select(sa.func.setval(sequence, sa.select(sa.func.max(table.c.id)).scalar_subquery()))
    )


def _pool_row(
    pool_id: int, name: str, kind: PoolKind, parent: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "id": pool_id,
        "name": name,
        "kind": kind.value,
        "parent_id": parent["id"],
        "parent_kind": parent["kind"],
        "path": f"{parent['path']}{pool_id}/",
        "depth": parent["depth"] + 1,
        "description": f"benchmark {kind.value} pool",
        "owner_id": None,
        "created_at": now,
    }


def fill(engine: sa.Engine, spec: DatasetSpec) -> None:
    """Bulk-insert the dataset into a migrated database that has only the built-in pools."""
    rng = random.Random(spec.seed)
    now = datetime.now(UTC)
    pools_t = _table(Pool)
    with engine.begin() as conn:
        builtin = {
            row.name: dict(row._mapping)
            for row in conn.execute(
                sa.select(
                    pools_t.c.id, pools_t.c.name, pools_t.c.kind, pools_t.c.path, pools_t.c.depth
                ).where(pools_t.c.depth <= 1)
            )
        }
        hardware = builtin["hardware"]

        # users, each with the user role on one VM pool (granted below)
        users_t = _table(User)
        first_user = _next_id(conn, users_t)
        user_rows = [
            {
                "id": first_user + i,
                "username": f"user{i:04d}",
                "display_name": f"Benchmark User {i}",
                "email": f"user{i:04d}@example.org",
                "is_active": True,
                "last_login_at": now - timedelta(days=i % 90),
                "created_at": now,
            }
            for i in range(spec.users)
        ]
        _insert(conn, users_t, user_rows)

        # the pool tree: sites under root/hardware, racks under sites, VM pools under racks
        next_pool = _next_id(conn, pools_t)
        sites: list[dict[str, Any]] = []
        for s in range(spec.sites):
            sites.append(_pool_row(next_pool, f"site-{s:02d}", PoolKind.HARDWARE, hardware, now))
            next_pool += 1
        racks: list[dict[str, Any]] = []
        for site in sites:
            for r in range(spec.racks_per_site):
                name = f"{site['name']}-rack-{r}"
                racks.append(_pool_row(next_pool, name, PoolKind.HARDWARE, site, now))
                next_pool += 1
        vm_pools: list[dict[str, Any]] = []
        rack_vm_pools: dict[int, list[dict[str, Any]]] = {rack["id"]: [] for rack in racks}
        for v in range(spec.vm_pools):
            rack = racks[v % len(racks)]
            k = len(rack_vm_pools[rack["id"]])
            row = _pool_row(next_pool, f"{rack['name']}-vms-{k}", PoolKind.VM, rack, now)
            vm_pools.append(row)
            rack_vm_pools[rack["id"]].append(row)
            next_pool += 1
        _insert(conn, pools_t, sites + racks + vm_pools)

        grants_t = _table(RoleGrant)
        _insert(
            conn,
            grants_t,
            [
                {
                    "pool_id": vm_pools[i % len(vm_pools)]["id"],
                    "user_id": user["id"],
                    "group_name": None,
                    "role": "user",
                    "granted_by_id": None,
                    "created_at": now,
                }
                for i, user in enumerate(user_rows)
            ],
        )

        # hosts, spread evenly over the racks, with CPUs and NICs
        hosts_t, cpus_t, nics_t = _table(Host), _table(HostCpu), _table(HostNic)
        states = [HostState.AVAILABLE.value] * 17 + [
            HostState.MAINTENANCE.value,
            HostState.UNAVAILABLE.value,
            HostState.DISABLED.value,
        ]
        first_host = _next_id(conn, hosts_t)
        host_rows: list[dict[str, Any]] = []
        cpu_rows: list[dict[str, Any]] = []
        nic_rows: list[dict[str, Any]] = []
        for i in range(spec.hosts):
            host_id = first_host + i
            rack = racks[i % len(racks)]
            hostname = f"kvm{i:05d}.{rack['name']}.example.org"
            host_rows.append(
                {
                    "id": host_id,
                    "uuid": _uuid(rng),
                    "hostname": hostname,
                    "pool_id": rack["id"],
                    "pool_kind": PoolKind.HARDWARE.value,
                    "state": states[i % len(states)],
                    "arch": "x86_64",
                    "hypervisor": "QEMU",
                    "hypervisor_version": "8.2.0",
                    "libvirt_version": "10.1.0",
                    "libvirt_uri": f"qemu+tls://{hostname}/system",
                    "memory_mib": 262144,
                    "free_memory_mib": rng.randrange(16384, 200000),
                    "cpu_count": spec.cpus_per_host,
                    "cpu_mhz": 2600,
                    "load_average": round(rng.uniform(0, 8), 2),
                    "last_seen_at": now - timedelta(seconds=rng.randrange(0, 300)),
                    "state_reason": "",
                    "created_at": now,
                }
            )
            cpu_rows.extend(
                {
                    "host_id": host_id,
                    "cpu_index": c,
                    "socket": c // 4,
                    "core": c % 4,
                    "thread": 0,
                    "vendor": "GenuineIntel",
                    "model": "Intel Xeon Gold 6248",
                    "speed_mhz": 2600,
                    "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx",
                }
                for c in range(spec.cpus_per_host)
            )
            nic_rows.extend(
                {
                    "host_id": host_id,
                    "name": f"eno{n + 1}",
                    "mac": _mac(i * spec.nics_per_host + n),
                    "speed_mbps": 10000,
                    "ip_address": f"10.{n}.{i // 250}.{i % 250 + 1}",
                    "prefix_length": 16,
                }
                for n in range(spec.nics_per_host)
            )
        _insert(conn, hosts_t, host_rows)
        _insert(conn, cpus_t, cpu_rows)
        _insert(conn, nics_t, nic_rows)

        # VMs: each in a VM pool of its host's rack
        vms_t = _table(Vm)
        vm_states = [VmState.RUNNING.value] * 8 + [VmState.STOPPED.value, VmState.PAUSED.value]
        first_vm = _next_id(conn, vms_t)
        vm_rows: list[dict[str, Any]] = []
        for host in host_rows:
            pools_here = rack_vm_pools[host["pool_id"]]
            for j in range(spec.vms_per_host):
                vm_id = first_vm + len(vm_rows)
                vm_rows.append(
                    {
                        "id": vm_id,
                        "uuid": _uuid(rng),
                        "name": f"vm{vm_id:06d}",
                        "pool_id": pools_here[j % len(pools_here)]["id"],
                        "pool_kind": PoolKind.VM.value,
                        "host_id": host["id"],
                        "vcpus": 1 + j % 4,
                        "memory_mib": 1024 * (1 + j % 8),
                        "state": vm_states[vm_id % len(vm_states)],
                        "state_reason": "",
                        "boot_kind": "disk",
                        "boot_profile": None,
                        "managed": True,
                        "created_by_id": user_rows[vm_id % len(user_rows)]["id"],
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        _insert(conn, vms_t, vm_rows)

        for table in (users_t, pools_t, grants_t, hosts_t, cpus_t, nics_t, vms_t):
            _advance_sequence(conn, table)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


# -- checking and describing -----------------------------------------------------------------


def _counts(conn: sa.Connection) -> dict[str, int]:
    tables = {
        "pools": _table(Pool),
        "hosts": _table(Host),
        "vms": _table(Vm),
        "users": _table(User),
        "host_cpus": _table(HostCpu),
        "host_nics": _table(HostNic),
    }
    return {
        key: int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
        for key, table in tables.items()
    }


def _misplaced_vms(conn: sa.Connection) -> int:
    """VMs whose host is not in their VM pool's hardware pool (a correct dataset has none)."""
    vms_t, hosts_t, pools_t = _table(Vm), _table(Host), _table(Pool)
    return int(
        conn.scalar(
            sa.select(sa.func.count())
            .select_from(vms_t)
            .join(pools_t, pools_t.c.id == vms_t.c.pool_id)
            .join(hosts_t, hosts_t.c.id == vms_t.c.host_id)
            .where(hosts_t.c.pool_id != pools_t.c.parent_id)
        )
        or 0
    )


def expected_counts(spec: DatasetSpec) -> dict[str, int]:
    """The row counts a correct dataset has (users: the admin may have been added by a login)."""
    return {
        "pools": spec.pools,
        "hosts": spec.hosts,
        "vms": spec.vms,
        "users": spec.users,
        "host_cpus": spec.hosts * spec.cpus_per_host,
        "host_nics": spec.hosts * spec.nics_per_host,
    }


def is_correct(url: str, spec: DatasetSpec) -> bool:
    """Whether an existing database is at the migrations' head and holds exactly this dataset."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
            counts = _counts(conn)
            misplaced = _misplaced_vms(conn)
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()
    expected = expected_counts(spec)
    users_ok = expected["users"] <= counts["users"] <= expected["users"] + 1
    others_ok = all(counts[k] == v for k, v in expected.items() if k != "users")
    return version == head and users_ok and others_ok and misplaced == 0


def describe(url: str, spec: DatasetSpec, reused: bool, seconds: float) -> Dataset:
    """Look up the pools the benchmarks query and the sizes of their subtrees."""
    engine = sa.create_engine(url)
    pools_t = _table(Pool)
    try:
        with engine.connect() as conn:
            hardware = conn.execute(
                sa.select(pools_t.c.id, pools_t.c.path).where(
                    pools_t.c.name == "hardware", pools_t.c.depth == 1
                )
            ).one()
            site = conn.execute(
                sa.select(pools_t.c.id, pools_t.c.path).where(pools_t.c.name == "site-00")
            ).one()

            def size(path: str) -> int:
                return int(
                    conn.scalar(
                        sa.select(sa.func.count())
                        .select_from(pools_t)
                        .where(pools_t.c.path.startswith(path, autoescape=True))
                    )
                    or 0
                )

            return Dataset(
                spec=spec,
                url=url,
                hardware_id=hardware.id,
                site_id=site.id,
                site_subtree=size(site.path),
                hardware_subtree=size(hardware.path),
                reused=reused,
                seconds=seconds,
            )
    finally:
        engine.dispose()


def prepare(spec: DatasetSpec, reuse: bool = False) -> Dataset:
    """Make the dataset's database (or reuse a correct existing one when ``reuse``)."""
    started = time.perf_counter()
    url = database_url(spec.db_name)
    if reuse and database_exists(spec.db_name) and is_correct(url, spec):
        return describe(url, spec, True, time.perf_counter() - started)
    create_database(spec.db_name)
    command.upgrade(alembic_config(url), "head")
    engine = get_engine({"sqlalchemy.url": url})
    try:
        with Session(engine) as session:
            PoolService(ServiceContext.for_session(session)).ensure_builtin()
            session.commit()
        fill(engine, spec)
    finally:
        engine.dispose()
    if not is_correct(url, spec):
        raise RuntimeError(f"dataset {spec.name} in {spec.db_name} came out wrong")
    return describe(url, spec, False, time.perf_counter() - started)
