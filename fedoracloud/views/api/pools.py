"""``/api/v1/pools``: list, create, read, rename/move, delete pools."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import Pool
from ...permissions import Permission
from ...request import FcRequest, UserRequest
from ...resources import PoolContext
from ...services import InvalidInput
from ...services.pools import IPoolService
from .. import Page, authorized_pool, page_number
from . import int_field, json_body, str_field


def pool_json(pool: Pool, request: FcRequest) -> dict[str, Any]:
    """A pool as the API shows it."""
    return {
        "id": pool.id,
        "name": pool.name,
        "kind": pool.kind,
        "parent": pool.parent_id,
        "path": pool.path,
        "depth": pool.depth,
        "description": pool.description,
        "url": request.route_url("api_pool", pool_id=pool.id),
    }


@view_config(
    route_name="api_pools", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_pools(request: UserRequest) -> dict[str, Any]:
    """The pools the caller may view, in tree order."""
    number = page_number(request)
    if number < 1:
        raise InvalidInput("page must be a positive integer", {"field": "page"})
    per_page = 100
    pools, total = request.find_service(IPoolService).search(
        request.identity.visible_pools(),
        request.GET.get("kind") or None,
        (number - 1) * per_page,
        per_page,
    )
    page = Page(pools, total, number, per_page, request)
    return {"items": [pool_json(p, request) for p in pools], "next": page.next_url, "total": total}


@view_config(
    route_name="api_pools", request_method="POST", renderer="json", permission=Permission.VIEW
)
def create_pool(request: FcRequest) -> dict[str, Any]:
    """Create a pool: ``{"name", "kind", "parent", "description"?}``."""
    body = json_body(request, frozenset({"name", "kind", "parent", "description"}))
    parent = authorized_pool(request, int_field(body, "parent"), Permission.POOL_CREATE)
    pool = request.find_service(IPoolService).create(
        str_field(body, "name") or "",
        str_field(body, "kind") or "",
        parent,
        str_field(body, "description", required=False) or "",
    )
    request.response.status = 201
    return pool_json(pool, request)


@view_config(
    route_name="api_pool", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_pool(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """One pool."""
    return pool_json(context.pool, request)


@view_config(
    route_name="api_pool",
    request_method="PATCH",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def update_pool(context: PoolContext, request: FcRequest) -> dict[str, Any]:
    """Rename (``name``) and/or move (``parent``) a pool."""
    body = json_body(request, frozenset({"name", "parent"}))
    pools = request.find_service(IPoolService)
    name = str_field(body, "name", required=False)
    parent_id = int_field(body, "parent", required=False)
    parent = authorized_pool(request, parent_id, Permission.POOL_CREATE) if parent_id else None
    if name is not None:
        pools.rename(context.pool, name)
    if parent is not None:
        pools.move(context.pool, parent)
    return pool_json(context.pool, request)


@view_config(
    route_name="api_pool",
    request_method="DELETE",
    renderer="json",
    permission=Permission.POOL_MODIFY,
)
def delete_pool(context: PoolContext, request: FcRequest) -> Any:
    """Delete an empty pool."""
    request.find_service(IPoolService).delete(context.pool)
    request.response.status = 204
    return request.response
