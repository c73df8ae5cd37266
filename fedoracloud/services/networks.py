"""Networks, IP pools, and the addresses and MACs handed to VM NICs.

A network is physical or a VLAN (1-4094) of a node interface, for guest, management or
storage traffic, bridged on the nodes of the hardware pools it is attached to; its CIDR
(IPv4 or IPv6) overlaps no other network's.  An IP pool is a range of one network's
addresses, overlapping no other pool; its addresses exist as ``ip_addresses`` rows.

For the rest of the app (VM creation and deletion, provisioning):

* ``NetworkService.allocate_nic_address(nic, network)`` hands a NIC the first free
  address of its network's IP pools (None if the network has no IP pool; Conflict, with
  the figures, if every pool is full).  On PostgreSQL it locks a free row with
  ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent requests never get one address
  twice and never wait on each other while free addresses remain.
* ``NetworkService.release_vm_addresses(vm)`` frees every address of a VM's NICs (call it
  before deleting the VM, or when undoing a half-made one).
* ``allocate_mac(dbsession)`` draws a MAC in QEMU's locally administered 52:54:00 range
  that no NIC has; ``vm_nics.mac`` is unique, so a draw that races another insert fails
  at flush and is drawn again by the caller.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.orm import Session, aliased, selectinload
from zope.interface import Interface

from ..models import HostNic, IpAddress, IpPool, Network, Pool, PoolKind, Vm, VmNic
from ..models.meta import utcnow
from ..models.network import network_hardware_pools
from ..virt.domain import MAC_PREFIX
from . import Conflict, InvalidInput, NotFound
from .audit import record
from .context import Service

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

KINDS = ("physical", "vlan")
USAGES = ("guest", "management", "storage")
NAME_MAX = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: a Linux interface name (IFNAMSIZ 16 with its NUL), restricted to what is safe in a file
#: name and a shell variable: letters, digits, '_', '.', '-', starting with a letter or digit
IFNAME_MAX = 15
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
DESCRIPTION_MAX = 255
#: the largest IP pool whose addresses are written out as rows
POOL_ADDRESSES_MAX = 65536
#: the widest networks accepted (a /0 would overlap every other one)
PREFIX_MIN = {4: 8, 6: 16}
PREFIX_MAX = {4: 30, 6: 126}
MAC_ATTEMPTS = 8
#: one PostgreSQL advisory lock serializes changes to networks and pools (overlap checks)
_ADVISORY_LOCK = 0x6E657477  # "netw"

SORT_COLUMNS = {
    "name": Network.name,
    "kind": Network.kind,
    "vlan": Network.vlan_id,
    "usage": Network.usage,
    "bridge": Network.bridge,
    "cidr": Network.cidr,
}


def random_mac() -> str:
    """A random MAC in QEMU's 52:54:00 range (unicast, locally administered)."""
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def allocate_mac(dbsession: Session, draw: Callable[[], str] | None = None) -> str:
    """A MAC in the 52:54:00 range that no VM NIC and no host NIC has now (hosts' NICs may
    be in that range too: QEMU-made test hosts, the demo's); drawn again on a collision, up
    to MAC_ATTEMPTS times, then Conflict.  Insert it under ``vm_nics.mac``'s unique
    constraint: a NIC inserted meanwhile with the same MAC makes the flush fail."""
    draw = draw or random_mac
    for _attempt in range(MAC_ATTEMPTS):
        mac = draw()
        taken = (
            select(VmNic.id)
            .where(VmNic.mac == mac)
            .union_all(select(HostNic.id).where(func.lower(HostNic.mac) == mac))
        )
        if dbsession.scalar(taken.limit(1)) is None:
            return mac
    raise Conflict(f"could not find a free MAC in {MAC_ATTEMPTS} tries; try again")


# -- checking input --------------------------------------------------------------------------


def _text(raw: Any, field_name: str, label: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput(f"{label} must be a string", {"field": field_name})
    return raw.strip()


def check_name(raw: Any, what: str = "network") -> str:
    """A network or IP pool name: 1-64 letters, digits, '.', '_', '-'."""
    name = _text(raw, "name", "name")
    if not name:
        raise InvalidInput(f"a {what} needs a name", {"field": "name"})
    if len(name) > NAME_MAX:
        raise InvalidInput(f"a {what} name has at most {NAME_MAX} characters", {"field": "name"})
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"a {what} name may hold only letters, digits, '.', '_' and '-', and starts with"
            " a letter or digit",
            {"field": "name"},
        )
    return name


def check_ifname(raw: Any, field_name: str, label: str) -> str:
    """A Linux interface name (a bridge, a node NIC): 1-15 characters."""
    name = _text(raw, field_name, label)
    if not name:
        raise InvalidInput(f"a network needs a {label}", {"field": field_name})
    if len(name) > IFNAME_MAX:
        raise InvalidInput(
            f"{label} {name[:32]!r}: a Linux interface name has at most {IFNAME_MAX} characters",
            {"field": field_name},
        )
    if not _IFNAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"{label} {name[:32]!r}: letters, digits, '_', '.' and '-', starting with a"
            " letter or digit",
            {"field": field_name},
        )
    return name


def parse_cidr(raw: Any) -> IpNetwork:
    """An IPv4 or IPv6 network written ADDRESS/PREFIX with no host bits set."""
    value = _text(raw, "cidr", "cidr")
    if not value:
        raise InvalidInput("a network needs a CIDR, e.g. 10.5.126.0/24", {"field": "cidr"})
    if "/" not in value or len(value) > 43:
        raise InvalidInput(
            f"{value[:48]!r} is not a CIDR: write ADDRESS/PREFIX, e.g. 10.5.126.0/24",
            {"field": "cidr"},
        )
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a CIDR: write ADDRESS/PREFIX, e.g. 10.5.126.0/24",
            {"field": "cidr"},
        ) from None
    if str(network.network_address) != str(ipaddress.ip_address(value.split("/")[0])):
        raise InvalidInput(f"{value} has host bits set: did you mean {network}?", {"field": "cidr"})
    low, high = PREFIX_MIN[network.version], PREFIX_MAX[network.version]
    if not low <= network.prefixlen <= high:
        raise InvalidInput(
            f"{network}: an IPv{network.version} network here is a /{low} to a /{high}",
            {"field": "cidr"},
        )
    return network


def parse_address(raw: Any, field_name: str, label: str) -> IpAddr:
    """One IPv4 or IPv6 address."""
    value = _text(raw, field_name, label)
    try:
        if not value or len(value) > 45:
            raise ValueError(value)
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput(
            f"{label} {value[:48]!r} is not an IP address", {"field": field_name}
        ) from None


def _inside(address: IpAddr, network: IpNetwork, field_name: str, label: str) -> None:
    if address.version != network.version or address not in network:
        raise InvalidInput(
            f"{label} {address} is outside the network's {network}", {"field": field_name}
        )
    if network.version == 4 and address in (network.network_address, network.broadcast_address):
        which = "network" if address == network.network_address else "broadcast"
        raise InvalidInput(
            f"{label} {address} is the {which} address of {network}", {"field": field_name}
        )


def _whole(raw: Any, field_name: str, label: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise InvalidInput(f"{label} must be a whole number", {"field": field_name})
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdecimal() and len(raw.strip()) < 10:
        return int(raw.strip())
    raise InvalidInput(f"{label} must be a whole number", {"field": field_name})


@dataclass
class NetworkInput:
    """What a network should be, checked field by field (``parse``), not yet against the
    other networks."""

    name: str
    kind: str
    vlan_id: int | None
    usage: str
    bridge: str
    interface: str
    cidr: IpNetwork
    gateway: IpAddr | None
    description: str = ""
    hardware_pool_ids: list[int] = field(default_factory=list)

    FIELDS = frozenset(
        {
            "name",
            "kind",
            "vlan_id",
            "usage",
            "bridge",
            "interface",
            "cidr",
            "gateway",
            "description",
            "hardware_pools",
        }
    )

    @classmethod
    def parse(cls, body: dict[str, Any]) -> NetworkInput:
        """Check a form's or a JSON body's fields (strings or numbers)."""
        unknown = set(body) - cls.FIELDS
        if unknown:
            raise InvalidInput(
                "unknown fields: " + ", ".join(sorted(str(u)[:32] for u in unknown)[:5])
            )
        name = check_name(body.get("name"))
        kind = _text(body.get("kind", "physical"), "kind", "kind") or "physical"
        if kind not in KINDS:
            raise InvalidInput(f"kind {kind[:32]!r}: physical or vlan", {"field": "kind"})
        vlan_id = _whole(body.get("vlan_id"), "vlan_id", "the VLAN id")
        if kind == "vlan":
            if vlan_id is None or not 1 <= vlan_id <= 4094:
                raise InvalidInput(
                    "a VLAN network needs a VLAN id from 1 to 4094", {"field": "vlan_id"}
                )
        elif vlan_id is not None:
            raise InvalidInput(
                "a physical network has no VLAN id (choose kind vlan)", {"field": "vlan_id"}
            )
        usage = _text(body.get("usage", "guest"), "usage", "usage") or "guest"
        if usage not in USAGES:
            raise InvalidInput(
                f"usage {usage[:32]!r}: guest, management or storage", {"field": "usage"}
            )
        bridge = check_ifname(body.get("bridge"), "bridge", "bridge")
        interface = check_ifname(body.get("interface") or "eth0", "interface", "interface")
        if vlan_id is not None and len(f"{interface}.{vlan_id}") > IFNAME_MAX:
            raise InvalidInput(
                f"the VLAN device {interface}.{vlan_id} would be longer than {IFNAME_MAX}"
                " characters; use a shorter interface name",
                {"field": "interface"},
            )
        if bridge == interface or (vlan_id is not None and bridge == f"{interface}.{vlan_id}"):
            raise InvalidInput(
                f"the bridge {bridge} cannot be the interface it sits on", {"field": "bridge"}
            )
        cidr = parse_cidr(body.get("cidr"))
        gateway = None
        if _text(body.get("gateway"), "gateway", "gateway"):
            gateway = parse_address(body.get("gateway"), "gateway", "gateway")
            _inside(gateway, cidr, "gateway", "gateway")
        description = _text(body.get("description"), "description", "description")
        if len(description) > DESCRIPTION_MAX or any(ord(c) < 32 for c in description):
            raise InvalidInput(
                f"a description is one line of at most {DESCRIPTION_MAX} characters",
                {"field": "description"},
            )
        pools = body.get("hardware_pools") or []
        if isinstance(pools, str | int):
            pools = [pools]
        if not isinstance(pools, list) or len(pools) > 100:
            raise InvalidInput(
                "hardware_pools: a list of hardware pool ids", {"field": "hardware_pools"}
            )
        pool_ids = []
        for raw in pools:
            pool_id = _whole(raw, "hardware_pools", "a hardware pool id")
            if pool_id is None or pool_id < 1:
                raise InvalidInput(
                    "hardware_pools: a list of hardware pool ids", {"field": "hardware_pools"}
                )
            pool_ids.append(pool_id)
        return cls(
            name,
            kind,
            vlan_id,
            usage,
            bridge,
            interface,
            cidr,
            gateway,
            description,
            sorted(set(pool_ids)),
        )


@dataclass
class PoolRange:
    """An IP pool's name and range, checked against its network."""

    name: str
    first: IpAddr
    last: IpAddr

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def addresses(self) -> Iterable[str]:
        kind = type(self.first)
        return (str(kind(n)) for n in range(int(self.first), int(self.last) + 1))


@dataclass
class NetworkQuery:
    """A network list request: filter, sort, page."""

    q: str = ""
    usage: str = ""
    kind: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = 25

    def validate(self) -> NetworkQuery:
        if self.usage and self.usage not in USAGES:
            raise InvalidInput(f"unknown usage {self.usage[:32]!r}", {"field": "usage"})
        if self.kind and self.kind not in KINDS:
            raise InvalidInput(f"unknown kind {self.kind[:32]!r}", {"field": "kind"})
        if self.sort not in SORT_COLUMNS:
            raise InvalidInput(
                f"cannot sort networks by {self.sort[:32]!r}; by one of " + ", ".join(SORT_COLUMNS),
                {"field": "sort"},
            )
        if self.page < 1 or self.page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        if len(self.q) > 64:
            raise InvalidInput("a search has at most 64 characters", {"field": "q"})
        return self


@dataclass
class Usage:
    """How many of a network's (or pool's) addresses are allocated."""

    allocated: int = 0
    total: int = 0

    @property
    def free(self) -> int:
        return self.total - self.allocated


# -- the service -----------------------------------------------------------------------------


def networks_for_hardware_pool(dbsession: Session, pool: Pool) -> list[Network]:
    """The networks a hardware pool's hosts carry: those attached to it or to a hardware
    pool above it, by name."""
    return list(
        dbsession.scalars(
            select(Network)
            .join(network_hardware_pools, network_hardware_pools.c.network_id == Network.id)
            .join(Pool, Pool.id == network_hardware_pools.c.pool_id)
            .where(literal(pool.path).startswith(Pool.path))
            .distinct()
            .order_by(Network.name)
        )
    )


class INetworkService(Interface):
    """Marker for pyramid-services: ``request.find_service(INetworkService)``."""


class NetworkService(Service):
    """Reading and changing networks and IP pools; handing out and releasing addresses."""

    # -- reading -----------------------------------------------------------------------------

    def get(self, network_id: int) -> Network:
        """The network with this id, or NotFound."""
        network = self.dbsession.get(Network, network_id)
        if network is None:
            raise NotFound(f"no network {network_id}")
        return network

    def get_pool(self, pool_id: int) -> IpPool:
        """The IP pool with this id, or NotFound."""
        pool = self.dbsession.get(IpPool, pool_id)
        if pool is None:
            raise NotFound(f"no IP pool {pool_id}")
        return pool

    def by_name(self, name: str) -> Network:
        """The network with this name, or NotFound."""
        network = self.dbsession.scalars(select(Network).where(Network.name == name)).first()
        if network is None:
            raise NotFound(f"no network {name[:64]!r}")
        return network

    def search(self, query: NetworkQuery) -> tuple[list[Network], int]:
        """One page of networks, filtered and sorted, and the total."""
        query.validate()
        stmt = select(Network)
        if query.q:
            text_ = query.q.lower()
            stmt = stmt.where(
                or_(
                    func.lower(Network.name).contains(text_, autoescape=True),
                    Network.cidr.contains(text_, autoescape=True),
                    func.lower(Network.bridge).contains(text_, autoescape=True),
                )
            )
        if query.usage:
            stmt = stmt.where(Network.usage == query.usage)
        if query.kind:
            stmt = stmt.where(Network.kind == query.kind)
        total = (
            self.dbsession.scalar(
                select(func.count()).select_from(stmt.with_only_columns(Network.id).subquery())
            )
            or 0
        )
        column = SORT_COLUMNS[query.sort]
        order = column.desc() if query.descending else column.asc()
        rows = self.dbsession.scalars(
            stmt.options(selectinload(Network.ip_pools), selectinload(Network.hardware_pools))
            .order_by(order, Network.id)
            .offset((query.page - 1) * query.per_page)
            .limit(query.per_page)
        )
        return list(rows), total

    def usage_of_networks(self, networks: Iterable[Network]) -> dict[int, Usage]:
        """Allocated and total addresses per network, in one query."""
        ids = [n.id for n in networks]
        found = {i: Usage() for i in ids}
        if not ids:
            return found
        rows = self.dbsession.execute(
            select(IpPool.network_id, func.count(IpAddress.vm_nic_id), func.count(IpAddress.id))
            .join(IpAddress, IpAddress.ip_pool_id == IpPool.id)
            .where(IpPool.network_id.in_(ids))
            .group_by(IpPool.network_id)
        )
        for network_id, allocated, total in rows:
            found[network_id] = Usage(int(allocated), int(total))
        return found

    def usage_of_pools(self, pools: Iterable[IpPool]) -> dict[int, Usage]:
        """Allocated and total addresses per IP pool, in one query."""
        ids = [p.id for p in pools]
        found = {i: Usage() for i in ids}
        if not ids:
            return found
        rows = self.dbsession.execute(
            select(IpAddress.ip_pool_id, func.count(IpAddress.vm_nic_id), func.count(IpAddress.id))
            .where(IpAddress.ip_pool_id.in_(ids))
            .group_by(IpAddress.ip_pool_id)
        )
        for pool_id, allocated, total in rows:
            found[pool_id] = Usage(int(allocated), int(total))
        return found

    def pools(self, network: Network | None = None) -> list[IpPool]:
        """Every IP pool (of one network, if given), by id."""
        stmt = select(IpPool).options(selectinload(IpPool.network)).order_by(IpPool.id)
        if network is not None:
            stmt = stmt.where(IpPool.network_id == network.id)
        return list(self.dbsession.scalars(stmt))

    def addresses(
        self, pool: IpPool, state: str = "", page: int = 1, per_page: int = 100
    ) -> tuple[list[IpAddress], int]:
        """One page of a pool's addresses in order (``state``: free or allocated), each
        with its NIC and VM loaded, and the total."""
        if state not in ("", "free", "allocated"):
            raise InvalidInput(f"state {state[:32]!r}: free or allocated", {"field": "state"})
        if page < 1 or page > 100_000:
            raise InvalidInput("page must be between 1 and 100000", {"field": "page"})
        stmt = select(IpAddress).where(IpAddress.ip_pool_id == pool.id)
        if state == "free":
            stmt = stmt.where(IpAddress.vm_nic_id.is_(None))
        elif state == "allocated":
            stmt = stmt.where(IpAddress.vm_nic_id.is_not(None))
        total = (
            self.dbsession.scalar(
                select(func.count()).select_from(stmt.with_only_columns(IpAddress.id).subquery())
            )
            or 0
        )
        rows = self.dbsession.scalars(
            stmt.options(selectinload(IpAddress.nic).selectinload(VmNic.vm).selectinload(Vm.pool))
            .order_by(IpAddress.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        return list(rows), total

    def address_of(self, nic: VmNic) -> str | None:
        """The address a NIC holds, if any."""
        return self.dbsession.scalar(select(IpAddress.address).where(IpAddress.vm_nic_id == nic.id))

    def addresses_of(self, vm: Vm) -> dict[int, str]:
        """The address each of a VM's NICs holds, by NIC id (one query)."""
        rows = self.dbsession.execute(
            select(IpAddress.vm_nic_id, IpAddress.address)
            .join(VmNic, VmNic.id == IpAddress.vm_nic_id)
            .where(VmNic.vm_id == vm.id)
        )
        return {nic_id: address for nic_id, address in rows if nic_id is not None}

    def networks_for_hardware_pool(self, pool: Pool) -> list[Network]:
        """The networks a hardware pool's hosts carry: those attached to it or to a
        hardware pool above it, by name."""
        return networks_for_hardware_pool(self.dbsession, pool)

    # -- changing networks -------------------------------------------------------------------

    def _lock(self) -> None:
        """Serialize network and pool changes cluster-wide (PostgreSQL), so two overlapping
        ones made at once cannot both pass the overlap check."""
        if self.dbsession.get_bind().dialect.name == "postgresql":
            self.dbsession.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK}
            )

    def _check_against_others(self, data: NetworkInput, network: Network | None) -> list[Pool]:
        others = list(
            self.dbsession.scalars(
                select(Network).where(Network.id != network.id) if network else select(Network)
            )
        )
        for other in others:
            if other.name == data.name:
                raise Conflict(f"a network named {data.name!r} exists already", {"field": "name"})
            if other.bridge == data.bridge:
                raise Conflict(
                    f"bridge {data.bridge} is network {other.name}'s already",
                    {"field": "bridge"},
                )
            cidr = ipaddress.ip_network(other.cidr)
            if cidr.version == data.cidr.version and cidr.overlaps(data.cidr):
                raise InvalidInput(
                    f"{data.cidr} overlaps network {other.name} ({other.cidr})",
                    {"field": "cidr", "network": other.id},
                )
            if (other.interface, other.vlan_id) == (data.interface, data.vlan_id):
                where = f"VLAN {data.vlan_id} of " if data.vlan_id else ""
                raise Conflict(
                    f"{where}interface {data.interface} carries network {other.name} already",
                    {"field": "interface"},
                )
        pools = []
        for pool_id in data.hardware_pool_ids:
            pool = self.dbsession.get(Pool, pool_id)
            if pool is None or pool.kind != PoolKind.HARDWARE:
                raise InvalidInput(
                    f"no hardware pool {pool_id}: a network is carried by hardware pools",
                    {"field": "hardware_pools"},
                )
            pools.append(pool)
        return pools

    def create(self, data: NetworkInput) -> Network:
        """A new network; refused (nothing written) if it clashes with another one."""
        self._lock()
        pools = self._check_against_others(data, None)
        network = Network(hardware_pools=pools)
        self._apply(network, data)
        self.dbsession.add(network)
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "network.create",
            "network",
            network.id,
            after=self.as_audit(network),
            remote_addr=self.remote_addr,
        )
        return network

    def update(self, network: Network, data: NetworkInput) -> Network:
        """Change a network; its IP pools must stay inside its CIDR, and a network with VM
        NICs stays a guest network."""
        self._lock()
        pools = self._check_against_others(data, network)
        for ip_pool in network.ip_pools:
            for address in (ip_pool.first_address, ip_pool.last_address):
                if ipaddress.ip_address(address) not in data.cidr:
                    raise InvalidInput(
                        f"IP pool {ip_pool.name} ({ip_pool.first_address}-"
                        f"{ip_pool.last_address}) would be outside {data.cidr}; change or"
                        " delete it first",
                        {"field": "cidr"},
                    )
            if data.gateway is not None and _in_range(data.gateway, ip_pool):
                raise InvalidInput(
                    f"gateway {data.gateway} is inside IP pool {ip_pool.name}",
                    {"field": "gateway"},
                )
        nics = self._nic_count(network)
        if nics and data.usage != "guest" and network.usage == "guest":
            raise Conflict(
                f"network {network.name} has {nics} VM NIC{'s' if nics != 1 else ''}; it stays"
                " a guest network while they exist",
                {"field": "usage"},
            )
        before = self.as_audit(network)
        self._apply(network, data)
        network.hardware_pools = pools
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "network.update",
            "network",
            network.id,
            before=before,
            after=self.as_audit(network),
            remote_addr=self.remote_addr,
        )
        return network

    def delete(self, network: Network) -> None:
        """Delete a network and its IP pools; refused while any of its addresses is
        allocated or a VM NIC is on it."""
        self._lock()
        used = self.usage_of_networks([network])[network.id]
        if used.allocated:
            raise Conflict(
                f"network {network.name} has {used.allocated} allocated"
                f" address{'es' if used.allocated != 1 else ''}; delete those VMs first"
            )
        nics = self._nic_count(network)
        if nics:
            raise Conflict(
                f"network {network.name} has {nics} VM NIC{'s' if nics != 1 else ''} on it;"
                " delete those VMs first"
            )
        before = self.as_audit(network)
        for ip_pool in list(network.ip_pools):
            self.dbsession.execute(delete(IpAddress).where(IpAddress.ip_pool_id == ip_pool.id))
            self.dbsession.delete(ip_pool)
        network_id = network.id
        self.dbsession.delete(network)
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "network.delete",
            "network",
            network_id,
            before=before,
            remote_addr=self.remote_addr,
        )

    def _apply(self, network: Network, data: NetworkInput) -> None:
        network.name = data.name
        network.kind = data.kind
        network.vlan_id = data.vlan_id
        network.usage = data.usage
        network.bridge = data.bridge
        network.interface = data.interface
        network.cidr = str(data.cidr)
        network.gateway = str(data.gateway) if data.gateway is not None else None
        network.description = data.description

    def _nic_count(self, network: Network) -> int:
        return int(
            self.dbsession.scalar(
                select(func.count()).select_from(VmNic).where(VmNic.network_id == network.id)
            )
            or 0
        )

    @staticmethod
    def as_audit(network: Network) -> dict[str, Any]:
        """A network's fields, as the audit log keeps them."""
        return {
            "name": network.name,
            "kind": network.kind,
            "vlan_id": network.vlan_id,
            "usage": network.usage,
            "bridge": network.bridge,
            "interface": network.interface,
            "cidr": network.cidr,
            "gateway": network.gateway,
            "hardware_pools": [p.id for p in network.hardware_pools],
        }

    # -- changing IP pools ---------------------------------------------------------------------

    def parse_range(
        self, network: Network, name: Any, first: Any, last: Any, pool: IpPool | None = None
    ) -> PoolRange:
        """Check an IP pool's name and range against its network and the other pools."""
        checked = PoolRange(
            check_name(name, "IP pool"),
            parse_address(first, "first_address", "first address"),
            parse_address(last, "last_address", "last address"),
        )
        cidr = ipaddress.ip_network(network.cidr)
        _inside(checked.first, cidr, "first_address", "first address")
        _inside(checked.last, cidr, "last_address", "last address")
        if int(checked.last) < int(checked.first):
            raise InvalidInput(
                f"the range {checked.first}-{checked.last} ends before it starts",
                {"field": "last_address"},
            )
        if checked.size > POOL_ADDRESSES_MAX:
            raise InvalidInput(
                f"the range {checked.first}-{checked.last} holds {checked.size} addresses;"
                f" an IP pool holds at most {POOL_ADDRESSES_MAX}",
                {"field": "last_address"},
            )
        if network.gateway and int(checked.first) <= int(
            ipaddress.ip_address(network.gateway)
        ) <= int(checked.last):
            raise InvalidInput(
                f"the range {checked.first}-{checked.last} includes the gateway {network.gateway}",
                {"field": "first_address"},
            )
        taken = self.dbsession.scalars(select(IpPool).where(IpPool.name == checked.name)).first()
        if taken is not None and taken is not pool:
            raise Conflict(f"an IP pool named {checked.name!r} exists already", {"field": "name"})
        for other in network.ip_pools:
            if other is pool:
                continue
            if (
                _in_range(checked.first, other)
                or _in_range(checked.last, other)
                or (
                    int(checked.first) < int(ipaddress.ip_address(other.first_address))
                    and int(checked.last) > int(ipaddress.ip_address(other.last_address))
                )
            ):
                raise InvalidInput(
                    f"the range {checked.first}-{checked.last} overlaps IP pool {other.name}"
                    f" ({other.first_address}-{other.last_address})",
                    {"field": "first_address", "ip_pool": other.id},
                )
        return checked

    def create_pool(self, network: Network, name: Any, first: Any, last: Any) -> IpPool:
        """A new IP pool of a network, with a row for each of its addresses."""
        self._lock()
        checked = self.parse_range(network, name, first, last)
        pool = IpPool(
            network_id=network.id,
            name=checked.name,
            first_address=str(checked.first),
            last_address=str(checked.last),
        )
        self.dbsession.add(pool)
        self.dbsession.flush()
        self._add_addresses(pool, checked.addresses())
        self.dbsession.expire(network, ["ip_pools"])
        record(
            self.dbsession,
            self.actor,
            "ip_pool.create",
            "ip_pool",
            pool.id,
            after={"network": network.id, **_pool_audit(pool)},
            remote_addr=self.remote_addr,
        )
        return pool

    def update_pool(self, pool: IpPool, name: Any, first: Any, last: Any) -> IpPool:
        """Rename an IP pool or change its range; an allocated address cannot fall out."""
        self._lock()
        checked = self.parse_range(pool.network, name, first, last, pool)
        rows = self.dbsession.execute(
            select(IpAddress.id, IpAddress.address, IpAddress.vm_nic_id).where(
                IpAddress.ip_pool_id == pool.id
            )
        ).all()
        wanted = set(checked.addresses())
        dropped = [r for r in rows if r.address not in wanted]
        held = [r.address for r in dropped if r.vm_nic_id is not None]
        if held:
            raise Conflict(
                f"the new range leaves out {len(held)} allocated address"
                f"{'es' if len(held) != 1 else ''} ({', '.join(held[:5])}); release them first",
                {"field": "first_address"},
            )
        before = _pool_audit(pool)
        if dropped:
            self.dbsession.execute(
                delete(IpAddress).where(IpAddress.id.in_([r.id for r in dropped]))
            )
        have = {r.address for r in rows}
        pool.name = checked.name
        pool.first_address = str(checked.first)
        pool.last_address = str(checked.last)
        self._add_addresses(pool, (a for a in checked.addresses() if a not in have))
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            "ip_pool.update",
            "ip_pool",
            pool.id,
            before=before,
            after=_pool_audit(pool),
            remote_addr=self.remote_addr,
        )
        return pool

    def delete_pool(self, pool: IpPool) -> None:
        """Delete an IP pool; refused while any of its addresses is allocated."""
        self._lock()
        used = self.usage_of_pools([pool])[pool.id]
        if used.allocated:
            raise Conflict(
                f"IP pool {pool.name} has {used.allocated} allocated"
                f" address{'es' if used.allocated != 1 else ''}; delete those VMs first"
            )
        before = {"network": pool.network_id, **_pool_audit(pool)}
        pool_id, network = pool.id, pool.network
        self.dbsession.execute(delete(IpAddress).where(IpAddress.ip_pool_id == pool_id))
        self.dbsession.delete(pool)
        self.dbsession.flush()
        self.dbsession.expire(network, ["ip_pools"])
        record(
            self.dbsession,
            self.actor,
            "ip_pool.delete",
            "ip_pool",
            pool_id,
            before=before,
            remote_addr=self.remote_addr,
        )

    def _add_addresses(self, pool: IpPool, addresses: Iterable[str]) -> None:
        batch: list[dict[str, Any]] = []
        for address in addresses:
            batch.append({"ip_pool_id": pool.id, "address": address})
            if len(batch) == 5000:
                self.dbsession.execute(insert(IpAddress), batch)
                batch = []
        if batch:
            self.dbsession.execute(insert(IpAddress), batch)

    # -- handing out addresses ------------------------------------------------------------------

    def allocate_nic_address(self, nic: VmNic, network: Network | None = None) -> IpAddress | None:
        """Give a (flushed) NIC the first free address of its network's IP pools, in pool
        order (one statement when there is one); the address it holds already if it has
        one; None if the network has no IP pool.  Conflict, with the figures, when every
        pool is full."""
        network_id = network.id if network is not None else nic.network_id
        if network_id is None:
            return None
        # first skip the rows other transactions hold; only if none is left, wait for
        # them (one of them may roll back) before calling the pools full
        for skip_locked in (True, False):
            claimed = self._claim(network_id, nic, skip_locked)
            if claimed is not None:
                return claimed
        held = self.dbsession.scalars(
            select(IpAddress).where(IpAddress.vm_nic_id == nic.id)
        ).first()
        if held is not None:
            return held
        pools = list(
            self.dbsession.execute(
                select(IpPool.id, IpPool.name)
                .where(IpPool.network_id == network_id)
                .order_by(IpPool.id)
            )
        )
        network = network or self.dbsession.get(Network, network_id)
        if not pools or network is None:
            return None
        usage = self.usage_of_pools([p for p in network.ip_pools])
        if len(pools) == 1:
            pool_id, name = pools[0]
            used = usage[pool_id]
            raise Conflict(
                f"IP pool {name} has no free address ({used.allocated} of {used.total} allocated)",
                {"field": "nics", "ip_pool": pool_id, "network": network.id},
            )
        figures = "; ".join(
            f"{name}: {usage[pool_id].allocated} of {usage[pool_id].total} allocated"
            for pool_id, name in pools
        )
        raise Conflict(
            f"the IP pools of network {network.name} have no free address ({figures})",
            {"field": "nics", "network": network.id},
        )

    def _claim(self, network_id: int, nic: VmNic, skip_locked: bool) -> IpAddress | None:
        """One statement: the first free row of the network's pools, in pool order (locked
        on PostgreSQL, skipping or waiting for rows other transactions hold), is given to
        the NIC unless it holds one already; the condition on ``vm_nic_id`` keeps it safe
        where rows cannot be locked (SQLite)."""
        free = (
            select(IpAddress.id)
            .where(IpAddress.ip_pool_id.in_(_pools_of(network_id)), IpAddress.vm_nic_id.is_(None))
            .order_by(IpAddress.ip_pool_id, IpAddress.id)
            .limit(1)
            .with_for_update(skip_locked=skip_locked)
            .scalar_subquery()
        )
        held = aliased(IpAddress)
        claim = (
            update(IpAddress)
            .where(
                IpAddress.id == free,
                IpAddress.vm_nic_id.is_(None),
                ~select(held.id).where(held.vm_nic_id == nic.id).exists(),
            )
            .values(vm_nic_id=nic.id, allocated_at=utcnow())
            .returning(IpAddress)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        for _attempt in range(8):
            address = self.dbsession.scalars(claim).first()
            if address is not None:
                return address
            if skip_locked or not self._has_free(network_id):
                return None
        return None

    def _has_free(self, network_id: int) -> bool:
        return (
            self.dbsession.scalar(
                select(IpAddress.id)
                .where(
                    IpAddress.ip_pool_id.in_(_pools_of(network_id)),
                    IpAddress.vm_nic_id.is_(None),
                )
                .limit(1)
            )
            is not None
        )

    def release_vm_addresses(self, vm: Vm) -> list[str]:
        """Free the addresses of all of a VM's NICs; returns them."""
        nic_ids = list(self.dbsession.scalars(select(VmNic.id).where(VmNic.vm_id == vm.id)))
        if not nic_ids:
            return []
        held = list(
            self.dbsession.scalars(
                select(IpAddress.address)
                .where(IpAddress.vm_nic_id.in_(nic_ids))
                .order_by(IpAddress.id)
            )
        )
        if held:
            self.dbsession.execute(
                update(IpAddress)
                .where(IpAddress.vm_nic_id.in_(nic_ids))
                .values(vm_nic_id=None, allocated_at=None)
                .execution_options(synchronize_session=False)
            )
            for obj in self.dbsession.identity_map.values():
                if isinstance(obj, IpAddress) and obj.vm_nic_id in nic_ids:
                    self.dbsession.expire(obj)
        return held


def _in_range(address: IpAddr, pool: IpPool) -> bool:
    first = ipaddress.ip_address(pool.first_address)
    last = ipaddress.ip_address(pool.last_address)
    return address.version == first.version and int(first) <= int(address) <= int(last)


def _pool_audit(pool: IpPool) -> dict[str, Any]:
    return {"name": pool.name, "first": pool.first_address, "last": pool.last_address}


def _pools_of(network_id: int) -> Select[int]:
    """The ids of a network's IP pools, as a subquery."""
    return select(IpPool.id).where(IpPool.network_id == network_id)
