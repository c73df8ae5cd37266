"""The contexts of FedoraCloud's URLs, and the factories that load what a URL names.

A route's factory loads the object its URL names (a pool, a host, a VM...) and wraps it in a
context the security policy decides permissions on; a URL naming nothing answers 404.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound

from .models import (
    AccessRequest,
    ApiToken,
    Host,
    IpPool,
    Network,
    Pool,
    PoolKind,
    RoleGrant,
    StoragePool,
    StorageServer,
    StorageVolume,
    Task,
    User,
    Vm,
    VmRequest,
)
from .permissions import Permission
from .services.storage import administered_hardware_pool
from .services.tasks import TaskService


class SiteContext:
    """The whole site: lists (filtered per user in SQL) and site settings."""

    pool_path = None

    def __init__(self, request: Any = None) -> None:
        self.request = request


class PoolContext:
    """One pool; its permissions come from the grants on it and above it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @property
    def pool_path(self) -> str:
        return self.pool.path


class HostContext:
    """One host; governed by its hardware pool."""

    def __init__(self, host: Host) -> None:
        self.host = host

    @property
    def pool_path(self) -> str:
        return self.host.pool.path


class VmContext:
    """One VM; governed by its VM pool."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm

    @property
    def pool_path(self) -> str:
        return self.vm.pool.path


class GrantContext(PoolContext):
    """A grant on a pool; changing it needs set_perms on that pool."""

    def __init__(self, pool: Pool, grant: RoleGrant) -> None:
        super().__init__(pool)
        self.grant = grant


class OwnedContext(SiteContext):
    """Something that belongs to the logged-in user alone (a smart pool, an API token)."""

    def __init__(self, obj: Any) -> None:
        super().__init__()
        self.obj = obj


class AccessRequestContext(SiteContext):
    """An access request; deciding it is for super admins."""

    def __init__(self, access_request: AccessRequest) -> None:
        super().__init__()
        self.access_request = access_request


class UserContext(SiteContext):
    """A person, as super admins manage them."""

    def __init__(self, user: User) -> None:
        super().__init__()
        self.user = user


#: ids are PostgreSQL ``integer`` columns: a larger number names nothing (a 404, not a 500)
ID_MAX = 2**31 - 1


def _id(request: Any, key: str) -> int:
    raw = request.matchdict.get(key, "")
    if not raw.isdecimal() or len(raw) > 10 or int(raw) > ID_MAX:
        raise HTTPNotFound()
    return int(raw)


def pool_factory(request: Any) -> PoolContext:
    """Load ``{pool_id}`` or answer 404."""
    pool = request.dbsession.get(Pool, _id(request, "pool_id"))
    if pool is None:
        raise HTTPNotFound()
    return PoolContext(pool)


def host_factory(request: Any) -> HostContext:
    """Load ``{host_id}`` or answer 404."""
    host = request.dbsession.get(Host, _id(request, "host_id"))
    if host is None:
        raise HTTPNotFound()
    return HostContext(host)


def vm_factory(request: Any) -> VmContext:
    """Load ``{vm_id}`` or answer 404."""
    vm = request.dbsession.get(Vm, _id(request, "vm_id"))
    if vm is None:
        raise HTTPNotFound()
    return VmContext(vm)


def grant_factory(request: Any) -> GrantContext:
    """Load ``{grant_id}`` of ``{pool_id}`` (a grant of another pool is a 404)."""
    pool = pool_factory(request).pool
    grant = request.dbsession.get(RoleGrant, _id(request, "grant_id"))
    if grant is None or grant.pool_id != pool.id:
        raise HTTPNotFound()
    return GrantContext(pool, grant)


def _owner_id(request: Any) -> int | None:
    identity = request.identity
    return identity.user.id if identity is not None else None


def smart_pool_factory(request: Any) -> OwnedContext:
    """The logged-in user's own smart pool ``{smart_id}``; anyone else's is a 404."""
    pool = request.dbsession.get(Pool, _id(request, "smart_id"))
    if pool is None or pool.kind != PoolKind.SMART or pool.owner_id != _owner_id(request):
        raise HTTPNotFound()
    return OwnedContext(pool)


def token_factory(request: Any) -> OwnedContext:
    """The logged-in user's own API token ``{token_id}``; anyone else's is a 404."""
    token = request.dbsession.get(ApiToken, _id(request, "token_id"))
    if token is None or token.user_id != _owner_id(request):
        raise HTTPNotFound()
    return OwnedContext(token)


def access_request_factory(request: Any) -> AccessRequestContext:
    """Load ``{request_id}`` or answer 404."""
    access_request = request.dbsession.get(AccessRequest, _id(request, "request_id"))
    if access_request is None:
        raise HTTPNotFound()
    return AccessRequestContext(access_request)


def user_factory(request: Any) -> UserContext:
    """Load ``{user_id}`` or answer 404."""
    user = request.dbsession.get(User, _id(request, "user_id"))
    if user is None:
        raise HTTPNotFound()
    return UserContext(user)


class TaskContext:
    """One task; governed by its target's pool (a VM's, a host's, the pool itself).  For
    the person who asked for it, and for site-level tasks, it is a site-level object:
    its owner may always view it, anyone else only if they may view the target."""

    def __init__(self, task: Task, pool: Pool | None, owned: bool) -> None:
        self.task = task
        self.pool = pool
        self.owned = owned

    @property
    def pool_path(self) -> str | None:
        return None if self.owned or self.pool is None else self.pool.path


def task_factory(request: Any) -> TaskContext:
    """Load ``{task_id}``; 404 for a site-level task that is neither the user's own nor
    seen by a super admin (a task on a target the user may not view is a 404 through the
    security policy)."""

    task = request.dbsession.get(Task, _id(request, "task_id"))
    if task is None:
        raise HTTPNotFound()
    identity = request.identity
    owned = identity is not None and task.user_id == identity.user.id
    pool = TaskService(request.dbsession).target_pool(task)
    if pool is None and not owned and not (identity is not None and identity.is_super_admin):
        raise HTTPNotFound()
    return TaskContext(task, pool, owned)


class NetworkContext(SiteContext):
    """A network or an IP pool: anyone let in may view it; changing it is a site setting."""

    def __init__(self, network: Network, ip_pool: Any = None) -> None:
        super().__init__()
        self.network = network
        self.ip_pool = ip_pool


def network_factory(request: Any) -> NetworkContext:
    """Load ``{network_id}`` or answer 404."""

    network = request.dbsession.get(Network, _id(request, "network_id"))
    if network is None:
        raise HTTPNotFound()
    return NetworkContext(network)


def ip_pool_factory(request: Any) -> NetworkContext:
    """Load ``{ip_pool_id}`` (and its network) or answer 404."""

    ip_pool = request.dbsession.get(IpPool, _id(request, "ip_pool_id"))
    if ip_pool is None:
        raise HTTPNotFound()
    return NetworkContext(ip_pool.network, ip_pool)


class StorageServerContext(SiteContext):
    """A storage server: super admins only (anyone else gets a 404)."""

    def __init__(self, server: StorageServer) -> None:
        super().__init__()
        self.server = server


class StoragePoolContext:
    """A storage pool, governed by a hardware pool using it that the user administers
    (super admins see every one; an unused pool is site-level)."""

    def __init__(self, storage_pool: StoragePool, hardware_pool: Pool | None) -> None:
        self.storage_pool = storage_pool
        self.hardware_pool = hardware_pool

    @property
    def pool_path(self) -> str | None:
        return self.hardware_pool.path if self.hardware_pool is not None else None


def storage_server_factory(request: Any) -> StorageServerContext:
    """Load ``{server_id}``; 404 unless a super admin asks."""

    server = request.dbsession.get(StorageServer, _id(request, "server_id"))
    identity = request.identity
    if server is None or identity is None or not identity.is_super_admin:
        raise HTTPNotFound()
    return StorageServerContext(server)


def storage_pool_factory(request: Any) -> StoragePoolContext:
    """Load ``{storage_pool_id}``; 404 unless the user administers a hardware pool using it
    (or is a super admin)."""

    pool = request.dbsession.get(StoragePool, _id(request, "storage_pool_id"))
    identity = request.identity
    if pool is None or identity is None:
        raise HTTPNotFound()
    hardware = administered_hardware_pool(identity, pool)
    if hardware is None and not identity.is_super_admin:
        raise HTTPNotFound()
    return StoragePoolContext(pool, hardware)


def storage_volume_factory(request: Any) -> StoragePoolContext:
    """Load ``{volume_id}`` of ``{storage_pool_id}`` (another pool's volume is a 404)."""

    context = storage_pool_factory(request)
    volume = request.dbsession.get(StorageVolume, _id(request, "volume_id"))
    if volume is None or volume.storage_pool_id != context.storage_pool.id:
        raise HTTPNotFound()
    context.volume = volume  # type: ignore[attr-defined]
    return context


class VmRequestContext:
    """A VM request, governed by its VM pool; only its requester and those who may create
    VMs in that pool (its admins) see it, anyone else gets a 404."""

    def __init__(self, vm_request: VmRequest) -> None:
        self.vm_request = vm_request

    @property
    def pool_path(self) -> str:
        return str(self.vm_request.pool.path)


def vm_request_factory(request: Any) -> VmRequestContext:
    """Load ``{request_id}``; 404 unless it is the user's own or they administer its pool."""

    vm_request = request.dbsession.get(VmRequest, _id(request, "request_id"))
    identity = request.identity
    if vm_request is None or identity is None:
        raise HTTPNotFound()
    if vm_request.user_id != identity.user.id and not request.has_permission(
        Permission.VM_CREATE, PoolContext(vm_request.pool)
    ):
        raise HTTPNotFound()
    return VmRequestContext(vm_request)
