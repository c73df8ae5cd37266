"""``/api/v1/pools/{id}/grants``, ``/api/v1/pools/{id}/quota``, and the user and group
pickers ``/api/v1/users?q=`` and ``/api/v1/groups?q=``."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import RoleGrant
from ...permissions import Permission
from ...request import FcRequest
from ...resources import GrantContext, PoolContext
from ...services.grants import IGrantService
from ...services.quotas import IQuotaService
from ..grants import grant_from_input, refresh_directory
from . import json_body


def grant_json(grant: RoleGrant, pool_id: int) -> dict[str, Any]:
    """A grant as the API shows it; ``inherited_from`` names the pool it was made on."""
    return {
        "id": grant.id,
        "pool": grant.pool_id,
        "user": grant.user.username if grant.user else None,
        "group": grant.group_name,
        "role": grant.role,
        "inherited_from": grant.pool_id if grant.pool_id != pool_id else None,
    }


@view_config(
    route_name="api_pool_grants",
    request_method="GET",
    renderer="json",
    permission=Permission.VIEW_PERMS,
)
def list_grants(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """Grants on the pool and the ones inherited from its ancestors."""
    rows = request.find_service(IGrantService).for_pool(context.pool)
    return {
        "items": [grant_json(r.grant, context.pool.id) for r in rows],
        "next": None,
        "total": len(rows),
    }


@view_config(
    route_name="api_pool_grants",
    request_method="POST",
    renderer="json",
    permission=Permission.SET_PERMS,
)
def add_grant(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """Grant ``{"user": USERNAME | "group": NAME, "role": ROLE}`` on the pool."""
    grant = grant_from_input(request, context, json_body(request))
    request.response.status = 201
    return grant_json(grant, context.pool.id)


@view_config(
    route_name="api_pool_grant",
    request_method="DELETE",
    renderer="json",
    permission=Permission.SET_PERMS,
)
def delete_grant(context: GrantContext, request: FcRequest) -> Any:
    """Revoke a grant."""
    request.find_service(IGrantService).revoke(context.grant, revoker=request.identity)
    request.response.status = 204
    return request.response


def quota_json(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    service = request.find_service(IQuotaService)
    own = service.own(context.pool)
    return {
        "pool": context.pool.id,
        "limits": {
            limit.field: {
                "limit": limit.limit,
                "used": limit.used,
                "set_on": limit.source.id if limit.source else None,
                "own": getattr(own, limit.field) if own else None,
            }
            for limit in service.effective(context.pool)
        },
    }


@view_config(
    route_name="api_pool_quota", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_quota(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """The effective limits, where each was set, and the subtree's usage."""
    return quota_json(context, request)


@view_config(
    route_name="api_pool_quota", request_method="PUT", renderer="json", permission=Permission.QUOTA
)
def put_quota(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """Set the pool's own limits: ``{"vcpus": 64, "memory_mib": null, ...}``."""
    request.find_service(IQuotaService).set(context.pool, json_body(request))
    return quota_json(context, request)


@view_config(
    route_name="api_users", request_method="GET", renderer="json", permission=Permission.VIEW
)
def pick_users(request: FcRequest) -> dict[str, Any]:
    """Grantable people whose username or name starts with ``q``."""
    refresh_directory(request)
    people = request.find_service(IGrantService).grantable_people(request.GET.get("q", ""))
    return {
        "items": [{"username": u.username, "name": u.display_name} for u in people],
        "next": None,
        "total": len(people),
    }


@view_config(
    route_name="api_groups", request_method="GET", renderer="json", permission=Permission.VIEW
)
def pick_groups(request: FcRequest) -> dict[str, Any]:
    """Known groups whose name starts with ``q``."""
    groups = request.find_service(IGrantService).known_groups(request.GET.get("q", ""))
    return {"items": [{"name": g} for g in groups], "next": None, "total": len(groups)}
