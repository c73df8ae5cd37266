"""Cobbler pages: the profiles and images Cobbler lists, as cached (with a refresh for
super admins), and a pool's choice of the profiles its users may install."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from .. import cobbler
from ..models import PoolKind
from ..permissions import Permission
from ..request import FcRequest
from ..resources import PoolContext
from ..services import InvalidInput, ServiceError
from ..services.cobbler import IProfileService
from . import refused


@view_config(
    route_name="cobbler_profiles", renderer="cobbler/list.jinja2", permission=Permission.VIEW
)
def profiles(request: FcRequest) -> dict[str, Any]:
    """Every profile and image Cobbler listed at the last refresh."""
    service = request.find_service(IProfileService)
    return {
        "profiles": service.all(include_gone=True),
        "refreshed_at": service.last_refresh(),
        "linked": cobbler.configured().configured,
        "cobbler_url": cobbler.configured().url,
        "can_refresh": request.has_permission(Permission.SITE_SETTINGS),
    }


@view_config(
    route_name="cobbler_refresh", request_method="POST", permission=Permission.SITE_SETTINGS
)
def refresh(request: FcRequest) -> Any:
    """Queue a refresh of the cache from Cobbler."""
    try:
        task = request.find_service(IProfileService).request_refresh()
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(f"Refreshing the profiles from Cobbler (task {task.id}).", "success")
    return HTTPSeeOther(request.route_url("cobbler_profiles"))


@view_config(
    route_name="pool_cobbler_profiles",
    request_method="GET",
    renderer="cobbler/pool.jinja2",
    permission=Permission.VIEW,
)
def pool_profiles(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """The profiles a pool allows: its own choice and what it inherits from above."""
    service = request.find_service(IProfileService)
    return {
        "pool": context.pool,
        "choices": service.choices(context.pool),
        "may_change": context.pool.kind != PoolKind.SMART
        and request.has_permission(Permission.POOL_MODIFY, context),
    }


@view_config(
    route_name="pool_cobbler_profiles", request_method="POST", permission=Permission.POOL_MODIFY
)
def set_pool_profiles(context: PoolContext, request: FcRequest) -> Any:
    """Save the pool's own choice of profiles (the ticked boxes)."""
    raw = request.POST.getall("profile")
    try:
        ids = [int(v) for v in raw if v.isdecimal() and len(v) < 18]
        if len(ids) != len(raw):
            raise InvalidInput("profiles are given by their ids")
        allowed = request.find_service(IProfileService).set_allowed(context.pool, ids)
    except ServiceError as exc:
        refused(request, exc)
    else:
        names = ", ".join(p.name for p in allowed) or "none of its own"
        request.session.flash(f"Pool {context.pool.name} allows {names}.", "success")
    return HTTPSeeOther(request.route_url("pool_cobbler_profiles", pool_id=context.pool.id))
