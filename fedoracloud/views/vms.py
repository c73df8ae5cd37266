"""VM pages: the list (VMs in the pools you may view, sortable, filterable, paginated),
one VM's page with only the actions its state allows, the action buttons' forms, and the
create form on VM pool pages."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import Vm, VmState
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import PoolContext, VmContext
from ..services import InvalidInput, ServiceError
from ..services.networks import INetworkService
from ..services.pools import IPoolService
from ..services.vm_list import IVmListService, VmQuery, live_version
from ..services.vms import ACTIONS, IVmService, VmSpec, allowed_actions
from . import NotAllowed, Page, authorized_pool, form_refused_page, page_number, refused
from .pools import pool_page

#: actions a ``user`` role may ask for (vm_control); migrate and delete need admin
CONTROL_ACTIONS = tuple(a for a in ACTIONS if a not in ("migrate", "delete"))
ACTION_PERMISSIONS = {
    **{a: Permission.VM_CONTROL for a in CONTROL_ACTIONS},
    "migrate": Permission.VM_MODIFY,
    "delete": Permission.VM_DELETE,
}


def vm_query(request: FcRequest) -> VmQuery:
    """The VM list's filters from the query string; a ``pool`` the user cannot see is 404."""
    sort = request.GET.get("sort", "name")
    pool = request.GET.get("pool", "")
    if pool and not (pool.isdecimal() and len(pool) < 18):
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
        after=request.GET.get("after", ""),
    )


@view_config(route_name="vms", renderer="vms/list.jinja2", permission=Permission.VIEW)
def vm_list(request: UserRequest) -> dict[str, Any]:
    """VMs in the pools the user may view, with their host and pool."""
    query = vm_query(request)
    visible = request.identity.visible_pools()
    vms = request.find_service(IVmListService).search(query, visible)
    pools, _ = request.find_service(IPoolService).search(visible, limit=1000)
    return {
        "page": Page(vms.items, vms.total, query.page, query.per_page, request, vms.next_after),
        "query": query,
        "states": [s.value for s in VmState],
        "pools": [p for p in pools if p.kind != "smart"],
    }


def check_migration_rights(request: FcRequest, vm: Vm) -> None:
    """Migration moves a VM between hosts: it needs admin on the hardware pool too."""
    hardware = request.find_service(IVmService).hardware_pool(vm.pool)
    if not request.has_permission(Permission.VM_MODIFY, PoolContext(hardware)):
        raise NotAllowed(f"migrating needs the admin role on hardware pool {hardware.name!r}")


def offered_actions(request: FcRequest, vm: Vm) -> list[str]:
    """The buttons of a VM's page: what its state allows and the user may ask for."""
    return [
        a
        for a in allowed_actions(vm)
        if request.has_permission(ACTION_PERMISSIONS[a], request.context)
    ]


@view_config(route_name="vm", renderer="vms/show.jinja2", permission=Permission.VIEW)
def vm_page(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """One VM: state, host, disks, NICs, its tasks, and only the actions it allows."""
    vm = context.vm
    service = request.find_service(IVmService)
    actions = offered_actions(request, vm)
    hosts = service.migration_targets(vm) if "migrate" in actions else []
    return {
        "vm": vm,
        "actions": actions,
        "tasks": service.tasks(vm),
        "migrate_hosts": hosts,
        "live_version": live_version(request.dbsession, vm),
        "addresses": request.find_service(INetworkService).addresses_of(vm),
    }


@view_config(route_name="vm_live", renderer="json", permission=Permission.VIEW)
def vm_live(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """What an open VM page polls (twice a second): a version that changes when the page
    would show something new; the page then re-reads itself (no full reload)."""
    request.response.cache_control = "no-store"
    return {"version": live_version(request.dbsession, context.vm), "state": context.vm.state}


def vm_action_form(context: VmContext, request: FcRequest) -> Any:
    """A VM page's action button: queue the action, or say why not."""
    action = request.matchdict["action"]
    args: dict[str, Any] = {}
    if action == "migrate":
        args["host"] = request.POST.get("host", "")
    elif action == "delete":
        args["delete_volumes"] = request.POST.get("delete_volumes") == "on"
    try:
        if action == "migrate":
            check_migration_rights(request, context.vm)
        task = request.find_service(IVmService).request(context.vm, action, args)
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(f"{action} asked for {context.vm.name} (task {task.id}).", "success")
        if action == "delete":
            return HTTPSeeOther(request.route_url("pool", pool_id=context.vm.pool_id))
    return HTTPSeeOther(request.route_url("vm", vm_id=context.vm.id))


for _action, _permission in ACTION_PERMISSIONS.items():
    vm_action_form = view_config(
        route_name="vm_action",
        request_method="POST",
        match_param=f"action={_action}",
        permission=_permission,
    )(vm_action_form)


@view_config(route_name="vm_create", request_method="POST", permission=Permission.VM_CREATE)
def vm_create_form(context: PoolContext, request: FcRequest) -> Any:
    """The VM pool page's create form."""
    fields = {
        k: request.POST.get(k, "")
        for k in ("name", "vcpus", "memory_mib", "host")
        if request.POST.get(k, "") != ""
    }
    try:
        vm, _task = request.find_service(IVmService).create(
            VmSpec.parse({**fields, "pool": context.pool.id})
        )
    except ServiceError as exc:
        values = pool_page(context, request)
        return form_refused_page(request, exc, "pools/show.jinja2", values, "vm-create")
    request.session.flash(f"VM {vm.name} created; its domain is being defined.", "success")
    return HTTPSeeOther(request.route_url("vm", vm_id=vm.id))
