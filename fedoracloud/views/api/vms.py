"""``/api/v1/vms``: list the VMs in the pools the caller may view (read-only for now)."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import Vm
from ...permissions import Permission
from ...services.vm_list import VmListService
from .. import Page
from ..vms import vm_query


def vm_json(vm: Vm, request: Any) -> dict[str, Any]:
    """A VM as the API shows it."""
    return {
        "id": vm.id,
        "uuid": vm.uuid,
        "name": vm.name,
        "state": vm.state,
        "state_reason": vm.state_reason,
        "host": vm.host_id,
        "hostname": vm.host.hostname if vm.host is not None else None,
        "pool": vm.pool_id,
        "pool_name": vm.pool.name,
        "vcpus": vm.vcpus,
        "memory_mib": vm.memory_mib,
        "created_at": vm.created_at,
    }


@view_config(
    route_name="api_vms", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_vms(request: Any) -> dict[str, Any]:
    """VMs in the pools the caller may view; same filters and sorts as the VM list page."""
    query = vm_query(request)
    vms, total = VmListService(request.dbsession).search(query, request.identity.visible_pools())
    page = Page(vms, total, query.page, query.per_page, request)
    return {"items": [vm_json(v, request) for v in vms], "next": page.next_url, "total": total}
