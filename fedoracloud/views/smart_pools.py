"""Smart pools: each user's own bookmark collections of hosts, VMs and pools.

The list and the shortcut menu at the bottom left show the user's smart pools; a smart
pool's page shows the bookmarks its owner may still view.  Someone else's smart pool is a
404, and so is a bookmark of something the user may not view.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config

from ..models import Host, Pool, Vm
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import HostContext, OwnedContext, PoolContext, VmContext
from ..services import InvalidInput, ServiceError
from ..services.smart_pools import ITEM_KINDS, ISmartPoolService
from . import safe_target
from .tokens import form_refused

#: what to check VIEW on, and what to call it, for each kind of bookmark
_CONTEXTS = {"host": HostContext, "vm": VmContext, "pool": PoolContext}
_LABELS = {"host": lambda h: h.hostname, "vm": lambda v: v.name, "pool": lambda p: p.name}


def form_id(request: FcRequest, field: str) -> int:
    """A positive integer id from a form field, or InvalidInput naming the field."""
    raw = request.POST.get(field, "")
    if not (raw.isdecimal() and 0 < len(raw) < 18 and int(raw) > 0):
        raise InvalidInput(f"{field} must be an id (a positive integer)", {"field": field})
    return int(raw)


def form_kind(request: FcRequest) -> str:
    """The ``kind`` field: host, vm or pool."""
    kind = request.POST.get("kind", "")
    if kind not in ITEM_KINDS:
        raise InvalidInput("kind must be one of host, vm or pool", {"field": "kind"})
    return kind


def viewable_item(request: FcRequest) -> tuple[str, Host | Vm | Pool]:
    """The host, VM or pool a form names, if the user may view it; else 404."""
    kind = form_kind(request)
    item = request.find_service(ISmartPoolService).item(kind, form_id(request, "item_id"))
    if item is None or not request.has_permission(Permission.VIEW, _CONTEXTS[kind](item)):
        raise HTTPNotFound()
    return kind, item


def back_to(request: FcRequest, pool: Pool) -> HTTPSeeOther:
    """Back to ``next`` if it is a path on this site, else to the smart pool."""
    default = request.route_url("smart_pool", smart_id=pool.id)
    return HTTPSeeOther(safe_target(request.POST.get("next", ""), default))


def add_item(request: FcRequest, pool: Pool) -> HTTPSeeOther:
    """Bookmark the form's item in one of the user's smart pools."""
    kind, item = viewable_item(request)
    request.find_service(ISmartPoolService).add(pool, kind, item.id)
    request.session.flash(f"{_LABELS[kind](item)} added to {pool.name}.", "success")
    return back_to(request, pool)


@view_config(
    route_name="smart_pools",
    request_method="GET",
    renderer="smart_pools/list.jinja2",
    permission=Permission.VIEW,
)
def smart_pool_list(request: UserRequest) -> dict[str, Any]:
    """Your smart pools, and a form to make one."""
    pools = request.find_service(ISmartPoolService).list_for(request.identity.user)
    return {"smart_pools": pools, "error": None, "name": ""}


@view_config(
    route_name="smart_pools",
    request_method="POST",
    renderer="smart_pools/list.jinja2",
    permission=Permission.VIEW,
)
def smart_pool_create(request: UserRequest) -> Any:
    """Make a smart pool; a bad or taken name shows the form again with the reason."""
    service, user = request.find_service(ISmartPoolService), request.identity.user
    name = request.POST.get("name", "")
    try:
        pool = service.create(user, name)
    except ServiceError as exc:
        return form_refused(request, exc, {"smart_pools": service.list_for(user), "name": name})
    request.session.flash(f"Smart pool {pool.name} created.", "success")
    return HTTPSeeOther(request.route_url("smart_pool", smart_id=pool.id))


@view_config(
    route_name="smart_pool",
    request_method="GET",
    renderer="smart_pools/show.jinja2",
    permission=Permission.VIEW,
)
def smart_pool_page(context: OwnedContext, request: UserRequest) -> dict[str, Any]:
    """A smart pool: the hosts, VMs and pools in it that you may still view."""
    items = request.find_service(ISmartPoolService).items(
        context.obj, request.identity.visible_pools()
    )
    return {"pool": context.obj, "items": items, "error": None, "name": context.obj.name}


@view_config(
    route_name="smart_pool_rename",
    request_method="POST",
    renderer="smart_pools/show.jinja2",
    permission=Permission.VIEW,
)
def smart_pool_rename(context: OwnedContext, request: UserRequest) -> Any:
    """Rename a smart pool; a bad or taken name shows the page again with the reason."""
    service, name = request.find_service(ISmartPoolService), request.POST.get("name", "")
    try:
        service.rename(context.obj, name)
    except ServiceError as exc:
        items = service.items(context.obj, request.identity.visible_pools())
        return form_refused(request, exc, {"pool": context.obj, "items": items, "name": name})
    request.session.flash(f"Smart pool renamed to {context.obj.name}.", "success")
    return HTTPSeeOther(request.route_url("smart_pool", smart_id=context.obj.id))


@view_config(route_name="smart_pool_delete", request_method="POST", permission=Permission.VIEW)
def smart_pool_delete(context: OwnedContext, request: FcRequest) -> Any:
    """Delete a smart pool and its bookmarks (never what they point at)."""
    request.find_service(ISmartPoolService).delete(context.obj)
    request.session.flash(f"Smart pool {context.obj.name} deleted.", "success")
    return HTTPSeeOther(request.route_url("smart_pools"))


@view_config(route_name="smart_pool_add", request_method="POST", permission=Permission.VIEW)
def smart_pool_add(context: OwnedContext, request: FcRequest) -> Any:
    """Bookmark a host, VM or pool (``kind``, ``item_id``) you may view; back to ``next``."""
    return add_item(request, context.obj)


@view_config(route_name="smart_pool_bookmark", request_method="POST", permission=Permission.VIEW)
def smart_pool_bookmark(request: UserRequest) -> Any:
    """The "Add to smart pool" form of host, VM and pool pages: the smart pool is a field."""
    pool = request.find_service(ISmartPoolService).get(
        request.identity.user, form_id(request, "smart_pool")
    )
    return add_item(request, pool)


@view_config(route_name="smart_pool_remove", request_method="POST", permission=Permission.VIEW)
def smart_pool_remove(context: OwnedContext, request: FcRequest) -> Any:
    """Take a bookmark out of a smart pool."""
    kind, item_id = form_kind(request), form_id(request, "item_id")
    request.find_service(ISmartPoolService).remove(context.obj, kind, item_id)
    request.session.flash(f"Removed from {context.obj.name}.", "success")
    return back_to(request, context.obj)
