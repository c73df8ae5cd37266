"""``/api/v1/vms``: list the VMs in the pools the caller may view, create VMs, read or
delete one, and ask for lifecycle actions (``POST /api/v1/vms/{id}/{action}`` answers 202
with the task that carries the action out)."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import Task, Vm
from ...permissions import Permission
from ...request import FcRequest, UserRequest
from ...resources import VmContext
from ...services.networks import INetworkService
from ...services.vm_list import IVmListService
from ...services.vms import IVmService, VmSpec, allowed_actions
from .. import Page, authorized_pool
from ..vms import CONTROL_ACTIONS, check_migration_rights, vm_query
from . import json_body


def vm_json(vm: Vm, request: FcRequest) -> dict[str, Any]:
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
        "managed": vm.managed,
        "allowed_actions": allowed_actions(vm),
    }


def vm_detail_json(vm: Vm, request: FcRequest) -> dict[str, Any]:
    """One VM with its disks, NICs and boot settings."""
    data = vm_json(vm, request)
    data["boot"] = {
        "order": [o for o in (vm.boot_order or "").split(",") if o],
        "kernel": vm.boot_kernel,
        "initrd": vm.boot_initrd,
        "cmdline": vm.boot_cmdline,
    }
    data["arch"] = vm.arch
    data["disks"] = [
        {
            "target": d.target_dev,
            "bus": d.bus,
            "volume": d.volume_id,
            "path": d.path,
            "size_gib": d.size_gib,
        }
        for d in vm.disks
    ]
    addresses = request.find_service(INetworkService).addresses_of(vm)
    data["nics"] = [
        {"mac": n.mac, "network": n.network_id, "ip": addresses.get(n.id), "model": n.model}
        for n in vm.nics
    ]
    return data


def task_json(task: Task, request: FcRequest) -> dict[str, Any]:
    """A task as the VM API answers it (the tasks API shows the same task in full)."""
    try:
        url = request.route_url("api_task", task_id=task.id)
    except KeyError:
        url = None
    return {
        "id": task.id,
        "kind": task.kind,
        "state": task.state,
        "target_type": task.target_type,
        "target_id": task.target_id,
        "args": {k: v for k, v in (task.args or {}).items() if k != "libvirt"},
        "message": task.message,
        "progress": task.progress,
        "created_at": task.created_at,
        "url": url,
    }


def idempotency_key(request: FcRequest) -> str | None:
    """The request's ``Idempotency-Key`` header: a client retrying a POST sends the same
    one and gets what the first call made (``Idempotent-Replayed: true``), never a second
    VM or task."""
    key = request.headers.get("Idempotency-Key")
    return key.strip() if key is not None else None


def _replayed(request: FcRequest, service: Any) -> None:
    if getattr(service, "replayed", False):
        request.response.headers["Idempotent-Replayed"] = "true"


def _accepted(request: FcRequest, task: Task) -> dict[str, Any]:
    request.response.status = 202
    body = task_json(task, request)
    if body["url"]:
        request.response.headers["Location"] = body["url"]
    return body


@view_config(
    route_name="api_vms", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_vms(request: UserRequest) -> dict[str, Any]:
    """VMs in the pools the caller may view; same filters and sorts as the VM list page."""
    query = vm_query(request)
    vms = request.find_service(IVmListService).search(query, request.identity.visible_pools())
    page = Page(vms.items, vms.total, query.page, query.per_page, request, vms.next_after)
    return {
        "items": [vm_json(v, request) for v in vms.items],
        "next": page.next_url,
        "total": vms.total,
    }


@view_config(
    route_name="api_vms", request_method="POST", renderer="json", permission=Permission.VIEW
)
def create_vm(request: FcRequest) -> dict[str, Any]:
    """Create a VM: ``{"name", "pool", "vcpus", "memory_mib", "host"?, "disks"?, "nics"?,
    "boot"?}``; 201 with the VM (``pending``) and the task that defines its domain."""
    spec = VmSpec.parse(json_body(request))
    authorized_pool(request, spec.pool_id, Permission.VM_CREATE)
    service = request.find_service(IVmService)
    vm, task = service.create(spec, idempotency_key(request))
    _replayed(request, service)
    request.response.status = 201
    request.response.headers["Location"] = request.route_url("api_vm", vm_id=vm.id)
    return {**vm_detail_json(vm, request), "task": task_json(task, request)}


@view_config(route_name="api_vm", request_method="GET", renderer="json", permission=Permission.VIEW)
def get_vm(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """One VM."""
    return vm_detail_json(context.vm, request)


@view_config(
    route_name="api_vm", request_method="DELETE", renderer="json", permission=Permission.VM_DELETE
)
def delete_vm(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """Delete a stopped VM (undefine its domain; its volumes only with
    ``?delete_volumes=true``); 202 with the task."""
    delete_volumes = request.GET.get("delete_volumes", "") in ("1", "true", "yes")
    service = request.find_service(IVmService)
    task = service.request(
        context.vm, "delete", {"delete_volumes": delete_volumes}, idempotency_key(request)
    )
    _replayed(request, service)
    return _accepted(request, task)


def vm_action(context: VmContext, request: FcRequest) -> dict[str, Any]:
    """Ask for a lifecycle action; 202 with the task, 409 with the reason if the VM's state
    does not allow it.  ``migrate`` takes ``{"host": HOST_ID}``."""
    action = request.matchdict["action"]
    body = json_body(request, frozenset({"host"})) if request.body else {}
    if action == "migrate":
        check_migration_rights(request, context.vm)
    service = request.find_service(IVmService)
    task = service.request(context.vm, action, body, idempotency_key(request))
    _replayed(request, service)
    return _accepted(request, task)


for _action in CONTROL_ACTIONS:
    vm_action = view_config(
        route_name="api_vm_action",
        request_method="POST",
        renderer="json",
        match_param=f"action={_action}",
        permission=Permission.VM_CONTROL,
    )(vm_action)
vm_action = view_config(
    route_name="api_vm_action",
    request_method="POST",
    renderer="json",
    match_param="action=migrate",
    permission=Permission.VM_MODIFY,
)(vm_action)
