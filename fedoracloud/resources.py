"""The contexts of FedoraCloud's URLs, and the factories that load what a URL names.

A route's factory loads the object its URL names (a pool, a host, a VM...) and wraps it in a
context the security policy decides permissions on; a URL naming nothing answers 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pyramid.httpexceptions import HTTPNotFound
from sqlalchemy.orm import joinedload

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
from .request import FcRequest
from .services.tasks import ITaskService


class SiteContext:
    """The whole site: lists (filtered per user in SQL) and site settings."""

    pool_path = None

    def __init__(self, request: FcRequest | None = None) -> None:
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
    """Something that belongs to one person alone (a smart pool, an API token): nobody else
    sees it, not even a super admin."""

    def __init__(self, obj: Any, owner_id: int | None) -> None:
        super().__init__()
        self.obj = obj
        self.owner_id = owner_id


class SuperAdminContext(SiteContext):
    """A site-level object only super admins see (anyone else gets a 404): a storage
    server, the replication view."""


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


T = TypeVar("T")


def _id(request: FcRequest, key: str) -> int:
    raw = request.matchdict.get(key, "")
    if not raw.isdecimal() or len(raw) > 10 or int(raw) > ID_MAX:
        raise HTTPNotFound()
    return int(raw)


def _load(request: FcRequest, model: type[T], key: str, **options: Any) -> T:
    """The row of ``model`` whose id the URL's ``{key}`` names, or a 404."""
    row = request.dbsession.get(model, _id(request, key), **options)
    if row is None:
        raise HTTPNotFound()
    return row


def pool_factory(request: FcRequest) -> PoolContext:
    """Load ``{pool_id}`` or answer 404."""
    pool = _load(request, Pool, "pool_id")
    return PoolContext(pool)


def host_factory(request: FcRequest) -> HostContext:
    """Load ``{host_id}`` or answer 404."""
    host = _load(request, Host, "host_id")
    return HostContext(host)


def vm_factory(request: FcRequest) -> VmContext:
    """Load ``{vm_id}`` with its pool and host (every VM answer names them) or answer 404."""
    vm = _load(request, Vm, "vm_id", options=[joinedload(Vm.pool), joinedload(Vm.host)])
    return VmContext(vm)


def grant_factory(request: FcRequest) -> GrantContext:
    """Load ``{grant_id}`` of ``{pool_id}`` (a grant of another pool is a 404)."""
    pool = pool_factory(request).pool
    grant = _load(request, RoleGrant, "grant_id")
    if grant.pool_id != pool.id:
        raise HTTPNotFound()
    return GrantContext(pool, grant)


def smart_pool_factory(request: FcRequest) -> OwnedContext:
    """Load the smart pool ``{smart_id}`` or answer 404."""
    pool = _load(request, Pool, "smart_id")
    if pool.kind != PoolKind.SMART:
        raise HTTPNotFound()
    return OwnedContext(pool, pool.owner_id)


def token_factory(request: FcRequest) -> OwnedContext:
    """Load the API token ``{token_id}`` or answer 404."""
    token = _load(request, ApiToken, "token_id")
    return OwnedContext(token, token.user_id)


def access_request_factory(request: FcRequest) -> AccessRequestContext:
    """Load ``{request_id}`` or answer 404."""
    access_request = _load(request, AccessRequest, "request_id")
    return AccessRequestContext(access_request)


def user_factory(request: FcRequest) -> UserContext:
    """Load ``{user_id}`` or answer 404."""
    user = _load(request, User, "user_id")
    return UserContext(user)


class TaskContext:
    """One task, governed by its target's pool (a VM's, a host's, the pool itself); a task
    with no such pool is site-level.  Whoever asked for a task may always see it."""

    def __init__(self, task: Task, pool: Pool | None) -> None:
        self.task = task
        self.pool = pool


def task_factory(request: FcRequest) -> TaskContext:
    """Load ``{task_id}`` and the pool of its target, or answer 404."""
    task = _load(request, Task, "task_id")
    return TaskContext(task, request.find_service(ITaskService).target_pool(task))


class NetworkContext(SiteContext):
    """A network or an IP pool: anyone let in may view it; changing it is a site setting."""

    def __init__(self, network: Network, ip_pool: Any = None) -> None:
        super().__init__()
        self.network = network
        self.ip_pool = ip_pool


def network_factory(request: FcRequest) -> NetworkContext:
    """Load ``{network_id}`` or answer 404."""
    network = _load(request, Network, "network_id")
    return NetworkContext(network)


def ip_pool_factory(request: FcRequest) -> NetworkContext:
    """Load ``{ip_pool_id}`` (and its network) or answer 404."""
    ip_pool = _load(request, IpPool, "ip_pool_id")
    return NetworkContext(ip_pool.network, ip_pool)


class StorageServerContext(SuperAdminContext):
    """A storage server."""

    def __init__(self, server: StorageServer) -> None:
        super().__init__()
        self.server = server


class ReplicationContext(SuperAdminContext):
    """The replication view of the storage servers."""


class StoragePoolContext:
    """A storage pool: the admins of the hardware pools using it see it, and what their
    role there allows they may do to it."""

    def __init__(self, storage_pool: StoragePool) -> None:
        self.storage_pool = storage_pool


class StorageVolumeContext(StoragePoolContext):
    """A volume of a storage pool, governed as its pool is."""

    def __init__(self, storage_pool: StoragePool, volume: StorageVolume) -> None:
        super().__init__(storage_pool)
        self.volume = volume


def storage_server_factory(request: FcRequest) -> StorageServerContext:
    """Load ``{server_id}`` or answer 404."""
    server = _load(request, StorageServer, "server_id")
    return StorageServerContext(server)


def storage_pool_factory(request: FcRequest) -> StoragePoolContext:
    """Load ``{storage_pool_id}`` or answer 404."""
    pool = _load(request, StoragePool, "storage_pool_id")
    return StoragePoolContext(pool)


def storage_volume_factory(request: FcRequest) -> StorageVolumeContext:
    """Load ``{volume_id}`` of ``{storage_pool_id}`` (another pool's volume is a 404)."""
    pool = storage_pool_factory(request).storage_pool
    volume = _load(request, StorageVolume, "volume_id")
    if volume.storage_pool_id != pool.id:
        raise HTTPNotFound()
    return StorageVolumeContext(pool, volume)


class VmRequestContext:
    """A VM request, governed by its VM pool: only its requester and those who may decide
    it (create VMs in that pool) see it."""

    def __init__(self, vm_request: VmRequest) -> None:
        self.vm_request = vm_request

    @property
    def pool_path(self) -> str:
        return str(self.vm_request.pool.path)


def vm_request_factory(request: FcRequest) -> VmRequestContext:
    """Load ``{request_id}`` or answer 404."""
    vm_request = _load(request, VmRequest, "request_id")
    return VmRequestContext(vm_request)
