"""The demo: the seed's pools and eight fake hosts whose facts come from libvirt."""

from __future__ import annotations

import libvirt
import pytest
from sqlalchemy import select

from fedoracloud.demo import HOSTS, ensure_demo_people, load_demo
from fedoracloud.models import Base, Host, Pool, Vm
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.settings import Settings

#: columns that record when something was last looked at, not what it is
VOLATILE = {
    ("hosts", "last_seen_at"),
    ("users", "memberships_checked_at"),
    ("group_memberships", "checked_at"),
}


@pytest.fixture
def demo_settings(tmp_path):
    settings = Settings.from_dict(
        {
            "sqlalchemy.url": "sqlite://",
            "fedoracloud.session_secret": "x" * 20,
            "fedoracloud.htpasswd.file": str(tmp_path / "ht"),
            "fedoracloud.htpasswd.groups_file": str(tmp_path / "groups"),
            "fedoracloud.instance_dir": str(tmp_path),
        }
    )
    ensure_demo_people(settings.htpasswd_file, settings.htpasswd_groups_file, str(tmp_path))
    return settings


def snapshot(dbsession):
    """Every row of every table, minus volatile timestamps."""
    dbsession.flush()
    data = {}
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
        rows = dbsession.execute(select(*columns).order_by(*table.primary_key.columns)).all()
        data[table.name] = [tuple(r) for r in rows]
    return data


def test_demo_builds_the_seed_tree(dbsession, demo_settings):
    load_demo(dbsession, demo_settings)
    pools = PoolService(ServiceContext.for_session(dbsession))
    for name in ("default", "redhat", "fedora", "infra"):
        pool = pools.by_path_names(f"root/hardware/{name}")
        assert pool.kind == "hardware"
        kids = dbsession.scalars(select(Pool).where(Pool.parent_id == pool.id)).all()
        assert kids and all(k.kind == "vm" for k in kids)
    hosts = dbsession.scalars(select(Host)).all()
    assert len(hosts) == 8
    assert {h.hostname for h in hosts} == {h.hostname for h in HOSTS}
    assert all(h.memory_mib == 16384 and h.cpu_count == 8 for h in hosts)
    assert dbsession.scalar(select(Vm).where(Vm.name == "koji-builder01")).host.hostname == (
        "node04.cloud.fedoraproject.org"
    )


def test_demo_twice_leaves_the_same_database(dbsession, demo_settings):
    load_demo(dbsession, demo_settings)
    first = snapshot(dbsession)
    load_demo(dbsession, demo_settings)
    assert snapshot(dbsession) == first


def test_imported_facts_equal_what_libvirt_reports(dbsession, demo_settings):
    load_demo(dbsession, demo_settings)
    for host in dbsession.scalars(select(Host)):
        assert host.libvirt_uri.startswith("test:///")
        conn = libvirt.openReadOnly(host.libvirt_uri)
        try:
            arch, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
            assert (host.arch, host.memory_mib, host.cpu_count, host.cpu_mhz) == (
                arch,
                memory_mib,
                cpus,
                mhz,
            )
            assert nodes * sockets * cores * threads == len(host.cpus)
            assert {(c.socket, c.core) for c in host.cpus} == {
                (s, c) for s in range(sockets) for c in range(cores)
            }
            assert {(n.name, n.mac) for n in host.nics} == {
                (i.name(), i.MACString()) for i in conn.listAllInterfaces(0)
            }
            domains = {
                d.UUIDString(): (d.name(), d.info()[3], d.info()[1] // 1024)
                for d in conn.listAllDomains(0)
            }
            vms = dbsession.scalars(select(Vm).where(Vm.host_id == host.id)).all()
            assert {v.uuid: (v.name, v.vcpus, v.memory_mib) for v in vms} == domains
            assert host.libvirt_version == ".".join(
                str(x)
                for x in (
                    conn.getLibVersion() // 1_000_000,
                    conn.getLibVersion() // 1000 % 1000,
                    conn.getLibVersion() % 1000,
                )
            )
        finally:
            conn.close()


def test_demo_people(dbsession, demo_settings, tmp_path):
    from fedoracloud.auth.htpasswd import HtpasswdBackend
    from fedoracloud.models import AccessRequest, RoleGrant, User
    from fedoracloud.permissions import Role
    from fedoracloud.security import Identity
    from fedoracloud.services.access import AccessService

    load_demo(dbsession, demo_settings)
    access = AccessService(ServiceContext(dbsession, demo_settings))
    people = {u.username: u for u in dbsession.scalars(select(User))}
    assert access.gate(people["admin"]).is_super_admin
    assert access.gate(people["jdoe"]).has_access
    assert not access.gate(people["jdoe"]).is_super_admin
    assert not access.gate(people["newbie"]).has_access
    assert dbsession.scalars(select(AccessRequest)).one().user_id == people["newbie"].id
    # the contributor sees the fedora pool's subtree and never the redhat pool
    grant = dbsession.scalars(select(RoleGrant).where(RoleGrant.user_id == people["jdoe"].id)).one()
    pool = dbsession.get(Pool, grant.pool_id)
    identity = Identity(
        user=people["jdoe"], is_super_admin=False, grants=[(pool.path, Role(grant.role))]
    )
    visible = {p.name for p in dbsession.scalars(select(Pool).where(identity.visible_pools()))}
    assert visible == {"fedora", "fedora-builders", "fedora-test"}
    # each demo password was written once, readable only by its owner
    password = (tmp_path / "demo-jdoe-password").read_text().strip()
    assert HtpasswdBackend(demo_settings.htpasswd_file).verify("jdoe", password)
    assert oct((tmp_path / "demo-admin-password").stat().st_mode & 0o777) == "0o600"


def test_the_demo_pending_host_can_be_approved(dbsession, demo_settings):
    """The pending demo host waits with a real enrollment (token, CSR, facts), so an admin
    approving it in the demo gets its certificate signed; its test:/// URI stays."""
    from fedoracloud.services.enrollment import EnrollmentService

    load_demo(dbsession, demo_settings)
    pending = [h for h in HOSTS if h.state == "pending"]
    assert pending
    host = dbsession.scalar(select(Host).where(Host.hostname == pending[0].hostname))
    assert host.libvirt_uri.startswith("test://")
    service = EnrollmentService(ServiceContext(dbsession, demo_settings))
    enrollment = service.pending_enrollment(host)
    assert enrollment is not None and "BEGIN CERTIFICATE REQUEST" in enrollment.csr_pem
    service.approve(host)
    assert host.state == "available"
    assert "BEGIN CERTIFICATE" in (enrollment.cert_pem or "")
