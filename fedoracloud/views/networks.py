"""Pages of networks and IP pools: the list, a network with its pools, a pool with who holds
each address, and the super admins' forms."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import IpAddress, Network, Pool, PoolKind
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import NetworkContext, PoolContext
from ..services import ServiceError
from ..services.networks import (
    KINDS,
    USAGES,
    INetworkService,
    NetworkInput,
    NetworkQuery,
)
from ..services.pools import IPoolService
from . import Page, page_number, refused

#: the form's one-value fields of a network (its hardware pools are a list of checkboxes)
NETWORK_FIELDS = tuple(sorted(NetworkInput.FIELDS - {"hardware_pools"}))


def network_query(request: FcRequest) -> NetworkQuery:
    """The network list's filters from the query string."""
    sort = request.GET.get("sort", "name")
    return NetworkQuery(
        q=request.GET.get("q", "").strip(),
        usage=request.GET.get("usage", ""),
        kind=request.GET.get("kind", ""),
        sort=sort[1:] if sort.startswith("-") else sort,
        descending=sort.startswith("-"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
    )


def holder(request: FcRequest, address: IpAddress, cache: dict[int, bool]) -> dict[str, Any] | None:
    """Who holds an address: its VM, NIC, MAC and since when, for someone who may view the
    VM's pool; only that it is allocated for anyone else; None if it is free."""
    nic = address.nic
    if address.vm_nic_id is None or nic is None:
        return None
    vm = nic.vm
    if vm.pool_id not in cache:
        cache[vm.pool_id] = bool(request.has_permission(Permission.VIEW, PoolContext(vm.pool)))
    if not cache[vm.pool_id]:
        return {"visible": False, "since": address.allocated_at}
    return {
        "visible": True,
        "vm": vm,
        "nic": nic.id,
        "mac": nic.mac,
        "since": address.allocated_at,
    }


def hardware_pools(request: UserRequest) -> list[Pool]:
    """The hardware pools a network can be attached to, in tree order."""
    pools = request.find_service(IPoolService)
    visible = request.identity.visible_pools()
    return [p for p in pools.subtree(pools.root(), visible) if p.kind == PoolKind.HARDWARE]


def _form_values(request: FcRequest) -> dict[str, Any]:
    values: dict[str, Any] = {k: request.POST.get(k, "") for k in NETWORK_FIELDS}
    values["hardware_pools"] = request.POST.getall("hardware_pools")
    return values


def network_values(network: Network) -> dict[str, Any]:
    return {
        "name": network.name,
        "kind": network.kind,
        "vlan_id": "" if network.vlan_id is None else str(network.vlan_id),
        "usage": network.usage,
        "bridge": network.bridge,
        "interface": network.interface,
        "cidr": network.cidr,
        "gateway": network.gateway or "",
        "description": network.description,
        "hardware_pools": [str(p.id) for p in network.hardware_pools],
    }


def _form(
    request: UserRequest, values: dict[str, Any], network: Network | None = None
) -> dict[str, Any]:
    return {
        "values": values,
        "network": network,
        "kinds": KINDS,
        "usages": USAGES,
        "hardware_pools": hardware_pools(request),
    }


@view_config(route_name="networks", renderer="networks/list.jinja2", permission=Permission.VIEW)
def network_list(request: FcRequest) -> dict[str, Any]:
    """Every network, with how many of its addresses are allocated."""
    query = network_query(request)
    service = request.find_service(INetworkService)
    networks, total = service.search(query)
    return {
        "page": Page(networks, total, query.page, query.per_page, request),
        "query": query,
        "usage": service.usage_of_networks(networks),
        "usages": USAGES,
        "kinds": KINDS,
        "can_manage": request.has_permission(Permission.SITE_SETTINGS),
    }


@view_config(
    route_name="network_new",
    request_method="GET",
    renderer="networks/form.jinja2",
    permission=Permission.SITE_SETTINGS,
)
def network_new(request: UserRequest) -> dict[str, Any]:
    """The form for a new network."""
    return _form(request, {"kind": "physical", "usage": "guest", "interface": "eth0"})


@view_config(
    route_name="network_new",
    request_method="POST",
    renderer="networks/form.jinja2",
    permission=Permission.SITE_SETTINGS,
)
def network_create(request: UserRequest) -> Any:
    """Create a network; a refusal shows the form again with the reason."""
    values = _form_values(request)
    try:
        network = request.find_service(INetworkService).create(NetworkInput.parse(values))
    except ServiceError as exc:
        refused(request, exc)
        request.response.status = exc.status
        return _form(request, values)
    request.session.flash(f"Network {network.name} created.", "success")
    return HTTPSeeOther(request.route_url("network", network_id=network.id))


@view_config(route_name="network", renderer="networks/show.jinja2", permission=Permission.VIEW)
def network_page(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """A network: its settings, the hardware pools that carry it, its IP pools."""
    service = request.find_service(INetworkService)
    network = context.network
    return {
        "network": network,
        "ip_pools": network.ip_pools,
        "usage": service.usage_of_pools(network.ip_pools),
        "hardware_pools": [
            p
            for p in network.hardware_pools
            if request.has_permission(Permission.VIEW, PoolContext(p))
        ],
        "can_manage": request.has_permission(Permission.SITE_SETTINGS, context),
    }


@view_config(
    route_name="network_edit",
    request_method="GET",
    renderer="networks/form.jinja2",
    permission=Permission.SITE_SETTINGS,
)
def network_edit_form(context: NetworkContext, request: UserRequest) -> dict[str, Any]:
    """The form that changes a network."""
    return _form(request, network_values(context.network), context.network)


@view_config(
    route_name="network_edit",
    request_method="POST",
    renderer="networks/form.jinja2",
    permission=Permission.SITE_SETTINGS,
)
def network_edit(context: NetworkContext, request: UserRequest) -> Any:
    """Change a network; a refusal shows the form again with the reason."""
    values = _form_values(request)
    try:
        request.find_service(INetworkService).update(context.network, NetworkInput.parse(values))
    except ServiceError as exc:
        refused(request, exc)
        request.response.status = exc.status
        return _form(request, values, context.network)
    request.session.flash(f"Network {context.network.name} saved.", "success")
    return HTTPSeeOther(request.route_url("network", network_id=context.network.id))


@view_config(
    route_name="network_delete", request_method="POST", permission=Permission.SITE_SETTINGS
)
def network_delete(context: NetworkContext, request: FcRequest) -> Any:
    """Delete a network (refused while any of its addresses is allocated)."""
    name = context.network.name
    try:
        request.find_service(INetworkService).delete(context.network)
    except ServiceError as exc:
        refused(request, exc)
        return HTTPSeeOther(request.route_url("network", network_id=context.network.id))
    request.session.flash(f"Network {name} deleted.", "success")
    return HTTPSeeOther(request.route_url("networks"))


@view_config(
    route_name="ip_pool_create", request_method="POST", permission=Permission.SITE_SETTINGS
)
def ip_pool_create(context: NetworkContext, request: FcRequest) -> Any:
    """Add an IP pool to a network."""
    post = request.POST
    try:
        pool = request.find_service(INetworkService).create_pool(
            context.network, post.get("name"), post.get("first_address"), post.get("last_address")
        )
    except ServiceError as exc:
        refused(request, exc)
        return HTTPSeeOther(request.route_url("network", network_id=context.network.id))
    request.session.flash(
        f"IP pool {pool.name} created: {pool.first_address} to {pool.last_address}.", "success"
    )
    return HTTPSeeOther(request.route_url("ip_pool", ip_pool_id=pool.id))


@view_config(route_name="ip_pool", renderer="networks/ip_pool.jinja2", permission=Permission.VIEW)
def ip_pool_page(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """An IP pool: each address, free or held by whom."""
    service = request.find_service(INetworkService)
    pool = context.ip_pool
    state = request.GET.get("state", "")
    number = page_number(request)
    per_page = request.fc_settings.page_size
    addresses, total = service.addresses(pool, state, number, per_page)
    cache: dict[int, bool] = {}
    return {
        "pool": pool,
        "network": context.network,
        "state": state,
        "usage": service.usage_of_pools([pool])[pool.id],
        "page": Page(addresses, total, number, per_page, request),
        "rows": [(a, holder(request, a, cache)) for a in addresses],
        "can_manage": request.has_permission(Permission.SITE_SETTINGS, context),
    }


@view_config(route_name="ip_pool_edit", request_method="POST", permission=Permission.SITE_SETTINGS)
def ip_pool_edit(context: NetworkContext, request: FcRequest) -> Any:
    """Rename an IP pool or change its range."""
    post = request.POST
    try:
        request.find_service(INetworkService).update_pool(
            context.ip_pool, post.get("name"), post.get("first_address"), post.get("last_address")
        )
        request.session.flash(f"IP pool {context.ip_pool.name} saved.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("ip_pool", ip_pool_id=context.ip_pool.id))


@view_config(
    route_name="ip_pool_delete", request_method="POST", permission=Permission.SITE_SETTINGS
)
def ip_pool_delete(context: NetworkContext, request: FcRequest) -> Any:
    """Delete an IP pool (refused while any of its addresses is allocated)."""
    name = context.ip_pool.name
    try:
        request.find_service(INetworkService).delete_pool(context.ip_pool)
    except ServiceError as exc:
        refused(request, exc)
        return HTTPSeeOther(request.route_url("ip_pool", ip_pool_id=context.ip_pool.id))
    request.session.flash(f"IP pool {name} deleted.", "success")
    return HTTPSeeOther(request.route_url("network", network_id=context.network.id))
