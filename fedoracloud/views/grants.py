"""A pool's permissions page: who holds which role here, inherited from where; grant, revoke."""

from __future__ import annotations

import time
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..auth import BackendUnavailable
from ..permissions import Permission, grantable
from ..request import FcRequest, UserRequest
from ..resources import GrantContext, PoolContext
from ..services import InvalidInput, ServiceError
from ..services.access import IAccessService
from ..services.grants import IGrantService
from ..services.pools import IPoolService
from ..services.quotas import FIELDS, IQuotaService
from . import refused

DIRECTORY_TTL = 300


def refresh_directory(request: FcRequest) -> None:
    """Re-read the access group's members from the backend at most every five minutes
    (a cache of this process; the rows it writes are shared by every UI box)."""
    registry = request.registry
    now = time.monotonic()
    if now - registry.get("directory_synced_at", -DIRECTORY_TTL) < DIRECTORY_TTL:
        return
    backend = registry["auth_backend"]
    try:
        request.find_service(IAccessService).sync_directory(backend)
    except BackendUnavailable:
        return  # the picker still offers who it knew
    registry["directory_synced_at"] = now


def grantable_roles(request: UserRequest, context: PoolContext) -> list[str]:
    """The roles this user may hand out here: none above their own."""
    mine = request.identity.role_at(context.pool.path)
    return [r.value for r in grantable(mine)]


def grant_from_input(request: FcRequest, context: PoolContext, data: dict[str, Any]) -> Any:
    """Grant from a form or a JSON body: ``user`` (username) or ``group``, and ``role``."""
    service = request.find_service(IGrantService)
    username, group = data.get("user"), data.get("group")
    if not isinstance(data.get("role", ""), str):
        raise InvalidInput("'role' must be a string", {"field": "role"})
    user = None
    if username:
        if not isinstance(username, str) or len(username) > 64:
            raise InvalidInput("'user' must be a username", {"field": "user"})
        user = service.grantee(username)
    elif group is not None and not isinstance(group, str):
        raise InvalidInput("'group' must be a group name", {"field": "group"})
    return service.grant(
        context.pool, data.get("role", ""), granter=request.identity, user=user, group=group or None
    )


@view_config(
    route_name="pool_permissions",
    request_method="GET",
    renderer="grants/pool.jinja2",
    permission=Permission.VIEW_PERMS,
)
def permissions_page(context: PoolContext, request: UserRequest) -> dict[str, Any]:
    """Grants on this pool and inherited from above, the grant form and the quota."""
    pools = request.find_service(IPoolService)
    refresh_directory(request)
    return {
        "pool": context.pool,
        "pool_path": pools.name_path(context.pool),
        "rows": request.find_service(IGrantService).for_pool(context.pool),
        "can_set": request.has_permission(Permission.SET_PERMS, context),
        "roles": grantable_roles(request, context),
        "people": request.find_service(IGrantService).grantable_people("", limit=500),
        "groups": request.find_service(IGrantService).known_groups("", limit=500),
        "limits": request.find_service(IQuotaService).effective(context.pool),
        "own_quota": request.find_service(IQuotaService).own(context.pool),
        "can_quota": request.has_permission(Permission.QUOTA, context),
    }


@view_config(route_name="pool_permissions", request_method="POST", permission=Permission.SET_PERMS)
def grant(context: PoolContext, request: FcRequest) -> Any:
    """Grant a role from the permissions page."""
    data = {k: request.POST.get(k, "").strip() for k in ("user", "group", "role")}
    try:
        grant_from_input(request, context, data)
        request.session.flash("Role granted.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("pool_permissions", pool_id=context.pool.id))


@view_config(route_name="grant_revoke", request_method="POST", permission=Permission.SET_PERMS)
def revoke(context: GrantContext, request: FcRequest) -> Any:
    """Revoke a grant from the permissions page."""
    try:
        request.find_service(IGrantService).revoke(context.grant, revoker=request.identity)
        request.session.flash("Grant revoked.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("pool_permissions", pool_id=context.pool.id))


@view_config(route_name="pool_quota", request_method="POST", permission=Permission.QUOTA)
def set_quota(context: PoolContext, request: FcRequest) -> Any:
    """Set a pool's own limits (empty fields inherit from above)."""
    try:
        request.find_service(IQuotaService).set(
            context.pool, {f: request.POST.get(f, "").strip() for f in FIELDS}
        )
        request.session.flash("Quota saved.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("pool_permissions", pool_id=context.pool.id))
