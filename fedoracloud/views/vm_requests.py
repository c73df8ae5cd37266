"""VM request pages: the form on a VM pool, a person's requests and those waiting for
them, one request's page (its state, why it failed, its tasks), and the admins'
approve / deny / retry buttons.  The approvals inbox shows the pending ones too."""

from __future__ import annotations

from typing import Any

from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import Pool, PoolKind, VmRequest
from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import PoolContext, SiteContext, VmRequestContext
from ..services import ServiceError
from ..services.cobbler import IProfileService
from ..services.pools import IPoolService
from ..services.vm_requests import Approval, IVmRequestService, VmRequestInput
from ..services.vms import IVmService
from . import authorized_pool, refused

FORM_FIELDS = ("name", "profile", "vcpus", "memory_mib", "storage_gib", "network", "reason")


def may_decide(request: FcRequest, vm_request: VmRequest) -> bool:
    """Whether the user may approve or deny (create VMs in the request's pool)."""
    return bool(request.has_permission(Permission.VM_CREATE, PoolContext(vm_request.pool)))


def vm_requests_waiting(request: FcRequest) -> int:
    """How many pending requests the user may decide (the navigation's count)."""
    identity = request.identity
    if identity is None or not identity.has_access:
        return 0
    return request.find_service(IVmRequestService).waiting_count(identity)


def target_pools(request: FcRequest, vm_request: VmRequest) -> list[tuple[Pool, str]]:
    """The VM pools an approver may put the VM in: those of the same hardware pool where
    they may create VMs."""
    pools = request.find_service(IPoolService)
    hardware = request.find_service(IVmService).hardware_pool(vm_request.pool)
    return [
        (p, pools.name_path(p))
        for p in pools.subtree(hardware)
        if p.kind == PoolKind.VM and request.has_permission(Permission.VM_CREATE, PoolContext(p))
    ]


@view_config(
    route_name="vm_requests", renderer="vm_requests/list.jinja2", permission=Permission.VIEW
)
def vm_requests(request: UserRequest) -> dict[str, Any]:
    """The user's own requests and, for admins, those waiting for their decision."""
    service = request.find_service(IVmRequestService)
    return {
        "mine": service.mine(request.identity.user),
        "waiting": service.waiting_for(request.identity),
    }


def _form_page(
    request: FcRequest, pool: Pool, form: dict[str, str], error: str | None
) -> dict[str, Any]:
    service = request.find_service(IVmRequestService)
    return {
        "pool": pool,
        "profiles": request.find_service(IProfileService).allowed(pool),
        "networks": service.guest_networks(pool),
        "form": form,
        "error": error,
    }


@view_config(
    route_name="vm_request_new",
    request_method="GET",
    renderer="vm_requests/new.jinja2",
    permission=Permission.VM_REQUEST,
)
def new_form(context: PoolContext, request: FcRequest) -> Any:
    """The request form of a VM pool."""
    if context.pool.kind != PoolKind.VM:
        return HTTPSeeOther(request.route_url("pool", pool_id=context.pool.id))
    defaults = {"vcpus": "1", "memory_mib": "2048", "storage_gib": "20"}
    return _form_page(request, context.pool, defaults, None)


@view_config(
    route_name="vm_request_new",
    request_method="POST",
    renderer="vm_requests/new.jinja2",
    permission=Permission.VM_REQUEST,
)
def submit(context: PoolContext, request: UserRequest) -> Any:
    """Send a request to the pool's admins; a refusal shows the form again with why."""
    if context.pool.kind != PoolKind.VM:
        request.session.flash("VMs are requested in VM pools.", "danger")
        return HTTPSeeOther(request.route_url("pool", pool_id=context.pool.id))
    form = {k: request.POST.get(k, "")[:2000] for k in FORM_FIELDS}
    try:
        body = {**{k: v for k, v in form.items() if v != ""}, "pool": context.pool.id}
        vm_request = request.find_service(IVmRequestService).submit(
            request.identity.user, VmRequestInput.parse(body)
        )
    except ServiceError as exc:
        request.tm.doom()
        request.response.status = exc.status
        return _form_page(request, context.pool, form, exc.message)
    request.session.flash(
        f"Your request for {vm_request.name} was sent to the admins of {context.pool.name}.",
        "success",
    )
    return HTTPSeeOther(request.route_url("vm_request", request_id=vm_request.id))


@view_config(
    route_name="vm_request", renderer="vm_requests/show.jinja2", permission=Permission.VIEW
)
def show(context: VmRequestContext, request: UserRequest) -> dict[str, Any]:
    """One request: what was asked, its state, why it failed, its tasks."""
    vm_request = context.vm_request
    service = request.find_service(IVmRequestService)
    deciding = may_decide(request, vm_request)
    return {
        "r": vm_request,
        "tasks": service.tasks(vm_request),
        "deciding": deciding,
        "own": vm_request.user_id == request.identity.user.id,
        "pools": target_pools(request, vm_request) if deciding else [],
    }


def _back(request: FcRequest, vm_request: VmRequest) -> Any:
    approver = request.has_permission(Permission.APPROVE_ACCESS, SiteContext(request))
    if request.POST.get("back") == "approvals" and approver:
        return HTTPSeeOther(request.route_url("approvals"))
    return HTTPSeeOther(request.route_url("vm_request", request_id=vm_request.id))


@view_config(
    route_name="vm_request_action",
    match_param="action=approve",
    request_method="POST",
    permission=Permission.VM_CREATE,
)
def approve(context: VmRequestContext, request: FcRequest) -> Any:
    """Approve (with the admin's changes of size or VM pool) and start provisioning."""
    vm_request = context.vm_request
    fields = {
        k: request.POST.get(k, "")
        for k in ("vcpus", "memory_mib", "storage_gib", "pool")
        if request.POST.get(k, "") != ""
    }
    try:
        change = Approval.parse(fields)
        if change.pool_id is not None and change.pool_id != vm_request.pool_id:
            authorized_pool(request, change.pool_id, Permission.VM_CREATE)
        task = request.find_service(IVmRequestService).approve(vm_request, request.identity, change)
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(
            f"Request for {vm_request.name} approved; provisioning (task {task.id}).", "success"
        )
    return _back(request, vm_request)


@view_config(
    route_name="vm_request_action",
    match_param="action=deny",
    request_method="POST",
    permission=Permission.VM_CREATE,
)
def deny(context: VmRequestContext, request: FcRequest) -> Any:
    """Deny, with a reason the requester reads."""
    try:
        request.find_service(IVmRequestService).deny(
            context.vm_request, request.identity, request.POST.get("reason", "")
        )
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(f"Request for {context.vm_request.name} denied.", "success")
    return _back(request, context.vm_request)


@view_config(
    route_name="vm_request_action",
    match_param="action=retry",
    request_method="POST",
    permission=Permission.VM_CREATE,
)
def retry(context: VmRequestContext, request: FcRequest) -> Any:
    """Provision a failed request again."""
    try:
        task = request.find_service(IVmRequestService).retry(context.vm_request)
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(f"Provisioning again (task {task.id}).", "success")
    return _back(request, context.vm_request)


@view_config(
    route_name="vm_request_action",
    match_param="action=withdraw",
    request_method="POST",
    permission=Permission.VIEW,
)
def withdraw(context: VmRequestContext, request: UserRequest) -> Any:
    """The requester takes back a pending request."""
    try:
        request.find_service(IVmRequestService).withdraw(context.vm_request, request.identity.user)
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash("Request withdrawn.", "success")
    return _back(request, context.vm_request)


@subscriber(BeforeRender)
def inbox_globals(event: Any) -> None:
    """The approvals inbox's VM request section reads ``pending_vm_requests()``."""
    request = event.get("request")
    if request is None:
        return
    event["pending_vm_requests"] = lambda: request.find_service(IVmRequestService).waiting_for(
        request.identity
    )


def includeme(config: Any) -> None:
    """The navigation's count of requests waiting for the user's decision."""
    config.add_request_method(vm_requests_waiting, reify=True)
