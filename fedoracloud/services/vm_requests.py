"""VM requests: the admin approval workflow for VMs (docs/architecture.md §3 "Requests").

A person holding ``vm_request`` on a VM pool asks for a VM there: name, profile (one the
pool allows), vCPUs, memory, disk size, network and a reason.  The quota is checked when
they ask and again when an admin of the pool approves (who may change the size or pick
another VM pool where the person may also request).  Approval queues a provisioning
task that makes, in order: the VM's rows with its NIC (MAC) and IP address, the disk
volume, the Cobbler system, the domain, and starts it from the network.  If any step
fails, everything made so far is undone (the domain undefined, the Cobbler system
removed, the volume deleted, the IP released with the rows) and the request says why; an
admin can retry it.

States: pending → approved → provisioning → provisioned | failed; or denied.

Rights on the VM: ``vm_request`` is part of the ``user`` role, so the grant that let the
person ask already gives them ``user`` rights (control, console) on every VM of that
pool, the new one included; approval checks they still hold it on the pool the VM goes
to.  A per-VM grant is not in the model and is not needed.  The VM records the requester
as its creator, and its Cobbler system names them as owner.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, and_, false, func, or_, select, update
from sqlalchemy.orm import Session
from zope.interface import Interface

from ..models import (
    CobblerProfile,
    Host,
    IpAddress,
    Network,
    Pool,
    PoolKind,
    RoleGrant,
    Task,
    User,
    Vm,
    VmRequest,
    VmRequestState,
    VmState,
)
from ..models.meta import utcnow
from ..permissions import Permission, Role, role_allows
from ..virt.hypervisor import Hypervisor, NoSuchDomain
from . import Conflict, InvalidInput, NotFound, ServiceError
from .access import AccessService, check_reason
from .audit import record
from .cobbler import ProfileService, create_system_for_vm, remove_system
from .context import Service, ServiceContext
from .networks import NetworkService
from .quotas import QuotaService
from .storage import StorageService
from .tasks import TaskService, error_message, progress, register
from .vm_tasks import domain_spec
from .vms import (
    DISK_SIZE_MAX_GIB,
    MEMORY_MAX_MIB,
    VCPUS_MAX,
    DiskSpec,
    VmService,
    VmSpec,
    check_vm_name,
    libvirt_options,
)

if TYPE_CHECKING:
    from ..security import Identity

log = logging.getLogger(__name__)

R = VmRequestState
PROVISION_KIND = "vm_request.provision"
MEMORY_MIN_MIB = 256
#: requests that still hold their name in their pool
OPEN_STATES = (R.PENDING.value, R.APPROVED.value, R.PROVISIONING.value)
#: the VMs made for requests get these UUIDs (a retry after a crash finds its leftovers)
REQUEST_NAMESPACE = uuidlib.UUID("0f3c2d6e-8a41-4b8e-b7a5-fedc10d0c0bb")
FIELDS = ("name", "pool", "profile", "vcpus", "memory_mib", "storage_gib", "network", "reason")
APPROVE_FIELDS = ("vcpus", "memory_mib", "storage_gib", "pool")


class ProvisioningFailed(ServiceError):
    """Provisioning stopped; everything made was undone.  Not retried by the runner: an
    admin retries the request (after fixing what the message names)."""

    status = 409
    code = "conflict"
    retryable = False


def _whole(raw: Any, field_name: str, label: str) -> int:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise InvalidInput(f"{label}: a whole number", {"field": field_name})
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdecimal() and len(raw.strip()) < 19:
        return int(raw.strip())
    raise InvalidInput(f"{label}: a whole number", {"field": field_name})


def _in_range(value: int, low: int, high: int, field_name: str, label: str) -> int:
    if not low <= value <= high:
        raise InvalidInput(f"{label}: {low} to {high}, not {value}", {"field": field_name})
    return value


def check_vcpus(raw: Any) -> int:
    return _in_range(_whole(raw, "vcpus", "vCPUs"), 1, VCPUS_MAX, "vcpus", "vCPUs")


def check_memory(raw: Any) -> int:
    value = _whole(raw, "memory_mib", "memory (MiB)")
    return _in_range(value, MEMORY_MIN_MIB, MEMORY_MAX_MIB, "memory_mib", "memory (MiB)")


def check_disk(raw: Any) -> int:
    value = _whole(raw, "storage_gib", "disk size (GiB)")
    return _in_range(value, 1, DISK_SIZE_MAX_GIB, "storage_gib", "disk size (GiB)")


@dataclass
class VmRequestInput:
    """What a person asks for; ``parse`` checks each field's shape and range."""

    name: str
    pool_id: int
    profile_id: int
    vcpus: int
    memory_mib: int
    storage_gib: int
    network_id: int
    reason: str

    @classmethod
    def parse(cls, body: Any) -> VmRequestInput:
        if not isinstance(body, dict):
            raise InvalidInput("expected a JSON object")
        unknown = set(body) - set(FIELDS)
        if unknown:
            names = sorted(str(u)[:32] for u in unknown)[:5]
            raise InvalidInput("unknown fields: " + ", ".join(names), {"fields": names})
        return cls(
            name=check_vm_name(body.get("name")),
            pool_id=_whole(body.get("pool"), "pool", "pool (an id)"),
            profile_id=_whole(body.get("profile"), "profile", "profile (an id)"),
            vcpus=check_vcpus(body.get("vcpus", 1)),
            memory_mib=check_memory(body.get("memory_mib")),
            storage_gib=check_disk(body.get("storage_gib")),
            network_id=_whole(body.get("network"), "network", "network (an id)"),
            reason=check_reason(str(body.get("reason") or "")),
        )


@dataclass
class Approval:
    """What an admin may change when approving (None: as asked)."""

    vcpus: int | None = None
    memory_mib: int | None = None
    storage_gib: int | None = None
    pool_id: int | None = None

    @classmethod
    def parse(cls, body: Any) -> Approval:
        if not isinstance(body, dict):
            raise InvalidInput("expected a JSON object")
        unknown = set(body) - set(APPROVE_FIELDS)
        if unknown:
            names = sorted(str(u)[:32] for u in unknown)[:5]
            raise InvalidInput("unknown fields: " + ", ".join(names), {"fields": names})

        def given(key: str) -> bool:
            return body.get(key) not in (None, "")

        return cls(
            vcpus=check_vcpus(body["vcpus"]) if given("vcpus") else None,
            memory_mib=check_memory(body["memory_mib"]) if given("memory_mib") else None,
            storage_gib=check_disk(body["storage_gib"]) if given("storage_gib") else None,
            pool_id=_whole(body["pool"], "pool", "pool (an id)") if given("pool") else None,
        )


class _Actor:
    """Whom a worker acts as: the person behind the task."""

    def __init__(self, user: User | None) -> None:
        self.user = user


class IVmRequestService(Interface):
    """Marker for pyramid-services: ``request.find_service(IVmRequestService)``."""


class VmRequestService(Service):
    """Asking for VMs, deciding, and provisioning approved requests."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings

    # -- reading --

    def get(self, request_id: int) -> VmRequest:
        found = self.dbsession.get(VmRequest, request_id)
        if found is None:
            raise NotFound(f"no VM request {request_id}")
        return found

    def mine(self, user: User, limit: int = 200) -> list[VmRequest]:
        """A person's requests, newest first."""
        return list(
            self.dbsession.scalars(
                select(VmRequest)
                .where(VmRequest.user_id == user.id)
                .order_by(VmRequest.id.desc())
                .limit(limit)
            )
        )

    def decidable(self, identity: Any, states: tuple[str, ...] = (R.PENDING.value,)) -> Any:
        """A SQL condition on VmRequest joined to Pool: requests in pools where the identity
        may create VMs (admins of the pool, super admins)."""
        if identity is None:
            return false()
        in_state = VmRequest.state.in_(states)
        if identity.is_super_admin:
            return in_state
        paths = [path for path, role in identity.grants if role_allows(role, Permission.VM_CREATE)]
        if not paths:
            return false()
        return and_(in_state, or_(*(Pool.path.startswith(p, autoescape=True) for p in paths)))

    def waiting_count(self, identity: Any) -> int:
        """How many pending requests the identity may decide."""
        return int(
            self.dbsession.scalar(
                select(func.count(VmRequest.id))
                .join(Pool, Pool.id == VmRequest.pool_id)
                .where(self.decidable(identity))
            )
            or 0
        )

    def waiting_for(self, identity: Any, limit: int = 200) -> list[VmRequest]:
        """Pending requests the identity may decide, oldest first."""
        return list(
            self.dbsession.scalars(
                select(VmRequest)
                .join(Pool, Pool.id == VmRequest.pool_id)
                .where(self.decidable(identity))
                .order_by(VmRequest.id)
                .limit(limit)
            )
        )

    def tasks(self, req: VmRequest) -> list[Task]:
        return list(
            self.dbsession.scalars(
                select(Task)
                .where(Task.target_type == "vm_request", Task.target_id == req.id)
                .order_by(Task.id.desc())
                .limit(20)
            )
        )

    def profile_of(self, req: VmRequest) -> CobblerProfile | None:
        return self.dbsession.get(CobblerProfile, req.profile_id) if req.profile_id else None

    # -- checks shared by asking and approving --

    def _vm_pool(self, pool_id: int) -> Pool:
        pool = self.dbsession.get(Pool, pool_id)
        if pool is None:
            raise NotFound(f"no pool {pool_id}", {"field": "pool"})
        if pool.kind != PoolKind.VM:
            raise InvalidInput(
                f"VMs are requested in VM pools; {pool.name!r} is a {pool.kind} pool",
                {"field": "pool"},
            )
        return pool

    def _check_name_free(self, pool: Pool, name: str, other_than: int | None = None) -> None:
        if self.dbsession.scalar(select(Vm.id).where(Vm.pool_id == pool.id, Vm.name == name)):
            raise Conflict(f"pool {pool.name!r} already has a VM named {name!r}", {"field": "name"})
        query = select(VmRequest.id).where(
            VmRequest.pool_id == pool.id,
            VmRequest.name == name,
            VmRequest.state.in_(OPEN_STATES),
        )
        if other_than is not None:
            query = query.where(VmRequest.id != other_than)
        if self.dbsession.scalar(query.limit(1)):
            raise Conflict(
                f"a VM named {name!r} is already requested in pool {pool.name!r}",
                {"field": "name"},
            )

    def _check_fits(
        self, pool: Pool, vcpus: int, memory_mib: int, storage_gib: int, network_id: int
    ) -> Network:
        """Sizes the pool's hosts can run, a disk its storage can make, a guest network,
        and room in every quota above the pool."""
        vms = VmService(self.ctx)
        hardware = vms.hardware_pool(pool)
        spec = VmSpec(name="x", pool_id=pool.id, vcpus=vcpus, memory_mib=memory_mib)
        vms._check_size(spec, hardware, None)
        vms._storage_for(DiskSpec(size_gib=storage_gib), hardware)
        network = next((n for n in self.guest_networks(pool) if n.id == network_id), None)
        if network is None:
            raise InvalidInput(
                f"no guest network {network_id} reaches the hosts of hardware pool"
                f" {hardware.name!r}",
                {"field": "network"},
            )
        QuotaService(self.ctx).check(
            pool, vcpus=vcpus, memory_mib=memory_mib, vms=1, nics=1, storage_gib=storage_gib
        )
        return network

    def guest_networks(self, pool: Pool) -> list[Network]:
        """The guest networks the hosts of a VM pool's hardware pool carry."""
        hardware = VmService(self.ctx).hardware_pool(pool)
        return [
            n
            for n in NetworkService(self.ctx).networks_for_hardware_pool(hardware)
            if n.usage == "guest"
        ]

    def may_request(self, user: User, pool: Pool) -> bool:
        """Whether a person (not the one asking now) holds vm_request on a pool: a grant
        to them or one of their approved groups on it or above, or super admin."""
        groups = [m.group_name for m in user.memberships if m.status == "approved"]
        roles = self.dbsession.scalars(
            select(RoleGrant.role)
            .join(Pool, Pool.id == RoleGrant.pool_id)
            .where(
                Pool.id.in_(pool.ancestor_ids),
                or_(
                    RoleGrant.user_id == user.id,
                    RoleGrant.group_name.in_(groups) if groups else false(),
                ),
            )
        )
        if any(role_allows(Role(r), Permission.VM_REQUEST) for r in roles):
            return True
        return AccessService(self.ctx).gate(user).is_super_admin

    # -- asking --

    def submit(self, user: User, data: VmRequestInput) -> VmRequest:
        """Record a request (the view has checked vm_request on the pool); refused with the
        reason, and nothing written, for a profile the pool does not allow, a name taken,
        sizes out of range or a quota it would exceed."""
        pool = self._vm_pool(data.pool_id)
        self._check_name_free(pool, data.name)
        profile = ProfileService(self.ctx).check_allowed(pool, data.profile_id)
        self._check_fits(pool, data.vcpus, data.memory_mib, data.storage_gib, data.network_id)
        req = VmRequest(
            user_id=user.id,
            pool_id=pool.id,
            name=data.name,
            vcpus=data.vcpus,
            memory_mib=data.memory_mib,
            storage_gib=data.storage_gib,
            profile=profile.name,
            profile_id=profile.id,
            network_id=data.network_id,
            reason=data.reason,
            state=R.PENDING.value,
        )
        self.dbsession.add(req)
        self.dbsession.flush()
        self._audit(req, "vm_request.submit", after=self.summary(req))
        return req

    def summary(self, req: VmRequest) -> dict[str, Any]:
        return {
            "name": req.name,
            "pool": req.pool_id,
            "profile": req.profile,
            "vcpus": req.vcpus,
            "memory_mib": req.memory_mib,
            "storage_gib": req.storage_gib,
            "network": req.network_id,
            "state": req.state,
        }

    def withdraw(self, req: VmRequest, user: User) -> VmRequest:
        """The requester takes back a request nobody decided yet."""
        if req.user_id != user.id:
            raise NotFound(f"no VM request {req.id}")
        self._lock(req)
        if req.state != R.PENDING.value:
            raise Conflict(f"this request is already {req.state}")
        req.state = R.DENIED.value
        req.decision_reason = "withdrawn by the requester"
        req.decided_by_id = user.id
        req.decided_at = req.updated_at = utcnow()
        self._audit(req, "vm_request.withdraw", after={"state": req.state})
        return req

    # -- deciding --

    def approve(self, req: VmRequest, approver: Any, change: Approval | None = None) -> Task:
        """Approve (with the admin's changes) and queue the provisioning task; everything is
        checked again first: the person's right to request in the pool, the profile, the
        name, the sizes and the quota."""
        change = change or Approval()
        self._lock(req)
        if req.state != R.PENDING.value:
            raise Conflict(f"this request was already {req.state}")
        requester = self.dbsession.get(User, req.user_id)
        assert requester is not None
        pool = self._vm_pool(change.pool_id) if change.pool_id is not None else req.pool
        before = self.summary(req)
        if not self.may_request(requester, pool):
            raise InvalidInput(
                f"{requester.username} may not request VMs in pool {pool.name!r}; the VM"
                " must go where their grant gives them the user role",
                {"field": "pool"},
            )
        if pool.id != req.pool_id:
            self._check_name_free(pool, req.name, other_than=req.id)
        vcpus = change.vcpus if change.vcpus is not None else req.vcpus
        memory = change.memory_mib if change.memory_mib is not None else req.memory_mib
        storage = change.storage_gib if change.storage_gib is not None else req.storage_gib
        ProfileService(self.ctx).check_allowed(pool, req.profile_id or 0)
        self._check_fits(pool, vcpus, memory, storage, req.network_id or 0)
        req.pool_id, req.vcpus, req.memory_mib, req.storage_gib = pool.id, vcpus, memory, storage
        req.state = R.APPROVED.value
        req.decided_by_id = approver.user.id
        req.decided_at = req.updated_at = utcnow()
        req.failure_reason = ""
        self.dbsession.flush()
        self.dbsession.expire(req, ["pool"])
        self._audit(req, "vm_request.approve", before=before, after=self.summary(req))
        return self._queue(req)

    def deny(self, req: VmRequest, approver: Any, reason: str) -> VmRequest:
        """Refuse, saying why (the requester reads it)."""
        reason = check_reason(reason)
        self._lock(req)
        if req.state != R.PENDING.value:
            raise Conflict(f"this request was already {req.state}")
        req.state = R.DENIED.value
        req.decision_reason = reason
        req.decided_by_id = approver.user.id
        req.decided_at = req.updated_at = utcnow()
        self._audit(req, "vm_request.deny", after={"state": req.state, "reason": reason})
        return req

    def retry(self, req: VmRequest) -> Task:
        """Provision a failed request again."""
        self._lock(req)
        if req.state != R.FAILED.value:
            raise Conflict(f"only a failed request is retried; this one is {req.state}")
        before = {"state": req.state, "failure_reason": req.failure_reason}
        req.state = R.APPROVED.value
        req.updated_at = utcnow()
        self._audit(req, "vm_request.retry", before=before, after={"state": req.state})
        return self._queue(req)

    def _lock(self, req: VmRequest) -> None:
        """Read the request again, locked until the transaction ends (PostgreSQL), so two
        admins deciding at once do not both act on it."""
        self.dbsession.refresh(req, with_for_update=True)

    def _queue(self, req: VmRequest) -> Task:
        task = TaskService(self.ctx).create(
            PROVISION_KIND,
            "vm_request",
            req.id,
            {"libvirt": libvirt_options(self.settings)},
        )
        req.task_id = task.id
        self.dbsession.flush()
        return task

    def _audit(
        self,
        req: VmRequest,
        action: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        record(
            self.dbsession,
            self.actor,
            action,
            "vm_request",
            req.id,
            pool_id=req.pool_id,
            before=before,
            after=after,
            remote_addr=self.remote_addr,
        )

    # -- provisioning (the worker's side) --

    def provision(self, task: Task, options: Any) -> str:
        """Make the VM of an approved request, step by step; on failure undo every step
        made, record why on the request and fail the task."""
        req = self.dbsession.get(VmRequest, task.target_id)
        if req is None:
            raise NotFound(f"VM request {task.target_id} no longer exists")
        self._lock(req)  # a second task for the same request waits, then finds it done
        if req.state == R.PROVISIONED.value:
            return f"already provisioned as VM {req.name}"
        if req.state not in (R.APPROVED.value, R.PROVISIONING.value):
            raise Conflict(f"VM request {req.id} is {req.state}; nothing to provision")
        req.state = R.PROVISIONING.value
        req.updated_at = utcnow()
        self.dbsession.flush()
        undo: list[tuple[str, Callable[[], Any]]] = []
        savepoint = self.dbsession.begin_nested()
        try:
            message = self._provision_steps(task, req, options, undo)
        except Exception as exc:
            reason = error_message(exc)
            savepoint.rollback()
            problems = self._undo(undo)
            if problems:
                reason += "; while undoing: " + "; ".join(problems)
            self._fail(req, reason)
            raise ProvisioningFailed(
                f"provisioning {req.name} failed, everything made was undone: {reason}"
            ) from exc
        savepoint.commit()
        return message

    def _provision_steps(
        self,
        task: Task,
        req: VmRequest,
        options: Any,
        undo: list[tuple[str, Callable[[], Any]]],
    ) -> str:
        approver = self.dbsession.get(User, req.decided_by_id) if req.decided_by_id else None
        profile = self.profile_of(req)
        if profile is None:
            raise Conflict(f"profile {req.profile!r} is no longer in the cache")
        vms = VmService(replace(self.ctx, actor=cast("Identity", _Actor(approver))))
        spec = VmSpec(
            name=check_vm_name(req.name),
            pool_id=req.pool_id,
            vcpus=req.vcpus,
            memory_mib=req.memory_mib,
            disks=[DiskSpec(size_gib=req.storage_gib)],
            networks=[req.network_id] if req.network_id else [],
            boot_order=["network", "hd"],
            profile_id=profile.id,
        )
        # 1. the VM's rows: disk to make, NIC with its MAC and IP (released by the rollback)
        progress(task, 5, "VM, MAC and IP address")
        vm = vms.build(spec)
        vm.uuid = str(uuidlib.uuid5(REQUEST_NAMESPACE, f"vm-request:{req.id}"))
        vm.created_by_id = req.user_id
        vm.state_reason = f"provisioning for request {req.id}"
        self.dbsession.flush()
        if not vm.nics:
            raise Conflict("the VM has no NIC to netboot from")
        nic = vm.nics[0]
        ip = self.dbsession.scalar(select(IpAddress.address).where(IpAddress.vm_nic_id == nic.id))
        # 2. a host for it
        host = vms.place(vm).host
        vm.host_id = host.id
        self.dbsession.flush()
        self.dbsession.refresh(vm, ["host"])
        hv = Hypervisor(host.libvirt_uri)
        if hv.exists(vm.uuid):  # a crashed earlier attempt's domain
            if hv.state(vm.uuid).active:
                hv.destroy(vm.uuid)
            hv.undefine(vm.uuid)
        # 3. the disk volume
        progress(task, 20, "disk volume")
        for disk in vm.disks:
            self._make_volume(vm, host, disk, undo)
        # 4. the Cobbler system
        progress(task, 45, "Cobbler system")
        undo.append(("Cobbler system", lambda: remove_system(self.dbsession, vm)))
        note = create_system_for_vm(self.dbsession, vm, _Actor(approver))
        # 5. the domain, booting from the network first
        progress(task, 70, "domain")
        hv.define(domain_spec(self.dbsession, vm, options, host))
        undo.append(("domain", lambda: _undefine(hv, vm.uuid)))
        progress(task, 85, "start")
        hv.start(vm.uuid)
        try:
            state = hv.state(vm.uuid).state
        except NoSuchDomain:
            state = VmState.STOPPED.value
        vm.state = VmState(state).value
        vm.state_reason = f"provisioned for request {req.id}"
        vm.updated_at = utcnow()
        req.state = R.PROVISIONED.value
        req.vm_id = vm.id
        req.failure_reason = ""
        req.updated_at = utcnow()
        self.dbsession.flush()
        self._audit(
            req,
            "vm_request.provisioned",
            after={"vm": vm.id, "uuid": vm.uuid, "host": host.hostname, "ip": ip, "mac": nic.mac},
        )
        where = f" on {host.hostname}" + (f" at {ip}" if ip else "")
        return f"{vm.name} provisioned{where}, booting {profile.name} from the network; {note}"

    def _make_volume(self, vm: Vm, host: Host, disk: Any, undo: list[Any]) -> None:
        """Make a disk's new volume (the storage service's work) and remember how to delete
        it on libvirt if a later step fails (its rows go with the rollback)."""
        storage = StorageService(self.ctx)
        volume = storage.create_volume_for_vm(vm, disk)
        if volume is None:
            return
        target = storage.storage_host(host)
        pool_name, volume_name = volume.storage_pool.name, volume.name
        undo.append(("volume", lambda: target.delete_volume(pool_name, volume_name)))

    @staticmethod
    def _undo(undo: list[tuple[str, Callable[[], Any]]]) -> list[str]:
        problems = []
        for what, step in reversed(undo):
            try:
                step()
            except Exception as exc:  # keep undoing the rest; say what stayed behind
                log.warning("undoing %s failed: %s", what, exc)
                problems.append(f"{what} not undone ({error_message(exc)})")
        return problems

    def _fail(self, req: VmRequest, reason: str) -> None:
        """Record the failure on the request: now, and again after the task's transaction
        is rolled back (in a transaction of its own)."""
        values = {"state": R.FAILED.value, "failure_reason": reason[:4000], "updated_at": utcnow()}
        for key, value in values.items():
            setattr(req, key, value)
        self._audit(req, "vm_request.failed", after={"reason": reason[:4000]})
        self.dbsession.flush()
        manager = self.dbsession.info.get("transaction_manager")
        engine = self.dbsession.get_bind()
        if manager is None or not isinstance(engine, Engine):
            return  # not a worker's transaction (tests hand in a connection)
        req_id, pool_id = req.id, req.pool_id

        def write(*_args: Any) -> None:
            with Session(engine) as session, session.begin():
                session.execute(update(VmRequest).where(VmRequest.id == req_id).values(**values))
                record(
                    session,
                    None,
                    "vm_request.failed",
                    "vm_request",
                    req_id,
                    pool_id=pool_id,
                    after={"reason": reason[:4000]},
                )

        manager.get().addAfterAbortHook(write)


def _undefine(hv: Any, uuid: str) -> None:
    if hv.exists(uuid):
        if hv.state(uuid).active:
            hv.destroy(uuid)
        hv.undefine(uuid)


def run_provision(task: Task, dbsession: Session) -> str:
    """The ``vm_request.provision`` task."""
    options = SimpleNamespace(extra=dict((task.args or {}).get("libvirt") or {}))
    user = dbsession.get(User, task.user_id) if task.user_id else None
    return VmRequestService(
        ServiceContext.for_session(dbsession, cast("Identity", _Actor(user)))
    ).provision(task, options)


register(PROVISION_KIND, run_provision, timeout=900, max_attempts=3, title="Provision a VM request")
