"""Every URL of FedoraCloud, with the factory (fedoracloud.resources) that loads what it names."""

from __future__ import annotations

from typing import Any

from .resources import (
    ReplicationContext,
    SiteContext,
    access_request_factory,
    grant_factory,
    host_factory,
    ip_pool_factory,
    network_factory,
    pool_factory,
    smart_pool_factory,
    storage_pool_factory,
    storage_server_factory,
    storage_volume_factory,
    task_factory,
    token_factory,
    user_factory,
    vm_factory,
    vm_request_factory,
)


def add_task_routes(config: Any) -> None:
    """The task pages and API."""
    config.add_route("tasks", "/tasks")
    config.add_route("task", "/tasks/{task_id}", factory=task_factory)
    config.add_route("task_cancel", "/tasks/{task_id}/cancel", factory=task_factory)
    config.add_route("api_tasks", "/api/v1/tasks")
    config.add_route("api_task", "/api/v1/tasks/{task_id}", factory=task_factory)
    config.add_route("api_task_cancel", "/api/v1/tasks/{task_id}/cancel", factory=task_factory)


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


def add_graph_routes(config: Any) -> None:
    """One JSON graph of a host or a VM (read from collectd's RRD files)."""
    config.add_route(
        "api_host_graph", "/api/v1/hosts/{host_id}/graphs/{graph}", factory=host_factory
    )
    config.add_route("api_vm_graph", "/api/v1/vms/{vm_id}/graphs/{graph}", factory=vm_factory)


def add_storage_routes(config: Any) -> None:
    """The storage pages and API."""
    config.add_route("storage", "/storage")
    config.add_route("storage_replication", "/storage/replication", factory=ReplicationContext)
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


def add_vm_request_routes(config: Any) -> None:
    """Profiles (the Cobbler cache and the per-pool choice) and VM requests: pages and API."""
    config.add_route("cobbler_profiles", "/profiles")
    config.add_route("cobbler_refresh", "/profiles/refresh")
    config.add_route("pool_cobbler_profiles", "/pools/{pool_id}/profiles", factory=pool_factory)
    config.add_route("api_cobbler_profiles", "/api/v1/profiles")
    config.add_route("api_cobbler_refresh", "/api/v1/profiles/refresh")
    config.add_route(
        "api_pool_cobbler_profiles", "/api/v1/pools/{pool_id}/profiles", factory=pool_factory
    )
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
