"""The all-in-one demo: the seed's pools and eight fake KVM hosts on libvirt's test driver.

Each host is a ``test:///<instance dir>/demo-hosts/<name>.xml`` file with its own memory
(16 GiB, as the seed's nodes), two quad-core CPUs, two NICs and a few domains; the facts
in the database are read back from those URIs through libvirt, never typed in by hand.
Everything is deterministic, so running the demo twice leaves the same database.
"""

from __future__ import annotations

import os
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import libvirt
from sqlalchemy import select
from sqlalchemy.orm import Session

from .auth import Membership
from .auth.htpasswd import HtpasswdBackend, read_groups
from .models import (
    AccessRequest,
    Enrollment,
    Host,
    HostState,
    Network,
    PoolKind,
    RoleGrant,
    StoragePool,
    StorageServer,
)
from .node_agent import make_csr, make_key
from .permissions import Role
from .pki import CaSettings, CertificateAuthority
from .services import ServiceError
from .services.access import AccessService
from .services.cobbler import ProfileService
from .services.context import ServiceContext
from .services.enrollment import EnrollmentService
from .services.hosts import HostService
from .services.networks import NetworkInput, NetworkService
from .services.pools import PoolService
from .services.storage import StorageService
from .services.tasks import RetryableError
from .services.users import UserService
from .services.vms import VmService
from .settings import Settings
from .virt.connection import connect
from .virt.facts import facts_to_json, read_host_facts

DEMO_NAMESPACE = uuid.UUID("6f1c3b1e-2d4a-4c55-9b7e-0fedc10d0000")
DEMO_ADMIN = "admin"
DEMO_CONTRIBUTOR = "jdoe"
DEMO_NEWCOMER = "newbie"
#: what a VM request in the demo is provisioned with (besides the public network): the
#: storage pool on every demo host and the profiles allowed on the fedora pool
DEMO_STORAGE = "vmdisks"
DEMO_ALLOWED_PROFILES = ("Fedora-40-x86_64", "Fedora-41-x86_64", "CentOS-Stream-9-x86_64")

#: hardware pool → its VM pools, from the seed ("a pool for redhat VMs, one for fedora
#: people, another for specific usage")
HARDWARE_POOLS: dict[str, tuple[str, list[str]]] = {
    "default": ("New hosts land here", ["default-vms"]),
    "redhat": ("Red Hat's hosts and VMs", ["redhat-vms"]),
    "fedora": ("Hosts for Fedora contributors", ["fedora-builders", "fedora-test"]),
    "infra": ("Fedora infrastructure services", ["infra-services"]),
}


@dataclass(frozen=True)
class DemoHost:
    """One fake node of the demo."""

    hostname: str
    pool: str
    vm_pool: str
    state: HostState
    domains: tuple[tuple[str, int, int], ...]  # (name, vcpus, memory MiB)

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(DEMO_NAMESPACE, self.hostname))


HOSTS = [
    DemoHost("node01.cloud.fedoraproject.org", "default", "default-vms", HostState.PENDING, ()),
    DemoHost(
        "node02.cloud.fedoraproject.org",
        "redhat",
        "redhat-vms",
        HostState.AVAILABLE,
        (("rhel-build01", 2, 2048), ("rhel-qa01", 2, 4096)),
    ),
    DemoHost(
        "node03.cloud.fedoraproject.org",
        "redhat",
        "redhat-vms",
        HostState.AVAILABLE,
        (("rhel-web01", 1, 1024),),
    ),
    DemoHost(
        "node04.cloud.fedoraproject.org",
        "fedora",
        "fedora-builders",
        HostState.AVAILABLE,
        (("koji-builder01", 4, 4096), ("koji-builder02", 4, 4096), ("koji-builder03", 2, 2048)),
    ),
    DemoHost(
        "node05.cloud.fedoraproject.org",
        "fedora",
        "fedora-builders",
        HostState.AVAILABLE,
        (("koji-builder04", 4, 4096),),
    ),
    DemoHost(
        "node06.cloud.fedoraproject.org",
        "fedora",
        "fedora-test",
        HostState.MAINTENANCE,
        (("rawhide-test01", 2, 2048), ("f42-test01", 1, 1024)),
    ),
    DemoHost(
        "node07.cloud.fedoraproject.org",
        "infra",
        "infra-services",
        HostState.AVAILABLE,
        (("proxy01", 2, 2048), ("ns01", 1, 512)),
    ),
    DemoHost(
        "node08.cloud.fedoraproject.org",
        "infra",
        "infra-services",
        HostState.AVAILABLE,
        (("wiki01", 2, 2048), ("fas01", 2, 4096), ("pkgs01", 2, 2048)),
    ),
]


#: the test driver's own XML namespace (a domain's run state in a host file)
TEST_DRIVER_NS = "http://libvirt.org/schemas/domain/test/1.0"
ET.register_namespace("test", TEST_DRIVER_NS)


@dataclass(frozen=True)
class FakeDomain:
    """A domain defined in a fake host's file."""

    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    running: bool = True


def fake_host_xml(
    index: int, domains: Iterable[FakeDomain], storage_pools: Iterable[str] = ()
) -> bytes:
    """The libvirt test driver's node XML for fake host number ``index`` (0 to 1023): 2x4
    CPUs, 16 GiB, two NICs with unique MACs and addresses, the given domains, and a 4 TiB
    ``dir`` storage pool of each name in ``storage_pools``."""
    if not 0 <= index < 1024:
        raise ValueError(f"fake host index {index} is outside 0-1023")
    node = ET.Element("node")
    cpu = ET.SubElement(node, "cpu")
    for tag, value in (
        ("mhz", "2660"),
        ("model", "x86_64"),
        ("active", "8"),
        ("total", "8"),
        ("nodes", "1"),
        ("sockets", "2"),
        ("cores", "4"),
        ("threads", "1"),
    ):
        ET.SubElement(cpu, tag).text = value
    ET.SubElement(node, "memory").text = str(16 * 1024 * 1024)  # KiB: 16 GiB
    high, low = divmod(index, 256)
    for name, mac_byte, network in (("eth0", 1, "10.5.126"), ("eth1", 2, "209.132.181")):
        iface = ET.SubElement(node, "interface", type="ethernet", name=name)
        ET.SubElement(iface, "start", mode="onboot")
        mac = f"52:54:00:{0xFC + high:02x}:{low:02x}:{mac_byte:02x}"
        ET.SubElement(iface, "mac", address=mac)
        proto = ET.SubElement(iface, "protocol", family="ipv4")
        ET.SubElement(proto, "ip", address=f"{network}.{(20 + low) % 256}", prefix="24")
    for fake in domains:
        domain = ET.SubElement(node, "domain", type="test")
        ET.SubElement(domain, "name").text = fake.name
        ET.SubElement(domain, "uuid").text = fake.uuid
        ET.SubElement(domain, "memory", unit="MiB").text = str(fake.memory_mib)
        ET.SubElement(domain, "vcpu").text = str(fake.vcpus)
        os_el = ET.SubElement(domain, "os")
        ET.SubElement(os_el, "type").text = "hvm"
        if not fake.running:
            # the test driver runs every domain of a host file unless told otherwise
            state = ET.SubElement(domain, f"{{{TEST_DRIVER_NS}}}runstate")
            state.text = str(libvirt.VIR_DOMAIN_SHUTOFF)
    for name in storage_pools:
        pool = ET.SubElement(node, "pool", type="dir")
        ET.SubElement(pool, "name").text = name
        ET.SubElement(pool, "uuid").text = str(uuid.uuid5(DEMO_NAMESPACE, f"{index}/{name}"))
        ET.SubElement(pool, "capacity", unit="TiB").text = "4"
        ET.SubElement(pool, "available", unit="TiB").text = "4"
        ET.SubElement(ET.SubElement(pool, "target"), "path").text = f"/var/lib/libvirt/{name}"
    ET.indent(node)
    return ET.tostring(node, encoding="utf-8", xml_declaration=False) + b"\n"


def host_xml(host: DemoHost, index: int) -> bytes:
    """The libvirt test driver's node XML for a demo host."""
    return fake_host_xml(
        index,
        (
            FakeDomain(name, str(uuid.uuid5(DEMO_NAMESPACE, name)), vcpus, memory_mib)
            for name, vcpus, memory_mib in host.domains
        ),
        (DEMO_STORAGE,),
    )


def _write_if_changed(path: str, data: bytes) -> None:
    try:
        with open(path, "rb") as existing:
            if existing.read() == data:
                return
    except FileNotFoundError:
        pass
    with open(path, "wb") as out:
        out.write(data)


#: the demo's people: (username, what they show)
DEMO_PEOPLE = (
    (DEMO_ADMIN, "super admin (administrator of sysadmin-cloud)"),
    (DEMO_CONTRIBUTOR, "Fedora contributor: a user role on the fedora pool only"),
    (DEMO_NEWCOMER, "not in sysadmin-cloud: sees the access request page"),
)
DEMO_GROUPS = (
    f"# the demo's groups (Apache AuthGroupFile style; @ = administrator of the group)\n"
    f"sysadmin-cloud: @{DEMO_ADMIN} {DEMO_CONTRIBUTOR}\n"
    f"fedora-packagers: {DEMO_CONTRIBUTOR} {DEMO_NEWCOMER}\n"
)


def ensure_demo_people(htpasswd_file: str, groups_file: str, instance_dir: str) -> dict[str, str]:
    """Give each demo person a random password if they have none, and write the groups file
    if there is none; returns the new passwords (kept, mode 0600, in the instance dir)."""
    backend = HtpasswdBackend(htpasswd_file)
    made = {}
    for username, _what in DEMO_PEOPLE:
        if not backend.has_user(username):
            made[username] = secrets.token_urlsafe(12)
            backend.set_password(username, made[username])
    if groups_file and not os.path.exists(groups_file):
        with open(groups_file, "w", encoding="utf-8") as out:
            out.write(DEMO_GROUPS)
    for username, password in made.items():
        name = "demo-admin-password" if username == DEMO_ADMIN else f"demo-{username}-password"
        path = os.path.join(instance_dir, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(password + "\n")
    return made


def load_demo_people(ctx: ServiceContext) -> None:
    """The contributor's grant on the fedora pool and the newcomer's access request."""
    dbsession = ctx.dbsession
    access = AccessService(ctx)
    groups = read_groups(ctx.settings.htpasswd_groups_file or "") or None
    people = {}
    for username, _what in DEMO_PEOPLE:
        user = UserService(ctx).get_or_create(username)
        if groups is not None:
            access.sync_memberships(
                user,
                [
                    Membership(group, role, status)
                    for group, members in groups.items()
                    for name, role, status in members
                    if name == username
                ],
            )
        people[username] = user
    fedora = PoolService(ctx).by_path_names("root/hardware/fedora")
    contributor = people[DEMO_CONTRIBUTOR]
    if (
        dbsession.scalars(select(RoleGrant).where(RoleGrant.user_id == contributor.id)).first()
        is None
    ):
        dbsession.add(RoleGrant(pool_id=fedora.id, user_id=contributor.id, role=Role.USER.value))
    newcomer = people[DEMO_NEWCOMER]
    if access.latest_request(newcomer) is None:
        dbsession.add(
            AccessRequest(
                user_id=newcomer.id,
                reason="I maintain the Fedora QA automation and need two VMs to test composes.",
            )
        )
    dbsession.flush()


#: the seed's two networks: "an external pool of about 80 public IPs" for guests and "a
#: private 10.x storage+management network on a VLAN"; (fields, IP pool name, first, last)
DEMO_NETWORKS = (
    (
        {
            "name": "public",
            "usage": "guest",
            "interface": "eth1",
            "bridge": "brpublic",
            "cidr": "209.132.181.0/24",
            "gateway": "209.132.181.1",
            "description": "The external network: the cloud's public addresses for guests",
        },
        ("public", "209.132.181.160", "209.132.181.239"),
    ),
    (
        {
            "name": "private",
            "kind": "vlan",
            "vlan_id": 126,
            "usage": "management",
            "interface": "eth0",
            "bridge": "brprivate",
            "cidr": "10.5.126.0/24",
            "gateway": "10.5.126.1",
            "description": "Storage and management: iSCSI, libvirt, Puppet and collectd",
        },
        ("management", "10.5.126.100", "10.5.126.199"),
    ),
)


def load_demo_networks(ctx: ServiceContext, hardware: Any) -> None:
    """The seed's networks, carried by every hardware pool, each with its IP pool (made once:
    an existing network of that name is left as it is)."""
    dbsession = ctx.dbsession
    networks = NetworkService(ctx)
    for fields, (pool_name, first, last) in DEMO_NETWORKS:
        if dbsession.scalars(select(Network).where(Network.name == fields["name"])).first():
            continue
        network = networks.create(NetworkInput.parse({**fields, "hardware_pools": [hardware.id]}))
        networks.create_pool(network, pool_name, first, last)


def load_demo(
    dbsession: Session, settings: Settings, progress: Callable[[str], None] = lambda _msg: None
) -> dict[str, Any]:
    """Build (or refresh) the demo; returns what it made."""
    ctx = ServiceContext(dbsession, settings)
    xml_dir = os.path.join(settings.instance_dir, "demo-hosts")
    os.makedirs(xml_dir, exist_ok=True)
    pools = PoolService(ctx)
    builtin = pools.ensure_builtin()
    vm_pools = {}
    for name, (description, vm_pool_names) in HARDWARE_POOLS.items():
        hardware = pools.ensure_child(builtin["hardware"], name, PoolKind.HARDWARE, description)
        for vm_pool_name in vm_pool_names:
            vm_pools[vm_pool_name] = pools.ensure_child(hardware, vm_pool_name, PoolKind.VM)
    hosts = HostService(ctx)
    vms = VmService(ctx)
    made = []
    for index, demo_host in enumerate(HOSTS, start=1):
        path = os.path.abspath(os.path.join(xml_dir, f"{demo_host.hostname}.xml"))
        _write_if_changed(path, host_xml(demo_host, index))
        uri = f"test://{path}"
        with connect(uri, read_only=True) as conn:
            facts = read_host_facts(conn)
        hardware = pools.by_path_names(f"root/hardware/{demo_host.pool}")
        if demo_host.state == HostState.PENDING:
            enroll_demo_host(ctx, demo_host, hardware, facts)
        host = hosts.register(
            demo_host.uuid, demo_host.hostname, hardware, uri, state=demo_host.state
        )
        hosts.apply_facts(host, facts)
        vms.import_domains(host, facts.domains, vm_pools[demo_host.vm_pool])
        made.append(host)
        progress(
            f"[{index}/{len(HOSTS)}] {demo_host.hostname}: {len(facts.cpus)} CPUs, "
            f"{facts.memory_mib} MiB, {len(facts.domains)} domains from {uri}"
        )
    load_demo_networks(ctx, builtin["hardware"])
    load_demo_people(ctx)
    load_demo_provisioning(ctx)
    load_demo_storage(ctx, progress)
    return {"hosts": made, "vm_pools": vm_pools}


def enroll_demo_host(ctx: ServiceContext, demo_host: DemoHost, hardware: Any, facts: Any) -> None:
    """Give a pending demo host the enrollment a real node would have made (a token bound to
    its name, a CSR, its facts) through the enrollment service, so an admin can approve it
    in the demo; the site's CA is made if there is none.  Nothing happens once the host has
    an enrollment (the demo then registers it with its test:/// URI as usual)."""
    dbsession = ctx.dbsession
    known = dbsession.scalar(
        select(Enrollment.id).join(Host).where(Host.uuid == demo_host.uuid).limit(1)
    )
    if known is not None:
        return
    ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))
    if not ca.exists():
        ca.init()
    service = EnrollmentService(ctx)
    issued = service.issue_token(hardware, demo_host.hostname, "1h")
    body = {
        "token": issued.token,
        "csr": make_csr(make_key(), demo_host.hostname),
        "facts": facts_to_json(demo_host.uuid, demo_host.hostname, facts),
    }
    service.enroll(body, "127.0.0.1")


def load_demo_provisioning(ctx: ServiceContext) -> None:
    """What a VM request needs in the demo besides the public network: the hosts' storage
    pool and Cobbler profiles in the database (no Cobbler runs in the demo: provisioning
    makes no Cobbler system and says so), allowed on fedora."""
    dbsession = ctx.dbsession
    pools = PoolService(ctx)
    hardware = [pools.by_path_names(f"root/hardware/{name}") for name in HARDWARE_POOLS]
    storage = dbsession.scalars(select(StoragePool).where(StoragePool.name == DEMO_STORAGE)).first()
    if storage is None:
        storage = StoragePool(
            name=DEMO_STORAGE, kind="dir", target_path=f"/var/lib/libvirt/{DEMO_STORAGE}"
        )
        dbsession.add(storage)
    storage.hardware_pools = hardware
    profiles = ProfileService(ctx)
    seeded = {p.name: p for p in profiles.seed_demo()}
    fedora = pools.by_path_names("root/hardware/fedora")
    if not profiles.own(fedora):
        profiles.set_allowed(fedora, [seeded[n].id for n in DEMO_ALLOWED_PROFILES])
    dbsession.flush()


#: the seed's storage: "two storage servers of 4 TB, a master exporting over iSCSI and a
#: secondary replicated to over iSCSI and software RAID"; (hostname, address, role)
DEMO_STORAGE_SERVERS = (
    ("storage01.cloud.fedoraproject.org", "10.5.126.31", "master"),
    ("storage02.cloud.fedoraproject.org", "10.5.126.32", "secondary"),
)
DEMO_IQN = "iqn.2009-01.org.fedoraproject.cloud:storage01.guests"


def load_demo_storage(ctx: ServiceContext, progress: Callable[[str], None]) -> None:
    """The seed's storage servers, an iSCSI pool on the master and an LVM volume group on
    its LUN 1 (both used by fedora and infra), made once; then each storage pool never
    refreshed is defined on its hosts' test drivers so its figures come from libvirt."""
    dbsession = ctx.dbsession
    servers = {}
    for hostname, address, role in DEMO_STORAGE_SERVERS:
        server = dbsession.scalars(
            select(StorageServer).where(StorageServer.hostname == hostname)
        ).first()
        if server is None:
            server = StorageServer(
                hostname=hostname, address=address, role=role, capacity_bytes=4 * 10**12
            )
            dbsession.add(server)
            dbsession.flush()
        servers[role] = server
    servers["master"].replicates_to_id = servers["secondary"].id
    pools = PoolService(ctx)
    users = [pools.by_path_names(f"root/hardware/{name}") for name in ("fedora", "infra")]

    def ensure(name: str, **fields: Any) -> StoragePool:
        pool = dbsession.scalars(select(StoragePool).where(StoragePool.name == name)).first()
        if pool is None:
            pool = StoragePool(name=name, state="defined", **fields)
            pool.hardware_pools = users
            dbsession.add(pool)
            dbsession.flush()
        return pool

    iscsi = ensure(
        "master-iscsi",
        kind="iscsi",
        server_id=servers["master"].id,
        portal_address="10.5.126.31",
        port=3260,
        target_iqn=DEMO_IQN,
    )
    ensure("guests-lvm", kind="logical", volume_group="vg_guests", parent_pool_id=iscsi.id, lun=1)
    storage = StorageService(ctx)
    for pool in dbsession.scalars(select(StoragePool).order_by(StoragePool.name)):
        if pool.refreshed_at is not None or not pool.hardware_pools:
            continue
        try:
            progress(storage.define_on_hosts(pool))
        except (ServiceError, RetryableError) as exc:
            progress(f"storage pool {pool.name}: {exc}")
    dbsession.flush()
