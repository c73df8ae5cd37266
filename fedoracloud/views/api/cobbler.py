"""``/api/v1/profiles`` (the Cobbler cache and its refresh) and
``/api/v1/pools/{id}/profiles`` (what a pool allows, and setting its own choice)."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import CobblerProfile, Pool
from ...permissions import Permission
from ...request import FcRequest
from ...resources import PoolContext
from ...services import InvalidInput
from ...services.cobbler import IProfileService
from . import ID_LIMIT, json_body
from .vms import task_json


def profile_json(profile: CobblerProfile, allowed_on: Pool | None = None) -> dict[str, Any]:
    """A cached profile or image as the API shows it."""
    data: dict[str, Any] = {
        "id": profile.id,
        "kind": profile.kind,
        "name": profile.name,
        "distro": profile.distro,
        "arch": profile.arch,
        "comment": profile.comment,
        "present": profile.present,
        "refreshed_at": profile.refreshed_at,
    }
    if allowed_on is not None:
        data["allowed_on"] = {"id": allowed_on.id, "name": allowed_on.name}
    return data


@view_config(
    route_name="api_cobbler_profiles",
    request_method="GET",
    renderer="json",
    permission=Permission.VIEW,
)
def list_profiles(request: FcRequest) -> dict[str, Any]:
    """Every cached profile and image (``?all=true``: also those Cobbler no longer lists)."""
    include_gone = request.GET.get("all", "") in ("1", "true", "yes")
    rows = request.find_service(IProfileService).all(include_gone=include_gone)
    return {"items": [profile_json(p) for p in rows], "next": None, "total": len(rows)}


@view_config(
    route_name="api_cobbler_refresh",
    request_method="POST",
    renderer="json",
    permission=Permission.SITE_SETTINGS,
)
def refresh_profiles(request: FcRequest) -> dict[str, Any]:
    """Queue a refresh from Cobbler; 202 with the task (409 when no Cobbler is linked)."""
    task = request.find_service(IProfileService).request_refresh()
    request.response.status = 202
    return task_json(task, request)


@view_config(
    route_name="api_pool_cobbler_profiles",
    request_method="GET",
    renderer="json",
    permission=Permission.VIEW,
)
def pool_profiles(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """The profiles the pool's users may ask for, each with the pool that allows it."""
    choices = request.find_service(IProfileService).choices(context.pool)
    items = [profile_json(p, where) for p, where in choices if where is not None and p.present]
    return {"items": items, "next": None, "total": len(items)}


@view_config(
    route_name="api_pool_cobbler_profiles",
    request_method="PUT",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def set_pool_profiles(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """Set the profiles allowed on the pool itself: ``{"profiles": [id, ...]}`` (those
    allowed above it stay allowed); answers what the pool allows now."""
    body = json_body(request, frozenset({"profiles"}))
    raw = body.get("profiles")
    if not isinstance(raw, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 < v < ID_LIMIT for v in raw
    ):
        raise InvalidInput("'profiles' must be a list of profile ids", {"field": "profiles"})
    request.find_service(IProfileService).set_allowed(context.pool, raw)
    return pool_profiles(context, request)
