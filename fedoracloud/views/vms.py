"""The VM list page: VMs in the pools you may view, sortable, filterable, paginated.

Read-only for now; VM actions come later.
"""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ..models import VmState
from ..permissions import Permission
from ..services import InvalidInput
from ..services.pools import IPoolService
from ..services.vm_list import VmListService, VmQuery
from . import Page, authorized_pool, page_number


def vm_query(request: Any) -> VmQuery:
    """The VM list's filters from the query string; a ``pool`` the user cannot see is 404."""
    sort = request.GET.get("sort", "name")
    pool = request.GET.get("pool", "")
    if pool and not (pool.isdigit() and len(pool) < 18):
        raise InvalidInput("pool must be a pool id (a positive integer)", {"field": "pool"})
    pool_id = authorized_pool(request, int(pool), Permission.VIEW).id if pool else None
    return VmQuery(
        q=request.GET.get("q", "").strip(),
        state=request.GET.get("state", ""),
        pool_id=pool_id,
        sort=sort.removeprefix("-"),
        descending=sort.startswith("-"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
    )


@view_config(route_name="vms", renderer="vms/list.jinja2", permission=Permission.VIEW)
def vm_list(request: Any) -> dict[str, Any]:
    """VMs in the pools the user may view, with their host and pool."""
    query = vm_query(request)
    visible = request.identity.visible_pools()
    vms, total = VmListService(request.dbsession).search(query, visible)
    pools, _ = request.find_service(IPoolService).search(visible, limit=1000)
    return {
        "page": Page(vms, total, query.page, query.per_page, request),
        "query": query,
        "states": [s.value for s in VmState],
        "pools": [p for p in pools if p.kind != "smart"],
    }
