"""VMs: the lifecycle state machine, creating VMs, placing them on hosts, quotas, and the
actions that the worker carries out on libvirt (as tasks, never in the request).

One table, ``TRANSITIONS``, says which action is allowed in which state and which
(transitional) state the VM enters when the action is accepted; libvirt's lifecycle
events then set the real state (see ``services/vm_events.py``).
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from zope.interface import Interface

from ..models import (
    Host,
    HostState,
    Network,
    Pool,
    PoolKind,
    StoragePool,
    StorageVolume,
    Task,
    Vm,
    VmDisk,
    VmNic,
    VmState,
)
from ..models.storage import VOLUME_MAKING_KINDS
from ..models.vm import VM_NAME_MAX, VM_NAME_PATTERN
from ..settings import ConfigError, LibvirtSettings
from ..virt.facts import DomainFact
from . import Conflict, InvalidInput, NotFound, ServiceError
from .audit import record
from .cobbler import ProfileService
from .context import Service, ServiceContext
from .networks import MAC_ATTEMPTS, NetworkService, allocate_mac
from .quotas import QuotaService
from .tasks import TaskService

S = VmState

#: every action a user may ask for, in the order buttons are shown
ACTIONS = (
    "start",
    "shutdown",
    "poweroff",
    "suspend",
    "resume",
    "save",
    "restore",
    "reboot",
    "migrate",
    "delete",
)

# fmt: off
#: THE state machine: state → {action: the state the VM shows while the action runs}.
#: An action missing from a state's row is refused (409).  Quick actions (suspend, resume,
#: reboot) leave the state as it is until libvirt's event says what happened.
TRANSITIONS: dict[VmState, dict[str, VmState]] = {
    S.PENDING:       {"delete": S.DELETING},
    S.CREATING:      {"poweroff": S.SHUTTING_DOWN},
    S.RUNNING:       {"shutdown": S.SHUTTING_DOWN, "poweroff": S.SHUTTING_DOWN,
                      "suspend": S.RUNNING, "save": S.SAVING, "reboot": S.RUNNING,
                      "migrate": S.MIGRATING},
    S.PAUSED:        {"resume": S.PAUSED, "poweroff": S.SHUTTING_DOWN, "save": S.SAVING,
                      "migrate": S.MIGRATING},
    S.SAVING:        {},
    S.SAVED:         {"restore": S.RESTORING, "delete": S.DELETING},
    S.RESTORING:     {},
    S.SHUTTING_DOWN: {"poweroff": S.SHUTTING_DOWN},
    S.STOPPED:       {"start": S.CREATING, "delete": S.DELETING},
    S.MIGRATING:     {},
    S.DELETING:      {},
    S.UNKNOWN:       {"poweroff": S.SHUTTING_DOWN, "delete": S.DELETING},
    S.FAILED:        {"start": S.CREATING, "poweroff": S.SHUTTING_DOWN, "delete": S.DELETING},
}
# fmt: on

#: why an action is refused in a state, when "cannot X a VM that is Y" is not enough
_HINTS = {
    ("delete", S.RUNNING): "; power it off first",
    ("delete", S.PAUSED): "; power it off first",
    ("start", S.SAVED): "; restore it instead",
    ("start", S.PAUSED): "; resume it instead",
    ("shutdown", S.PAUSED): "; resume it or power it off",
}

#: states in which a VM holds memory and CPUs on its host
ACTIVE_STATES = (
    S.CREATING.value,
    S.RUNNING.value,
    S.PAUSED.value,
    S.SAVING.value,
    S.RESTORING.value,
    S.SHUTTING_DOWN.value,
    S.MIGRATING.value,
)

#: the libvirt (and task) name of each action's work
TASK_KINDS = {action: f"vm.{action}" for action in ACTIONS} | {"create": "vm.create"}

MEMORY_MAX_MIB = 1024 * 1024  # 1 TiB: the largest VM the cloud will define
VCPUS_MAX = 256  # when no host says how many CPUs it has
DISKS_MAX = 16
NICS_MAX = 8
DISK_SIZE_MAX_GIB = 64 * 1024
BOOT_DEVICES = ("hd", "network", "cdrom")
_NAME = re.compile(VM_NAME_PATTERN)
_PATH = re.compile(r"^/[A-Za-z0-9._+@/-]{1,4095}$")
_CMDLINE = re.compile(r"^[A-Za-z0-9 ._,:=/+@-]{0,1024}$")


def state_of(vm: Vm) -> VmState:
    """The VM's state as a VmState (an unexpected value reads as unknown)."""
    try:
        return VmState(vm.state)
    except ValueError:
        return VmState.UNKNOWN


def allowed_actions(vm: Vm) -> list[str]:
    """The actions the state machine allows for this VM now, in button order."""
    allowed = TRANSITIONS[state_of(vm)]
    return [a for a in ACTIONS if a in allowed and not (a == "delete" and not vm.managed)]


def check_action(vm: Vm, action: str) -> VmState:
    """The state the VM enters for ``action``; InvalidInput for an unknown action, Conflict
    (with the reason) for one the state machine refuses."""
    if action not in ACTIONS:
        raise InvalidInput(
            f"unknown VM action {action[:32]!r}; one of " + ", ".join(ACTIONS),
            {"field": "action"},
        )
    state = state_of(vm)
    if action == "delete" and not vm.managed:
        raise Conflict(
            f"VM {vm.name} was found on its host, not created here; FedoraCloud does not"
            " delete domains it does not manage",
            {"state": state.value, "allowed_actions": allowed_actions(vm)},
        )
    if action not in TRANSITIONS[state]:
        label = state.value.replace("_", " ")
        raise Conflict(
            f"cannot {action} a VM that is {label}" + _HINTS.get((action, state), ""),
            {"state": state.value, "allowed_actions": allowed_actions(vm)},
        )
    return TRANSITIONS[state][action]


def check_vm_name(name: Any) -> str:
    """A VM name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit
    (nothing that could mean something in XML, a path or a shell)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a VM needs a name", {"field": "name"})
    name = name.strip()
    if len(name) > VM_NAME_MAX:
        raise InvalidInput(
            f"a VM name has at most {VM_NAME_MAX} characters (this one has {len(name)})",
            {"field": "name"},
        )
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            "a VM name may hold only letters, digits, '.', '_' and '-', and starts with a"
            " letter or digit",
            {"field": "name"},
        )
    return name


def _whole(raw: Any, field_name: str, label: str) -> int:
    if isinstance(raw, bool):
        raise InvalidInput(f"{label} must be a whole number", {"field": field_name})
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdecimal() and len(raw.strip()) < 19:
        return int(raw.strip())
    raise InvalidInput(f"{label} must be a whole number", {"field": field_name})


def _gib(mib: int) -> str:
    value = mib / 1024
    return f"{value:g} GiB" if value >= 1 or mib == 0 else f"{mib} MiB"


@dataclass
class DiskSpec:
    """One disk asked for: an existing volume, or a new volume of ``size_gib``."""

    volume_id: int | None = None
    size_gib: int | None = None
    storage_pool_id: int | None = None
    bus: str = "virtio"


@dataclass
class VmSpec:
    """What a new VM should be; ``parse`` checks a form or JSON body field by field."""

    name: str
    pool_id: int
    vcpus: int
    memory_mib: int
    host_id: int | None = None
    disks: list[DiskSpec] = field(default_factory=list)
    networks: list[int] = field(default_factory=list)
    boot_order: list[str] = field(default_factory=lambda: ["hd"])
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    #: a Cobbler profile (or image) the pool allows: its create task makes the VM's
    #: Cobbler system, and the VM boots from the network first
    profile_id: int | None = None

    FIELDS = (
        "name",
        "pool",
        "vcpus",
        "memory_mib",
        "host",
        "disks",
        "nics",
        "boot",
        "profile",
    )

    @classmethod
    def parse(cls, body: Any) -> VmSpec:
        """Check the shape and ranges of a create request (not yet what exists)."""
        if not isinstance(body, dict):
            raise InvalidInput("expected a JSON object")
        unknown = set(body) - set(cls.FIELDS)
        if unknown:
            raise InvalidInput(
                "unknown fields: " + ", ".join(sorted(str(u)[:32] for u in unknown)[:5]),
                {"fields": sorted(str(u)[:32] for u in unknown)[:5]},
            )
        name = check_vm_name(body.get("name"))
        if body.get("pool") in (None, ""):
            raise InvalidInput("a VM needs a VM pool", {"field": "pool"})
        pool_id = _whole(body.get("pool"), "pool", "pool (an id)")
        vcpus = _whole(body.get("vcpus", 1), "vcpus", "vcpus")
        if vcpus < 1:
            raise InvalidInput("vcpus: at least 1", {"field": "vcpus"})
        memory = _whole(body.get("memory_mib"), "memory_mib", "memory_mib")
        if memory < 1:
            raise InvalidInput("memory_mib: more than 0", {"field": "memory_mib"})
        if memory > MEMORY_MAX_MIB:
            raise InvalidInput(
                f"memory_mib: at most {MEMORY_MAX_MIB} ({_gib(MEMORY_MAX_MIB)})",
                {"field": "memory_mib"},
            )
        host = body.get("host")
        host_id = None if host in (None, "") else _whole(host, "host", "host (an id)")
        spec = cls(name, pool_id, vcpus, memory, host_id)
        spec.disks = _parse_disks(body.get("disks") or [])
        spec.networks = _parse_nics(body.get("nics") or [])
        _parse_boot(spec, body.get("boot"))
        if body.get("profile") not in (None, ""):
            spec.profile_id = _whole(body["profile"], "profile", "profile (an id)")
            if body.get("boot") is None:
                spec.boot_order = ["network", "hd"]
            elif spec.kernel or "network" not in spec.boot_order:
                raise InvalidInput(
                    "a VM installed from a Cobbler profile boots from the network: put"
                    ' "network" in its boot order',
                    {"field": "boot"},
                )
        return spec


def _parse_disks(raw: Any) -> list[DiskSpec]:
    if not isinstance(raw, list) or len(raw) > DISKS_MAX:
        raise InvalidInput(f"disks: a list of at most {DISKS_MAX}", {"field": "disks"})
    disks = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"volume", "size_gib", "storage_pool", "bus"}:
            raise InvalidInput(
                'each disk is {"volume": id} or {"size_gib": N, "storage_pool": id}',
                {"field": "disks"},
            )
        disk = DiskSpec(bus=str(item.get("bus", "virtio")))
        if disk.bus not in ("virtio", "scsi", "sata", "ide"):
            raise InvalidInput("disk bus: virtio, scsi, sata or ide", {"field": "disks"})
        if item.get("volume") is not None:
            disk.volume_id = _whole(item["volume"], "disks", "disk volume (an id)")
        elif item.get("size_gib") is not None:
            disk.size_gib = _whole(item["size_gib"], "disks", "disk size_gib")
            if not 1 <= disk.size_gib <= DISK_SIZE_MAX_GIB:
                raise InvalidInput(f"disk size_gib: 1 to {DISK_SIZE_MAX_GIB}", {"field": "disks"})
            if item.get("storage_pool") is not None:
                disk.storage_pool_id = _whole(item["storage_pool"], "disks", "storage_pool")
        else:
            raise InvalidInput("a disk names a volume or a size_gib", {"field": "disks"})
        disks.append(disk)
    return disks


def _parse_nics(raw: Any) -> list[int]:
    if not isinstance(raw, list) or len(raw) > NICS_MAX:
        raise InvalidInput(f"nics: a list of at most {NICS_MAX}", {"field": "nics"})
    networks = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"network"}:
            raise InvalidInput('each NIC is {"network": id}', {"field": "nics"})
        networks.append(_whole(item["network"], "nics", "NIC network (an id)"))
    return networks


def _parse_boot(spec: VmSpec, raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict) or set(raw) - {"order", "kernel", "initrd", "cmdline"}:
        raise InvalidInput(
            'boot is {"order": ["hd", "network"], "kernel", "initrd", "cmdline"}',
            {"field": "boot"},
        )
    order = raw.get("order", ["hd"])
    if (
        not isinstance(order, list)
        or not order
        or len(order) != len(set(order))
        or any(o not in BOOT_DEVICES for o in order)
    ):
        raise InvalidInput(
            "boot order: a list of distinct devices among " + ", ".join(BOOT_DEVICES),
            {"field": "boot"},
        )
    spec.boot_order = list(order)
    for key in ("kernel", "initrd"):
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not _PATH.fullmatch(value) or "/../" in value + "/":
            raise InvalidInput(f"boot {key}: an absolute path without '..'", {"field": "boot"})
        setattr(spec, key, value)
    cmdline = raw.get("cmdline")
    if cmdline is not None:
        if not isinstance(cmdline, str) or not _CMDLINE.fullmatch(cmdline):
            raise InvalidInput(
                "boot cmdline: up to 1024 letters, digits, spaces and ._,:=/+@-",
                {"field": "boot"},
            )
        spec.cmdline = cmdline
    if (spec.initrd or spec.cmdline) and not spec.kernel:
        raise InvalidInput("boot initrd and cmdline need a kernel", {"field": "boot"})


@dataclass
class Placement:
    """Where a VM goes, and the figures that chose it."""

    host: Host
    free_mib: int


class IVmService(Interface):
    """Marker for pyramid-services: ``request.find_service(IVmService)``."""


class VmService(Service):
    """Creating VMs, asking for lifecycle actions (as tasks), placement and quotas."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        #: set when a call returned what an earlier one with its idempotency key made
        self.replayed = False

    # -- reading ---------------------------------------------------------------------------

    def get(self, vm_id: int) -> Vm:
        """The VM with this id, or NotFound."""
        vm = self.dbsession.get(Vm, vm_id)
        if vm is None:
            raise NotFound(f"no VM {vm_id}")
        return vm

    def by_name(self, key: str) -> Vm:
        """A VM by UUID, id or name (a name shared by VMs of several pools is ambiguous)."""
        key = key.strip()
        vm = self.dbsession.scalars(select(Vm).where(Vm.uuid == key.lower())).first()
        if vm is None and key.isdecimal() and len(key) < 18:
            vm = self.dbsession.get(Vm, int(key))
        if vm is not None:
            return vm
        found = list(self.dbsession.scalars(select(Vm).where(Vm.name == key).limit(2)))
        if not found:
            raise NotFound(f"no VM {key[:64]!r}")
        if len(found) > 1:
            raise Conflict(f"several VMs are named {key[:64]!r}; give the UUID or the id")
        return found[0]

    def tasks(self, vm: Vm, limit: int = 50) -> list[Task]:
        """The VM's task history, newest first."""
        return list(
            self.dbsession.scalars(
                select(Task)
                .where(Task.target_type == "vm", Task.target_id == vm.id)
                .order_by(Task.id.desc())
                .limit(limit)
            )
        )

    def hardware_pool(self, vm_pool: Pool) -> Pool:
        """The hardware pool whose hosts run a VM pool's VMs (its parent)."""
        if vm_pool.parent_id is None:
            raise InvalidInput(f"pool {vm_pool.name!r} has no hardware pool")
        parent = self.dbsession.get(Pool, vm_pool.parent_id)
        assert parent is not None and parent.kind == PoolKind.HARDWARE  # the schema says so
        return parent

    # -- creating --------------------------------------------------------------------------

    def create(self, spec: VmSpec, idempotency_key: str | None = None) -> tuple[Vm, Task]:
        """Check everything, then write the VM, its disks and NICs, and the task that
        defines its domain; nothing is written if any check fails.  Asked again with the
        same ``idempotency_key`` (a retried POST), it returns what the first call made."""
        self.replayed = False  # the service lives for the request: say it per call
        if idempotency_key is not None:
            replayed = self._replay(idempotency_key, "create")
            if replayed is not None:
                return replayed
        vm = self.build(spec)
        return vm, self._task("create", vm, {}, idempotency_key)

    def build(self, spec: VmSpec) -> Vm:
        """Check everything, then write the VM, its disks and NICs, but no task: the
        caller's own task defines it (a VM request's provisioning does)."""
        pool = self.dbsession.get(Pool, spec.pool_id)
        if pool is None:
            raise NotFound(f"no pool {spec.pool_id}", {"field": "pool"})
        if pool.kind != PoolKind.VM:
            raise InvalidInput(
                f"VMs live in VM pools; {pool.name!r} is a {pool.kind} pool", {"field": "pool"}
            )
        hardware = self.hardware_pool(pool)
        taken = self.dbsession.scalar(
            select(Vm.id).where(Vm.pool_id == pool.id, Vm.name == spec.name)
        )
        if taken is not None:
            raise Conflict(f"pool {pool.name!r} already has a VM named {spec.name!r}")
        host = self._host_for_create(spec, hardware)
        self._check_size(spec, hardware, host)
        disks = self._disks_for_create(spec, hardware)
        networks = self._networks_for_create(spec)
        profile = None
        if spec.profile_id is not None:
            profile = ProfileService(self.ctx).check_allowed(pool, spec.profile_id)
            if not networks:
                raise InvalidInput(
                    "a VM installed from a Cobbler profile needs a NIC to boot from the network",
                    {"field": "nics"},
                )
        QuotaService(self.ctx).check(
            pool,
            vcpus=spec.vcpus,
            memory_mib=spec.memory_mib,
            vms=1,
            nics=len(networks),
            storage_gib=sum(d.size_gib or 0 for d in disks),
        )
        vm = Vm(
            uuid=str(uuidlib.uuid4()),
            name=spec.name,
            pool_id=pool.id,
            pool_kind=pool.kind,
            host_id=host.id if host else None,
            vcpus=spec.vcpus,
            memory_mib=spec.memory_mib,
            state=VmState.PENDING.value,
            state_reason="waiting for its domain to be defined",
            boot_kind=(
                ("image" if profile.kind == "image" else "profile")
                if profile is not None
                else "kernel"
                if spec.kernel
                else spec.boot_order[0]
            ),
            boot_profile=profile.name if profile is not None else None,
            boot_order=",".join(spec.boot_order),
            boot_kernel=spec.kernel,
            boot_initrd=spec.initrd,
            boot_cmdline=spec.cmdline,
            managed=True,
            created_by_id=self._actor_id(),
        )
        vm.disks = disks
        self.dbsession.add(vm)
        self.dbsession.flush()
        self._add_nics(vm, networks)
        record(
            self.dbsession,
            self.actor,
            "vm.create",
            "vm",
            vm.id,
            pool_id=pool.id,
            after={
                "name": vm.name,
                "uuid": vm.uuid,
                "vcpus": vm.vcpus,
                "memory_mib": vm.memory_mib,
                "host_id": vm.host_id,
            },
            remote_addr=self.remote_addr,
        )
        return vm

    def _actor_id(self) -> int | None:
        user = getattr(self.actor, "user", None)
        return user.id if user is not None else None

    def _host_for_create(self, spec: VmSpec, hardware: Pool) -> Host | None:
        if spec.host_id is None:
            return None
        host = self.dbsession.get(Host, spec.host_id)
        if host is None or host.pool_id != hardware.id:
            raise InvalidInput(
                f"no host {spec.host_id} in hardware pool {hardware.name!r}, where this VM"
                " pool's VMs run",
                {"field": "host"},
            )
        if host.state != HostState.AVAILABLE:
            raise Conflict(
                f"host {host.hostname} is {host.state}; VMs go only on available hosts",
                {"field": "host"},
            )
        return host

    def _check_size(self, spec: VmSpec, hardware: Pool, host: Host | None) -> None:
        if host is not None:
            cpus, memory, where = host.cpu_count, host.memory_mib, f"host {host.hostname}"
        else:
            cpus, memory = self.dbsession.execute(
                select(func.max(Host.cpu_count), func.max(Host.memory_mib)).where(
                    Host.pool_id == hardware.id, Host.state == HostState.AVAILABLE
                )
            ).one()
            where = f"the largest host of hardware pool {hardware.name!r}"
        if cpus and spec.vcpus > cpus:
            raise InvalidInput(
                f"vcpus: {spec.vcpus} is more than {where} has ({cpus})", {"field": "vcpus"}
            )
        if not cpus and spec.vcpus > VCPUS_MAX:
            raise InvalidInput(f"vcpus: at most {VCPUS_MAX}", {"field": "vcpus"})
        if memory and spec.memory_mib > memory:
            raise InvalidInput(
                f"memory_mib: {spec.memory_mib} MiB is more than {where} has ({memory} MiB)",
                {"field": "memory_mib"},
            )

    def _disks_for_create(self, spec: VmSpec, hardware: Pool) -> list[VmDisk]:
        disks = []
        used_volumes: set[int] = set()
        for index, disk in enumerate(spec.disks):
            target = ("vd" if disk.bus == "virtio" else "sd") + "abcdefghijklmnop"[index]
            row = VmDisk(target_dev=target, bus=disk.bus, boot_order=None)
            if disk.volume_id is not None:
                volume = self.dbsession.get(StorageVolume, disk.volume_id)
                storage = volume.storage_pool if volume is not None else None
                if volume is None or storage is None or hardware not in storage.hardware_pools:
                    raise InvalidInput(
                        f"no volume {disk.volume_id} in the storage of hardware pool"
                        f" {hardware.name!r}",
                        {"field": "disks"},
                    )
                in_use = self.dbsession.scalar(
                    select(VmDisk.vm_id).where(VmDisk.volume_id == volume.id).limit(1)
                )
                if in_use is not None or volume.id in used_volumes:
                    raise Conflict(f"volume {volume.name} is already a disk of a VM")
                used_volumes.add(volume.id)
                row.volume_id = volume.id
                row.path = volume.path
                row.size_gib = max(1, volume.capacity_bytes // 2**30)
            else:
                # the VM's create task makes the volume (StorageService.create_volume_for_vm)
                storage = self._storage_for(disk, hardware)
                row.size_gib = disk.size_gib
                row.path = None
                row.volume_id = None
                row.storage_pool_id = storage.id
            disks.append(row)
        if disks and "hd" in spec.boot_order:
            disks[0].boot_order = spec.boot_order.index("hd") + 1
        return disks

    def _storage_for(self, disk: DiskSpec, hardware: Pool) -> StoragePool:
        query = select(StoragePool).where(StoragePool.hardware_pools.contains(hardware))
        if disk.storage_pool_id is not None:
            query = query.where(StoragePool.id == disk.storage_pool_id)
        else:
            query = query.where(StoragePool.kind.in_(VOLUME_MAKING_KINDS))
        storage = self.dbsession.scalars(query.order_by(StoragePool.id)).first()
        if storage is None:
            raise InvalidInput(
                f"no storage pool of hardware pool {hardware.name!r} to make a new volume in",
                {"field": "disks"},
            )
        if storage.kind not in VOLUME_MAKING_KINDS:
            raise InvalidInput(
                f"storage pool {storage.name!r} is an iSCSI target: its LUNs are made on the"
                ' storage server; attach one as {"volume": id}',
                {"field": "disks"},
            )
        return storage

    def _networks_for_create(self, spec: VmSpec) -> list[Network]:
        networks = []
        for network_id in spec.networks:
            network = self.dbsession.get(Network, network_id)
            if network is None or network.usage != "guest":
                raise InvalidInput(f"no guest network {network_id}", {"field": "nics"})
            networks.append(network)
        return networks

    def _add_nics(self, vm: Vm, networks: list[Network]) -> None:
        """A NIC per network with a fresh MAC (a MAC taken meanwhile is drawn again) and an
        address from the network's IP pools, if it has any."""
        addresses = NetworkService(self.ctx)
        for network in networks:
            for _attempt in range(MAC_ATTEMPTS):
                mac = allocate_mac(self.dbsession)
                savepoint = self.dbsession.begin_nested()
                nic = VmNic(vm_id=vm.id, mac=mac, network_id=network.id)
                self.dbsession.add(nic)
                try:
                    self.dbsession.flush()
                except IntegrityError:
                    savepoint.rollback()
                    continue
                savepoint.commit()
                break
            else:
                raise Conflict(f"could not find a free MAC in {MAC_ATTEMPTS} tries; try again")
            addresses.allocate_nic_address(nic, network)
        self.dbsession.expire(vm, ["nics"])

    # -- actions ---------------------------------------------------------------------------

    def request(
        self,
        vm: Vm,
        action: str,
        args: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Task:
        """Accept an action (state machine, quota, placement and migration checks), move the
        VM to its transitional state and queue the task; refuse with the reason otherwise.
        Asked again with the same ``idempotency_key``, it returns the first call's task."""
        self.replayed = False
        if idempotency_key is not None:
            replayed = self._replay(idempotency_key, action, vm)
            if replayed is not None:
                return replayed[1]
        args = dict(args or {})
        entered = check_action(vm, action)
        host = vm.host
        if action != "start" and host is not None and host.state == HostState.UNAVAILABLE:
            raise Conflict(
                f"host {host.hostname} does not answer ({host.state_reason or 'unavailable'});"
                f" cannot {action} VM {vm.name} until it does",
                {"state": vm.state, "host": host.id, "host_state": host.state},
            )
        before = {"state": vm.state, "host_id": vm.host_id}
        if action == "start":
            self.check_quota_for_start(vm)
            placement = self.place(vm)
            vm.host_id = placement.host.id
            args = {"host": placement.host.id}
        elif action == "migrate":
            destination = self.check_migration(vm, args.get("host"))
            args = {"host": destination.id, "source": vm.host_id}
        elif action == "delete":
            args = {"delete_volumes": bool(args.get("delete_volumes", False))}
        else:
            args = {}
        if vm.host_id is None and action not in ("delete", "start"):
            raise Conflict(f"VM {vm.name} is on no host")
        vm.state = entered.value
        vm.state_reason = f"{action} asked"
        self.dbsession.flush()
        record(
            self.dbsession,
            self.actor,
            f"vm.{action}",
            "vm",
            vm.id,
            pool_id=vm.pool_id,
            before=before,
            after={"state": vm.state, "host_id": vm.host_id, **args},
            remote_addr=self.remote_addr,
        )
        return self._task(action, vm, args, idempotency_key)

    def _replay(self, key: str, action: str, vm: Vm | None = None) -> tuple[Vm, Task] | None:
        """What an earlier request with this idempotency key made: its VM and task (None
        if the key is new); Conflict if the key was used for something else."""
        task = TaskService(self.ctx).for_idempotency_key(key)
        if task is None:
            return None
        self.replayed = True
        made = self.dbsession.get(Vm, task.target_id) if task.target_type == "vm" else None
        if task.kind != TASK_KINDS[action] or made is None or (vm is not None and made.id != vm.id):
            raise Conflict(
                f"this Idempotency-Key was already used for task {task.id} ({task.kind} on"
                f" {task.target_type} {task.target_id}); use a new key for a new request",
                {"task": task.id},
            )
        return made, task

    def _task(
        self, action: str, vm: Vm, args: dict[str, Any], idempotency_key: str | None = None
    ) -> Task:
        """The task row for the worker, sent after the request's commit; it carries the
        libvirt options of the ini it was asked under (domain type, save and log dirs)."""
        return TaskService(self.ctx).create(
            TASK_KINDS[action],
            "vm",
            vm.id,
            {**args, "libvirt": libvirt_options(self.settings)},
            idempotency_key=idempotency_key,
        )

    def check_quota_for_start(self, vm: Vm) -> None:
        """Refuse to start a VM in a pool whose subtree is already over a quota above it
        (a quota lowered after the VM was made)."""
        quotas = QuotaService(self.ctx)
        for owner, quota in quotas._ancestor_quotas(vm.pool):
            used = quotas.usage(owner)
            for field_name in ("vcpus", "memory_mib", "vms", "nics", "storage_gib"):
                limit = getattr(quota, field_name)
                if limit is not None and used[field_name] > limit:
                    raise Conflict(
                        f"quota of pool {owner.name!r} exceeded: {field_name} used"
                        f" {used[field_name]}, the limit is {limit}; stop or delete VMs there"
                        " first",
                        {"field": field_name, "pool": owner.id, "limit": limit},
                    )

    def committed_mib(self, host: Host, exclude: Vm | None = None) -> int:
        """Memory promised to the active VMs placed on a host."""
        query = select(func.coalesce(func.sum(Vm.memory_mib), 0)).where(
            Vm.host_id == host.id, Vm.state.in_(ACTIVE_STATES)
        )
        if exclude is not None:
            query = query.where(Vm.id != exclude.id)
        return int(self.dbsession.scalar(query) or 0)

    def free_mib(self, host: Host, exclude: Vm | None = None) -> int:
        """What a host can still give: the smaller of what libvirt reports free and what the
        VMs placed on it leave (a start not yet seen by libvirt counts already)."""
        promised = host.memory_mib - self.committed_mib(host, exclude)
        if host.free_memory_mib is None:
            return max(promised, 0)
        return max(min(host.free_memory_mib, promised), 0)

    def place(self, vm: Vm) -> Placement:
        """The host a VM starts on: its own if it fits there, else the least-loaded available
        host of its hardware pool that fits (memory, vCPUs, arch); refused with the figures."""
        hardware = self.hardware_pool(vm.pool)
        hosts = list(
            self.dbsession.scalars(
                select(Host)
                .where(Host.pool_id == hardware.id, Host.state == HostState.AVAILABLE)
                .order_by(Host.id)
            )
        )
        if not hosts:
            raise Conflict(f"no available host in pool {hardware.name} to start {vm.name} on")
        arch = vm.arch or "x86_64"
        fitting = []
        largest_free = 0
        largest_cpus = 0
        for host in hosts:
            if host.arch and host.arch != arch:
                continue
            free = self.free_mib(host, exclude=vm)
            largest_free = max(largest_free, free)
            largest_cpus = max(largest_cpus, host.cpu_count)
            if host.cpu_count and host.cpu_count < vm.vcpus:
                continue
            if free < vm.memory_mib:
                continue
            fitting.append(Placement(host, free))
        if not fitting:
            if not any(not h.arch or h.arch == arch for h in hosts):
                raise Conflict(f"no host in pool {hardware.name} is {arch}")
            if largest_cpus and largest_cpus < vm.vcpus:
                raise Conflict(
                    f"no host in pool {hardware.name} has {vm.vcpus} CPUs; largest: {largest_cpus}"
                )
            raise Conflict(
                f"no host in pool {hardware.name} has {_gib(vm.memory_mib)} free;"
                f" largest free: {_gib(largest_free)}",
                {"memory_mib": vm.memory_mib, "largest_free_mib": largest_free},
            )
        own = next((p for p in fitting if p.host.id == vm.host_id), None)
        if own is not None:
            return own
        fitting.sort(key=lambda p: (-p.free_mib, p.host.load_average or 0.0, p.host.id))
        return fitting[0]

    def migration_targets(self, vm: Vm) -> list[Host]:
        """The hosts a VM's page offers to migrate it to: the other available hosts of its
        hardware pool (check_migration decides whether one of them will do)."""
        hardware = self.hardware_pool(vm.pool)
        return list(
            self.dbsession.scalars(
                select(Host)
                .where(Host.pool_id == hardware.id, Host.state == HostState.AVAILABLE)
                .where(Host.id != (vm.host_id or 0))
                .order_by(Host.hostname)
            )
        )

    def check_migration(self, vm: Vm, destination_id: Any) -> Host:
        """The visible pre-checks of a live migration that need no libvirt call: a
        destination in the same hardware pool, not the same host, available, same arch, with
        the memory free; disks on shared storage or none.  CPU compatibility is checked by
        the task, through libvirt."""
        if destination_id in (None, ""):
            raise InvalidInput("migrate needs a destination host", {"field": "host"})
        host_id = _whole(destination_id, "host", "host (an id)")
        hardware = self.hardware_pool(vm.pool)
        destination = self.dbsession.get(Host, host_id)
        if destination is None or destination.pool_id != hardware.id:
            raise InvalidInput(
                f"no host {host_id} in hardware pool {hardware.name!r}; VMs migrate only"
                " between hosts of their hardware pool",
                {"field": "host"},
            )
        if destination.id == vm.host_id:
            raise InvalidInput(
                f"VM {vm.name} already runs on {destination.hostname}; pick another host",
                {"field": "host"},
            )
        if destination.state != HostState.AVAILABLE:
            raise Conflict(f"host {destination.hostname} is {destination.state}")
        source = vm.host
        if source is not None and source.arch and destination.arch != source.arch:
            raise Conflict(
                f"host {destination.hostname} is {destination.arch or 'of unknown arch'},"
                f" {source.hostname} is {source.arch}"
            )
        free = self.free_mib(destination)
        if free < vm.memory_mib:
            raise Conflict(
                f"host {destination.hostname} has {_gib(free)} free;"
                f" {vm.name} needs {_gib(vm.memory_mib)}"
            )
        for disk in vm.disks:
            if disk.volume_id is None and disk.path:
                raise Conflict(
                    f"disk {disk.target_dev} of {vm.name} is a local file, not on shared"
                    " storage; it cannot migrate live"
                )
        return destination

    # -- recording what libvirt reports ----------------------------------------------------

    def import_domains(self, host: Host, domains: list[DomainFact], pool: Pool) -> list[Vm]:
        """Record each domain as a VM of a VM pool placed on the host (matched by UUID)."""
        if pool.kind != PoolKind.VM:
            raise InvalidInput(f"VMs live in VM pools; {pool.name!r} is a {pool.kind} pool")
        vms = []
        for domain in domains:
            vm = self.dbsession.scalars(select(Vm).where(Vm.uuid == domain.uuid)).first()
            if vm is None:
                vm = Vm(uuid=domain.uuid, name=domain.name, pool_id=pool.id, pool_kind=pool.kind)
                self.dbsession.add(vm)
            vm.host_id = host.id
            vm.state = domain.state
            vm.vcpus = domain.vcpus
            vm.memory_mib = domain.memory_mib
            vms.append(vm)
        self.dbsession.flush()
        return vms


def libvirt_settings(settings: Any) -> LibvirtSettings:
    """The typed ``fedoracloud.libvirt.*`` options: the app's (``Settings.libvirt``), or
    those a task carries (an object whose ``extra`` holds the ini's keys)."""
    libvirt = getattr(settings, "libvirt", None)
    if isinstance(libvirt, LibvirtSettings):
        return libvirt
    try:
        return LibvirtSettings.from_dict(dict(getattr(settings, "extra", None) or {}))
    except ConfigError as exc:
        raise ServiceError(str(exc)) from exc


def libvirt_options(settings: Any) -> dict[str, str]:
    """The ``fedoracloud.libvirt.*`` options a VM task needs, from the app's settings (the
    request copies them into the task, so the worker defines what the app showed)."""
    return libvirt_settings(settings).task_options()
