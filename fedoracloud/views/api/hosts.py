"""``/api/v1/hosts``: list and read hosts, move one to another hardware pool."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import Host
from ...permissions import Permission
from ...request import FcRequest, UserRequest
from ...resources import HostContext
from ...services.hosts import IHostService
from .. import Page, authorized_pool
from ..hosts import host_query
from . import int_field, json_body


def host_json(host: Host, request: FcRequest) -> dict[str, Any]:
    """A host as the API shows it."""
    return {
        "id": host.id,
        "uuid": host.uuid,
        "hostname": host.hostname,
        "state": host.state,
        "pool": host.pool_id,
        "libvirt_uri": host.libvirt_uri,
        "arch": host.arch,
        "hypervisor": host.hypervisor,
        "hypervisor_version": host.hypervisor_version,
        "libvirt_version": host.libvirt_version,
        "memory_mib": host.memory_mib,
        "cpus": host.cpu_count,
        "cpu_mhz": host.cpu_mhz,
        "load_average": host.load_average,
        "last_seen_at": host.last_seen_at,
        "nics": [
            {
                "name": n.name,
                "mac": n.mac,
                "ip_address": n.ip_address,
                "prefix_length": n.prefix_length,
                "speed_mbps": n.speed_mbps,
            }
            for n in host.nics
        ],
        "url": request.route_url("api_host", host_id=host.id),
    }


def host_detail_json(host: Host, request: FcRequest) -> dict[str, Any]:
    """A host with its CPU rows."""
    data = host_json(host, request)
    data["cpu_list"] = [
        {
            "index": c.cpu_index,
            "socket": c.socket,
            "core": c.core,
            "thread": c.thread,
            "vendor": c.vendor,
            "model": c.model,
            "speed_mhz": c.speed_mhz,
        }
        for c in host.cpus
    ]
    return data


@view_config(
    route_name="api_hosts", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_hosts(request: UserRequest) -> dict[str, Any]:
    """Hosts in the pools the caller may view; same filters as the host list page."""
    query = host_query(request)
    hosts, total = request.find_service(IHostService).search(
        query, request.identity.visible_pools()
    )
    page = Page(hosts, total, query.page, query.per_page, request)
    return {"items": [host_json(h, request) for h in hosts], "next": page.next_url, "total": total}


@view_config(
    route_name="api_host", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_host(context: HostContext, request: FcRequest) -> dict[str, Any]:
    """One host."""
    return host_detail_json(context.host, request)


@view_config(
    route_name="api_host", request_method="PATCH", renderer="json", permission=Permission.HOST_MOVE
)
def update_host(context: HostContext, request: FcRequest) -> dict[str, Any]:
    """Move a host: ``{"pool": HARDWARE_POOL_ID}``."""
    body = json_body(request, frozenset({"pool"}))
    target = authorized_pool(request, int_field(body, "pool"), Permission.HOST_MOVE)
    request.find_service(IHostService).move(context.host, target)
    return host_detail_json(context.host, request)
