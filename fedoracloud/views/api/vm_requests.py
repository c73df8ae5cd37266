"""``/api/v1/vm-requests``: ask for a VM, follow one's requests, and (admins of the pool)
approve, deny or retry them; approval answers 202 with the provisioning task."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import VmRequest
from ...permissions import Permission
from ...request import FcRequest, UserRequest
from ...resources import VmRequestContext
from ...services.vm_requests import Approval, IVmRequestService, VmRequestInput
from .. import authorized_pool
from . import json_body
from .vms import task_json


def vm_request_json(r: VmRequest, request: FcRequest) -> dict[str, Any]:
    """A VM request as the API shows it."""
    return {
        "id": r.id,
        "name": r.name,
        "state": r.state,
        "user": r.user.username,
        "pool": r.pool_id,
        "pool_name": r.pool.name,
        "profile": r.profile_id,
        "profile_name": r.profile,
        "vcpus": r.vcpus,
        "memory_mib": r.memory_mib,
        "storage_gib": r.storage_gib,
        "network": r.network_id,
        "reason": r.reason,
        "decided_by": r.decided_by.username if r.decided_by is not None else None,
        "decided_at": r.decided_at,
        "decision_reason": r.decision_reason,
        "failure_reason": r.failure_reason,
        "task": r.task_id,
        "vm": r.vm_id,
        "created_at": r.created_at,
        "url": request.route_url("api_vm_request", request_id=r.id),
    }


@view_config(
    route_name="api_vm_requests", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_requests(request: UserRequest) -> dict[str, Any]:
    """The caller's own requests (``?waiting=true``: the pending ones they may decide)."""
    service = request.find_service(IVmRequestService)
    if request.GET.get("waiting", "") in ("1", "true", "yes"):
        rows = service.waiting_for(request.identity)
    else:
        rows = service.mine(request.identity.user)
    return {"items": [vm_request_json(r, request) for r in rows], "next": None, "total": len(rows)}


@view_config(
    route_name="api_vm_requests", request_method="POST", renderer="json", permission=Permission.VIEW
)
def submit(request: UserRequest) -> dict[str, Any]:
    """Ask for a VM: ``{"name", "pool", "profile", "vcpus", "memory_mib", "storage_gib",
    "network", "reason"}``; 201 with the request (``pending``)."""
    data = VmRequestInput.parse(json_body(request))
    authorized_pool(request, data.pool_id, Permission.VM_REQUEST)
    vm_request = request.find_service(IVmRequestService).submit(request.identity.user, data)
    request.response.status = 201
    request.response.headers["Location"] = request.route_url(
        "api_vm_request", request_id=vm_request.id
    )
    return vm_request_json(vm_request, request)


@view_config(
    route_name="api_vm_request", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_request(context: VmRequestContext, request: FcRequest) -> dict[str, Any]:
    """One request (its requester's or, for the pool's admins, anyone's)."""
    return vm_request_json(context.vm_request, request)


@view_config(
    route_name="api_vm_request_approve",
    request_method="POST",
    renderer="json",
    permission=Permission.VM_CREATE,
)
def approve(context: VmRequestContext, request: FcRequest) -> dict[str, Any]:
    """Approve, optionally with ``{"vcpus", "memory_mib", "storage_gib", "pool"}``; 202 with
    the provisioning task."""
    body = json_body(request) if request.body else {}
    change = Approval.parse(body)
    if change.pool_id is not None and change.pool_id != context.vm_request.pool_id:
        authorized_pool(request, change.pool_id, Permission.VM_CREATE)
    task = request.find_service(IVmRequestService).approve(
        context.vm_request, request.identity, change
    )
    request.response.status = 202
    return {
        "request": vm_request_json(context.vm_request, request),
        "task": task_json(task, request),
    }


@view_config(
    route_name="api_vm_request_deny",
    request_method="POST",
    renderer="json",
    permission=Permission.VM_CREATE,
)
def deny(context: VmRequestContext, request: FcRequest) -> dict[str, Any]:
    """Deny: ``{"reason": "..."}`` (required; the requester reads it)."""
    body = json_body(request, frozenset({"reason"}))
    reason = body.get("reason")
    request.find_service(IVmRequestService).deny(
        context.vm_request, request.identity, reason if isinstance(reason, str) else ""
    )
    return vm_request_json(context.vm_request, request)


@view_config(
    route_name="api_vm_request_retry",
    request_method="POST",
    renderer="json",
    permission=Permission.VM_CREATE,
)
def retry(context: VmRequestContext, request: FcRequest) -> dict[str, Any]:
    """Provision a failed request again; 202 with the task."""
    task = request.find_service(IVmRequestService).retry(context.vm_request)
    request.response.status = 202
    return {
        "request": vm_request_json(context.vm_request, request),
        "task": task_json(task, request),
    }
