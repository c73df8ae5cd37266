"""Pages of hosts: the list (sortable, filterable, paginated), a host's page, moving it."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import HostState, PoolKind
from ..permissions import Permission
from ..puppet.enc import node_files_for
from ..request import FcRequest, UserRequest
from ..resources import HostContext
from ..services import InvalidInput, ServiceError
from ..services.hosts import HostQuery, IHostService
from ..services.pools import IPoolService
from . import Page, authorized_pool, page_number, refused
from .pools import target_pool


def host_query(request: FcRequest) -> HostQuery:
    """The host list's filters from the query string; a ``pool`` the user cannot see is 404."""
    sort = request.GET.get("sort", "hostname")
    pool = request.GET.get("pool", "")
    if pool and not (pool.isdecimal() and len(pool) < 18):
        raise InvalidInput("pool must be a pool id (a positive integer)", {"field": "pool"})
    pool_id = authorized_pool(request, int(pool), Permission.VIEW).id if pool else None
    return HostQuery(
        q=request.GET.get("q", "").strip(),
        state=request.GET.get("state", ""),
        pool_id=pool_id,
        sort=sort[1:] if sort.startswith("-") else sort,
        descending=sort.startswith("-"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
    )


@view_config(route_name="hosts", renderer="hosts/list.jinja2", permission=Permission.VIEW)
def host_list(request: UserRequest) -> dict[str, Any]:
    """Hosts in the pools the user may view."""
    query = host_query(request)
    hosts, total = request.find_service(IHostService).search(
        query, request.identity.visible_pools()
    )
    return {
        "page": Page(hosts, total, query.page, query.per_page, request),
        "query": query,
        "states": [s.value for s in HostState],
    }


@view_config(route_name="host", renderer="hosts/show.jinja2", permission=Permission.VIEW)
def host_page(context: HostContext, request: UserRequest) -> dict[str, Any]:
    """A host: CPUs, NICs, memory, state, its VMs, and where it may move."""
    visible = request.identity.visible_pools()
    pools = request.find_service(IPoolService)
    can_move = request.has_permission(Permission.HOST_MOVE, context)
    # the rendered node configs hold the collectd signing password: host approvers only
    show_configs = request.has_permission(Permission.HOST_APPROVE, context)
    node_files, node_files_note = (
        node_files_for(request.fc_settings.puppet, context.host) if show_configs else ([], "")
    )
    return {
        "host": context.host,
        "pool_path": pools.name_path(context.host.pool),
        "vms": request.find_service(IHostService).vms_on(context.host, visible),
        "can_move": can_move,
        "show_configs": show_configs,
        "node_files": node_files,
        "node_files_note": node_files_note,
        "hardware_pools": [
            p for p in pools.subtree(pools.root(), visible) if p.kind == PoolKind.HARDWARE
        ]
        if can_move
        else [],
    }


@view_config(route_name="host_move", request_method="POST", permission=Permission.HOST_MOVE)
def host_move(context: HostContext, request: FcRequest) -> Any:
    """Move a host to another hardware pool."""
    try:
        target = target_pool(request, Permission.HOST_MOVE)
        request.find_service(IHostService).move(context.host, target)
        request.session.flash(f"{context.host.hostname} moved to {target.name}.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("host", host_id=context.host.id))
