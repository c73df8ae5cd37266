"""``/api/v1/networks`` and ``/api/v1/ip-pools``: networks, their IP pools and who holds
each address.  Anyone let in may read them (an address's VM only if they may view the VM's
pool); changing them needs ``site_settings``."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import IpAddress, IpPool, Network
from ...permissions import Permission
from ...request import FcRequest
from ...resources import NetworkContext
from ...services import InvalidInput, NotFound
from ...services.networks import INetworkService, NetworkInput, Usage
from .. import Page, page_number
from ..networks import holder, network_query, network_values
from . import int_field, json_body, str_field

IP_POOL_FIELDS = frozenset({"network", "name", "first_address", "last_address"})


def ip_pool_json(pool: IpPool, usage: Usage, request: FcRequest) -> dict[str, Any]:
    """An IP pool as the API shows it."""
    return {
        "id": pool.id,
        "name": pool.name,
        "network": pool.network_id,
        "first_address": pool.first_address,
        "last_address": pool.last_address,
        "allocated": usage.allocated,
        "total": usage.total,
        "url": request.route_url("api_ip_pool", ip_pool_id=pool.id),
        "addresses_url": request.route_url("api_ip_pool_addresses", ip_pool_id=pool.id),
    }


def network_json(network: Network, usage: Usage, request: FcRequest) -> dict[str, Any]:
    """A network as the API shows it."""
    return {
        "id": network.id,
        "name": network.name,
        "kind": network.kind,
        "vlan_id": network.vlan_id,
        "usage": network.usage,
        "bridge": network.bridge,
        "interface": network.interface,
        "cidr": network.cidr,
        "gateway": network.gateway,
        "description": network.description,
        "hardware_pools": [p.id for p in network.hardware_pools],
        "ip_pools": [p.id for p in network.ip_pools],
        "allocated": usage.allocated,
        "total": usage.total,
        "url": request.route_url("api_network", network_id=network.id),
    }


def _network(network: Network, request: FcRequest) -> dict[str, Any]:
    usage = request.find_service(INetworkService).usage_of_networks([network])[network.id]
    return network_json(network, usage, request)


def _ip_pool(pool: IpPool, request: FcRequest) -> dict[str, Any]:
    usage = request.find_service(INetworkService).usage_of_pools([pool])[pool.id]
    return ip_pool_json(pool, usage, request)


@view_config(
    route_name="api_networks", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_networks(request: FcRequest) -> dict[str, Any]:
    """Networks; same filters and sorting as the network list page."""
    query = network_query(request)
    service = request.find_service(INetworkService)
    networks, total = service.search(query)
    usage = service.usage_of_networks(networks)
    page = Page(networks, total, query.page, query.per_page, request)
    return {
        "items": [network_json(n, usage[n.id], request) for n in networks],
        "next": page.next_url,
        "total": total,
    }


@view_config(
    route_name="api_networks",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def create_network(request: FcRequest) -> dict[str, Any]:
    """Create a network."""
    body = json_body(request, NetworkInput.FIELDS)
    network = request.find_service(INetworkService).create(NetworkInput.parse(body))
    request.response.status = 201
    return _network(network, request)


@view_config(
    route_name="api_network", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_network(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """One network."""
    return _network(context.network, request)


@view_config(
    route_name="api_network",
    request_method="PATCH",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def update_network(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """Change some of a network's fields; the others keep their values."""
    body = json_body(request, NetworkInput.FIELDS)
    values: dict[str, Any] = {**network_values(context.network), **body}
    if body.get("kind") == "physical" and "vlan_id" not in body:
        values["vlan_id"] = None
    request.find_service(INetworkService).update(context.network, NetworkInput.parse(values))
    return _network(context.network, request)


@view_config(
    route_name="api_network",
    request_method="DELETE",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def delete_network(context: NetworkContext, request: FcRequest) -> Any:
    """Delete a network and its IP pools (refused while an address is allocated)."""
    request.find_service(INetworkService).delete(context.network)
    request.response.status = 204
    return request.response


@view_config(
    route_name="api_ip_pools", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_ip_pools(request: FcRequest) -> dict[str, Any]:
    """Every IP pool (``?network=ID``: one network's)."""
    service = request.find_service(INetworkService)
    raw = request.GET.get("network", "")
    network = None
    if raw:
        if not (raw.isdecimal() and len(raw) < 18):
            raise InvalidInput("network must be a network id", {"field": "network"})
        network = service.get(int(raw))
    pools = service.pools(network)
    usage = service.usage_of_pools(pools)
    return {
        "items": [ip_pool_json(p, usage[p.id], request) for p in pools],
        "next": None,
        "total": len(pools),
    }


@view_config(
    route_name="api_ip_pools",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def create_ip_pool(request: FcRequest) -> dict[str, Any]:
    """Add an IP pool to a network: ``{"network", "name", "first_address", "last_address"}``."""
    body = json_body(request, IP_POOL_FIELDS)
    service = request.find_service(INetworkService)
    network_id = int_field(body, "network")
    assert network_id is not None
    try:
        network = service.get(network_id)
    except NotFound as exc:
        raise InvalidInput(exc.message, {"field": "network"}) from None
    pool = service.create_pool(
        network, body.get("name"), body.get("first_address"), body.get("last_address")
    )
    request.response.status = 201
    return _ip_pool(pool, request)


@view_config(
    route_name="api_ip_pool", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_ip_pool(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """One IP pool."""
    return _ip_pool(context.ip_pool, request)


@view_config(
    route_name="api_ip_pool",
    request_method="PATCH",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def update_ip_pool(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """Rename an IP pool or change its range."""
    body = json_body(request, IP_POOL_FIELDS - {"network"})
    pool = context.ip_pool
    request.find_service(INetworkService).update_pool(
        pool,
        str_field(body, "name", required=False) or pool.name,
        str_field(body, "first_address", required=False) or pool.first_address,
        str_field(body, "last_address", required=False) or pool.last_address,
    )
    return _ip_pool(pool, request)


@view_config(
    route_name="api_ip_pool",
    request_method="DELETE",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def delete_ip_pool(context: NetworkContext, request: FcRequest) -> Any:
    """Delete an IP pool (refused while an address is allocated)."""
    request.find_service(INetworkService).delete_pool(context.ip_pool)
    request.response.status = 204
    return request.response


def address_json(address: IpAddress, held: dict[str, Any] | None) -> dict[str, Any]:
    """An address and who holds it (``holder`` is null when the caller may not see it)."""
    data: dict[str, Any] = {
        "address": address.address,
        "state": "free" if held is None else "allocated",
        "since": held["since"] if held else None,
        "holder": None,
    }
    if held is not None and held["visible"]:
        data["holder"] = {
            "vm": held["vm"].id,
            "vm_name": held["vm"].name,
            "nic": held["nic"],
            "mac": held["mac"],
        }
    return data


@view_config(
    route_name="api_ip_pool_addresses",
    request_method="GET",
    renderer="json",
    permission=Permission.VIEW,
)
def list_addresses(context: NetworkContext, request: FcRequest) -> dict[str, Any]:
    """A pool's addresses in order (``?state=free|allocated``, ``?page=N``)."""
    number = page_number(request)
    per_page = request.fc_settings.page_size
    addresses, total = request.find_service(INetworkService).addresses(
        context.ip_pool, request.GET.get("state", ""), number, per_page
    )
    cache: dict[int, bool] = {}
    page = Page(addresses, total, number, per_page, request)
    return {
        "items": [address_json(a, holder(request, a, cache)) for a in addresses],
        "next": page.next_url,
        "total": total,
    }
