"""Pages of the pool tree: the tree with counts, a pool's page and its forms."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import Pool, PoolKind
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import PoolContext
from ..services import ServiceError
from ..services.hosts import HostQuery, IHostService
from ..services.pools import IPoolService
from ..services.vm_list import IVmListService, VmQuery
from . import authorized_pool, form_refused_page, refused


@view_config(route_name="home", permission=Permission.VIEW)
def home(request: FcRequest) -> Any:
    """The front page is the pool tree."""
    return HTTPSeeOther(request.route_url("pools"))


@view_config(route_name="pools", renderer="pools/tree.jinja2", permission=Permission.VIEW)
def pool_tree(request: UserRequest) -> dict[str, Any]:
    """Every pool the user may view, as a tree, with host and VM counts."""
    pools = request.find_service(IPoolService)
    return {"forest": pools.tree(request.identity.visible_pools())}


@view_config(route_name="pool", renderer="pools/show.jinja2", permission=Permission.VIEW)
def pool_page(context: PoolContext, request: UserRequest) -> dict[str, Any]:
    """A pool: its place in the tree, sub-pools, hosts and VMs."""
    pools = request.find_service(IPoolService)
    visible = request.identity.visible_pools()
    pool = context.pool
    hosts, host_total = request.find_service(IHostService).search(
        HostQuery(pool_id=pool.id, per_page=50), visible
    )
    vms, vm_total = pool_vms(request, pool, visible)
    return {
        "pool": pool,
        "ancestors": [
            p
            for p in pools.ancestors(pool)
            if request.has_permission(Permission.VIEW, PoolContext(p))
        ],
        "children": pools.children(pool, visible),
        "hosts": hosts,
        "host_total": host_total,
        "vms": vms,
        "vm_total": vm_total,
        "kinds": [k.value for k in PoolKind if k is not PoolKind.SMART],
        "can_create": request.has_permission(Permission.POOL_CREATE, context),
        "can_modify": request.has_permission(Permission.POOL_MODIFY, context),
        "parents": [
            p
            for p in pools.subtree(pools.root(), visible)
            if p.kind in (PoolKind.DIRECTORY, PoolKind.HARDWARE)
        ],
    }


def pool_vms(request: FcRequest, pool: Pool, visible: Any) -> tuple[list[Any], int]:
    """The first 50 visible VMs of a pool's subtree by name, with their hosts (two queries),
    and how many there are: the VM list filtered by the pool shows them all."""
    vms = request.find_service(IVmListService).search(
        VmQuery(pool_id=pool.id, per_page=50), visible
    )
    return vms.items, vms.total


def _back(request: FcRequest, context: PoolContext) -> HTTPSeeOther:
    return HTTPSeeOther(request.route_url("pool", pool_id=context.pool.id))


def target_pool(request: FcRequest, permission: Permission) -> Pool:
    """The pool a form names in ``parent`` or ``pool``, if the user may act there."""
    raw = request.POST.get("parent") or request.POST.get("pool") or ""
    return authorized_pool(
        request, int(raw) if raw.isdecimal() and len(raw) < 18 else None, permission
    )


@view_config(route_name="pool_create", request_method="POST", permission=Permission.POOL_CREATE)
def pool_create(context: PoolContext, request: FcRequest) -> Any:
    """Create a sub-pool from the pool page's form."""
    try:
        pool = request.find_service(IPoolService).create(
            request.POST.get("name", ""),
            request.POST.get("kind", ""),
            context.pool,
            request.POST.get("description", ""),
        )
    except ServiceError as exc:
        values = pool_page(context, request)
        return form_refused_page(request, exc, "pools/show.jinja2", values, "pool-create")
    request.session.flash(f"Pool {pool.name} created.", "success")
    return HTTPSeeOther(request.route_url("pool", pool_id=pool.id))


@view_config(route_name="pool_rename", request_method="POST", permission=Permission.POOL_MODIFY)
def pool_rename(context: PoolContext, request: FcRequest) -> Any:
    """Rename a pool."""
    try:
        request.find_service(IPoolService).rename(context.pool, request.POST.get("name", ""))
        request.session.flash(f"Pool renamed to {context.pool.name}.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return _back(request, context)


@view_config(route_name="pool_move", request_method="POST", permission=Permission.POOL_MODIFY)
def pool_move(context: PoolContext, request: FcRequest) -> Any:
    """Move a pool under another parent."""
    try:
        parent = target_pool(request, Permission.POOL_CREATE)
        request.find_service(IPoolService).move(context.pool, parent)
        request.session.flash(f"Pool {context.pool.name} moved into {parent.name}.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return _back(request, context)


@view_config(route_name="pool_delete", request_method="POST", permission=Permission.POOL_MODIFY)
def pool_delete(context: PoolContext, request: FcRequest) -> Any:
    """Delete an empty pool, then show its parent (or the tree, if the user cannot see it)."""
    parent = context.pool.parent
    try:
        request.find_service(IPoolService).delete(context.pool)
    except ServiceError as exc:
        refused(request, exc)
        return _back(request, context)
    request.session.flash(f"Pool {context.pool.name} deleted.", "success")
    if parent is not None and request.has_permission(Permission.VIEW, PoolContext(parent)):
        return HTTPSeeOther(request.route_url("pool", pool_id=parent.id))
    return HTTPSeeOther(request.route_url("pools"))
