"""Every URL of FedoraCloud, with the context factory that loads what the URL names."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound

from .models import (
    AccessRequest,
    ApiToken,
    Host,
    Pool,
    PoolKind,
    RoleGrant,
    Task,
    User,
    Vm,
)


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


# -- tasks ----------------------------------------------------------------------------------


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
    from .services.tasks import TaskService

    task = request.dbsession.get(Task, _id(request, "task_id"))
    if task is None:
        raise HTTPNotFound()
    identity = request.identity
    owned = identity is not None and task.user_id == identity.user.id
    pool = TaskService(request.dbsession).target_pool(task)
    if pool is None and not owned and not (identity is not None and identity.is_super_admin):
        raise HTTPNotFound()
    return TaskContext(task, pool, owned)


def add_task_routes(config: Any) -> None:
    """The task pages and API."""
    config.add_route("tasks", "/tasks")
    config.add_route("task", "/tasks/{task_id}", factory=task_factory)
    config.add_route("task_cancel", "/tasks/{task_id}/cancel", factory=task_factory)
    config.add_route("api_tasks", "/api/v1/tasks")
    config.add_route("api_task", "/api/v1/tasks/{task_id}", factory=task_factory)
    config.add_route("api_task_cancel", "/api/v1/tasks/{task_id}/cancel", factory=task_factory)


# -- networks and IP pools ---------------------------------------------------------


class NetworkContext(SiteContext):
    """A network or an IP pool: anyone let in may view it; changing it is a site setting."""

    def __init__(self, network: Any, ip_pool: Any = None) -> None:
        super().__init__()
        self.network = network
        self.ip_pool = ip_pool


def network_factory(request: Any) -> NetworkContext:
    """Load ``{network_id}`` or answer 404."""
    from .models import Network

    network = request.dbsession.get(Network, _id(request, "network_id"))
    if network is None:
        raise HTTPNotFound()
    return NetworkContext(network)


def ip_pool_factory(request: Any) -> NetworkContext:
    """Load ``{ip_pool_id}`` (and its network) or answer 404."""
    from .models import IpPool

    ip_pool = request.dbsession.get(IpPool, _id(request, "ip_pool_id"))
    if ip_pool is None:
        raise HTTPNotFound()
    return NetworkContext(ip_pool.network, ip_pool)


def add_network_routes(config: Any) -> None:
    """The network pages and API."""
    config.add_route("networks", "/networks")
    config.add_route("network_new", "/networks/new")
    config.add_route("network", "/networks/{network_id}", factory=network_factory)
    config.add_route("network_edit", "/networks/{network_id}/edit", factory=network_factory)
    config.add_route("network_delete", "/networks/{network_id}/delete", factory=network_factory)
    config.add_route("ip_pool_create", "/networks/{network_id}/ip-pools", factory=network_factory)
    config.add_route("ip_pool", "/ip-pools/{ip_pool_id}", factory=ip_pool_factory)
    config.add_route("ip_pool_edit", "/ip-pools/{ip_pool_id}/edit", factory=ip_pool_factory)
    config.add_route("ip_pool_delete", "/ip-pools/{ip_pool_id}/delete", factory=ip_pool_factory)
    config.add_route("api_networks", "/api/v1/networks")
    config.add_route("api_network", "/api/v1/networks/{network_id}", factory=network_factory)
    config.add_route("api_ip_pools", "/api/v1/ip-pools")
    config.add_route("api_ip_pool", "/api/v1/ip-pools/{ip_pool_id}", factory=ip_pool_factory)
    config.add_route(
        "api_ip_pool_addresses", "/api/v1/ip-pools/{ip_pool_id}/addresses", factory=ip_pool_factory
    )


# -- end of networks -------------------------------------------------------------------------


# -- graphs ---------------------------------------------------------------------------------


def add_graph_routes(config: Any) -> None:
    """One JSON graph of a host or a VM (read from collectd's RRD files)."""
    config.add_route(
        "api_host_graph", "/api/v1/hosts/{host_id}/graphs/{graph}", factory=host_factory
    )
    config.add_route("api_vm_graph", "/api/v1/vms/{vm_id}/graphs/{graph}", factory=vm_factory)


# -- end of graphs ---------------------------------------------------------------------------


# -- storage -----------------------------------------------------------------------


class StorageServerContext(SiteContext):
    """A storage server: super admins only (anyone else gets a 404)."""

    def __init__(self, server: Any) -> None:
        super().__init__()
        self.server = server


class StoragePoolContext:
    """A storage pool, governed by a hardware pool using it that the user administers
    (super admins see every one; an unused pool is site-level)."""

    def __init__(self, storage_pool: Any, hardware_pool: Pool | None) -> None:
        self.storage_pool = storage_pool
        self.hardware_pool = hardware_pool

    @property
    def pool_path(self) -> str | None:
        return self.hardware_pool.path if self.hardware_pool is not None else None


def storage_server_factory(request: Any) -> StorageServerContext:
    """Load ``{server_id}``; 404 unless a super admin asks."""
    from .models import StorageServer

    server = request.dbsession.get(StorageServer, _id(request, "server_id"))
    identity = request.identity
    if server is None or identity is None or not identity.is_super_admin:
        raise HTTPNotFound()
    return StorageServerContext(server)


def storage_pool_factory(request: Any) -> StoragePoolContext:
    """Load ``{storage_pool_id}``; 404 unless the user administers a hardware pool using it
    (or is a super admin)."""
    from .models import StoragePool
    from .services.storage import administered_hardware_pool

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
    from .models import StorageVolume

    context = storage_pool_factory(request)
    volume = request.dbsession.get(StorageVolume, _id(request, "volume_id"))
    if volume is None or volume.storage_pool_id != context.storage_pool.id:
        raise HTTPNotFound()
    context.volume = volume  # type: ignore[attr-defined]
    return context


def add_storage_routes(config: Any) -> None:
    """The storage pages and API."""
    config.add_route("storage", "/storage")
    config.add_route("storage_replication", "/storage/replication")
    config.add_route("storage_server_new", "/storage/servers")
    config.add_route(
        "storage_server", "/storage/servers/{server_id}", factory=storage_server_factory
    )
    config.add_route(
        "storage_server_delete",
        "/storage/servers/{server_id}/delete",
        factory=storage_server_factory,
    )
    config.add_route(
        "storage_server_check",
        "/storage/servers/{server_id}/check",
        factory=storage_server_factory,
    )
    config.add_route("storage_pool_new", "/storage/pools")
    config.add_route(
        "storage_pool", "/storage/pools/{storage_pool_id}", factory=storage_pool_factory
    )
    config.add_route(
        "storage_pool_action",
        "/storage/pools/{storage_pool_id}/{action}",
        factory=storage_pool_factory,
    )
    config.add_route("api_storage_servers", "/api/v1/storage-servers")
    config.add_route(
        "api_storage_server", "/api/v1/storage-servers/{server_id}", factory=storage_server_factory
    )
    config.add_route("api_storage_replication", "/api/v1/storage-replication")
    config.add_route("api_storage_pools", "/api/v1/storage-pools")
    config.add_route(
        "api_storage_pool", "/api/v1/storage-pools/{storage_pool_id}", factory=storage_pool_factory
    )
    config.add_route(
        "api_storage_pool_refresh",
        "/api/v1/storage-pools/{storage_pool_id}/refresh",
        factory=storage_pool_factory,
    )
    config.add_route(
        "api_storage_pool_define",
        "/api/v1/storage-pools/{storage_pool_id}/define",
        factory=storage_pool_factory,
    )
    config.add_route(
        "api_storage_volumes",
        "/api/v1/storage-pools/{storage_pool_id}/volumes",
        factory=storage_pool_factory,
    )
    config.add_route(
        "api_storage_volume",
        "/api/v1/storage-pools/{storage_pool_id}/volumes/{volume_id}",
        factory=storage_volume_factory,
    )


# -- end of storage --------------------------------------------------------------------------


# -- Cobbler profiles and VM requests ---------------------------------------------


class VmRequestContext:
    """A VM request, governed by its VM pool; only its requester and those who may create
    VMs in that pool (its admins) see it, anyone else gets a 404."""

    def __init__(self, vm_request: Any) -> None:
        self.vm_request = vm_request

    @property
    def pool_path(self) -> str:
        return str(self.vm_request.pool.path)


def vm_request_factory(request: Any) -> VmRequestContext:
    """Load ``{request_id}``; 404 unless it is the user's own or they administer its pool."""
    from .models import VmRequest
    from .permissions import Permission

    vm_request = request.dbsession.get(VmRequest, _id(request, "request_id"))
    identity = request.identity
    if vm_request is None or identity is None:
        raise HTTPNotFound()
    if vm_request.user_id != identity.user.id and not request.has_permission(
        Permission.VM_CREATE, PoolContext(vm_request.pool)
    ):
        raise HTTPNotFound()
    return VmRequestContext(vm_request)


def add_vm_request_routes(config: Any) -> None:
    """Profiles (the Cobbler cache and the per-pool choice) and VM requests: pages and API."""
    config.add_route("profiles", "/profiles")
    config.add_route("profiles_refresh", "/profiles/refresh")
    config.add_route("pool_profiles", "/pools/{pool_id}/profiles", factory=pool_factory)
    config.add_route("api_profiles", "/api/v1/profiles")
    config.add_route("api_profiles_refresh", "/api/v1/profiles/refresh")
    config.add_route("api_pool_profiles", "/api/v1/pools/{pool_id}/profiles", factory=pool_factory)
    config.add_route("vm_requests", "/vm-requests")
    config.add_route("vm_request_new", "/pools/{pool_id}/vm-requests", factory=pool_factory)
    config.add_route("vm_request", "/vm-requests/{request_id}", factory=vm_request_factory)
    config.add_route(
        "vm_request_action", "/vm-requests/{request_id}/{action}", factory=vm_request_factory
    )
    config.add_route("api_vm_requests", "/api/v1/vm-requests")
    config.add_route(
        "api_vm_request", "/api/v1/vm-requests/{request_id}", factory=vm_request_factory
    )
    for action in ("approve", "deny", "retry"):
        config.add_route(
            f"api_vm_request_{action}",
            f"/api/v1/vm-requests/{{request_id}}/{action}",
            factory=vm_request_factory,
        )


# -- end of Cobbler profiles and VM requests ------------------------------------------------


def includeme(config: Any) -> None:
    """Add every route."""
    config.add_static_view("static", "fedoracloud:static/", cache_max_age=3600)
    config.set_root_factory(SiteContext)
    add_task_routes(config)
    add_storage_routes(config)
    add_network_routes(config)
    add_graph_routes(config)
    add_vm_request_routes(config)

    config.add_route("home", "/")
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("oidc_callback", "/oidc/callback")
    config.add_route("access", "/access")
    config.add_route("approvals", "/approvals")
    config.add_route(
        "access_approve", "/approvals/access/{request_id}/approve", factory=access_request_factory
    )
    config.add_route(
        "access_deny", "/approvals/access/{request_id}/deny", factory=access_request_factory
    )
    config.add_route("users", "/users")
    config.add_route("user_access", "/users/{user_id}/access", factory=user_factory)
    config.add_route("audit", "/audit")
    config.add_route("account", "/account")
    config.add_route("tokens", "/tokens")
    config.add_route("token_revoke", "/tokens/{token_id}/revoke", factory=token_factory)
    config.add_route("smart_pools", "/smart")
    config.add_route("smart_pool_bookmark", "/smart/bookmark")  # the smart pool is a field
    config.add_route("smart_pool", "/smart/{smart_id}", factory=smart_pool_factory)
    config.add_route("smart_pool_rename", "/smart/{smart_id}/rename", factory=smart_pool_factory)
    config.add_route("smart_pool_delete", "/smart/{smart_id}/delete", factory=smart_pool_factory)
    config.add_route("smart_pool_add", "/smart/{smart_id}/items", factory=smart_pool_factory)
    config.add_route(
        "smart_pool_remove", "/smart/{smart_id}/items/remove", factory=smart_pool_factory
    )

    config.add_route("pools", "/pools")
    config.add_route("pool", "/pools/{pool_id}", factory=pool_factory)
    config.add_route("pool_create", "/pools/{pool_id}/children", factory=pool_factory)
    config.add_route("pool_rename", "/pools/{pool_id}/rename", factory=pool_factory)
    config.add_route("pool_move", "/pools/{pool_id}/move", factory=pool_factory)
    config.add_route("pool_delete", "/pools/{pool_id}/delete", factory=pool_factory)
    config.add_route("pool_permissions", "/pools/{pool_id}/permissions", factory=pool_factory)
    config.add_route(
        "grant_revoke", "/pools/{pool_id}/permissions/{grant_id}/revoke", factory=grant_factory
    )
    config.add_route("pool_quota", "/pools/{pool_id}/quota", factory=pool_factory)

    config.add_route("hosts", "/hosts")
    config.add_route("host_add", "/hosts/add")  # before /hosts/{host_id}
    config.add_route("host", "/hosts/{host_id}", factory=host_factory)
    config.add_route("host_move", "/hosts/{host_id}/move", factory=host_factory)
    # node enrollment and host approval
    config.add_route("host_approve", "/hosts/{host_id}/approve", factory=host_factory)
    config.add_route("host_reject", "/hosts/{host_id}/reject", factory=host_factory)
    config.add_route("api_ca_pem", "/api/v1/ca.pem")
    config.add_route("api_ca_crl", "/api/v1/ca.crl")
    config.add_route("api_enroll", "/api/v1/enroll")
    config.add_route("api_enrollment", "/api/v1/enroll/{enrollment_id}")
    config.add_route("api_enrollment_tokens", "/api/v1/enrollment-tokens")
    config.add_route("api_host_approve", "/api/v1/hosts/{host_id}/approve", factory=host_factory)
    config.add_route("api_host_reject", "/api/v1/hosts/{host_id}/reject", factory=host_factory)

    config.add_route("vms", "/vms")
    # VMs: one VM's page, its action buttons, the create form, the API
    config.add_route("vm", "/vms/{vm_id}", factory=vm_factory)
    # the console page and its one-time token (before /vms/{vm_id}/{action} matches them)
    config.add_route("vm_console", "/vms/{vm_id}/console", factory=vm_factory)
    config.add_route("api_vm_console", "/api/v1/vms/{vm_id}/console", factory=vm_factory)
    # what an open VM page polls to follow the VM (before /vms/{vm_id}/{action} too)
    config.add_route("vm_live", "/vms/{vm_id}/live", factory=vm_factory)
    config.add_route("vm_action", "/vms/{vm_id}/{action}", factory=vm_factory)
    config.add_route("vm_create", "/pools/{pool_id}/vms", factory=pool_factory)
    config.add_route("api_vm", "/api/v1/vms/{vm_id}", factory=vm_factory)
    config.add_route("api_vm_action", "/api/v1/vms/{vm_id}/{action}", factory=vm_factory)

    config.add_route("api_pools", "/api/v1/pools")
    config.add_route("api_pool", "/api/v1/pools/{pool_id}", factory=pool_factory)
    config.add_route("api_hosts", "/api/v1/hosts")
    config.add_route("api_host", "/api/v1/hosts/{host_id}", factory=host_factory)
    config.add_route("api_pool_grants", "/api/v1/pools/{pool_id}/grants", factory=pool_factory)
    config.add_route(
        "api_pool_grant", "/api/v1/pools/{pool_id}/grants/{grant_id}", factory=grant_factory
    )
    config.add_route("api_pool_quota", "/api/v1/pools/{pool_id}/quota", factory=pool_factory)
    config.add_route("api_users", "/api/v1/users")
    config.add_route("api_groups", "/api/v1/groups")
    config.add_route("api_tokens", "/api/v1/tokens")
    config.add_route("api_token", "/api/v1/tokens/{token_id}", factory=token_factory)
    config.add_route("api_audit", "/api/v1/audit")
    config.add_route("api_access_requests", "/api/v1/access-requests")
    config.add_route("api_vms", "/api/v1/vms")
    # the API's OpenAPI document (fedoracloud/openapi/), public
    config.add_route("api_openapi", "/api/v1/openapi.json")

    # Puppet's ENC over HTTP (a bearer token, no login)
    config.add_route("puppet_enc", "/puppet/enc/{certname}")
