"""The gate's pages: asking for access, the approvals inbox, and people's local access."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..models import PoolKind
from ..permissions import Permission, Role
from ..request import FcRequest, UserRequest
from ..resources import AccessRequestContext, UserContext
from ..services import ServiceError
from ..services.access import IAccessService
from ..services.pools import IPoolService
from ..services.users import UserQuery, search_users
from . import Page, authorized_pool, page_number, refused


@view_config(
    route_name="access",
    request_method="GET",
    renderer="access/request.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def access_page(request: FcRequest) -> Any:
    """Why someone is not let in, and the form to ask."""
    identity = request.identity
    if identity is None:
        return HTTPSeeOther(request.route_url("login"))
    if identity.has_access:
        return HTTPSeeOther(request.route_url("pools"))
    memberships = {m.group_name: m for m in identity.user.memberships}
    return {
        "why": identity.why,
        "group": request.fc_settings.access_group,
        "membership": memberships.get(request.fc_settings.access_group),
        "latest": request.find_service(IAccessService).latest_request(identity.user),
        "reason": "",
        "error": None,
    }


@view_config(
    route_name="access",
    request_method="POST",
    renderer="access/request.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def request_access(request: FcRequest) -> Any:
    """Send an access request to the administrators."""
    identity = request.identity
    if identity is None:
        return HTTPSeeOther(request.route_url("login"))
    service = request.find_service(IAccessService)
    try:
        service.request_access(identity.user, request.POST.get("reason", ""))
    except ServiceError as exc:
        request.response.status = exc.status
        page = access_page(request)
        return {**page, "reason": request.POST.get("reason", "")[:2000], "error": exc.message}
    request.session.flash("Your request was sent to the administrators.", "success")
    return HTTPSeeOther(request.route_url("access"))


@view_config(
    route_name="approvals", renderer="access/approvals.jinja2", permission=Permission.APPROVE_ACCESS
)
def approvals(request: FcRequest) -> dict[str, Any]:
    """The approvals inbox: people asking for access."""
    pools = request.find_service(IPoolService)
    service = request.find_service(IAccessService)
    requests = service.pending_requests()
    return {
        "requests": requests,
        "users": service.requesters(requests),
        "pools": [
            p
            for p in pools.subtree(pools.root())
            if p.kind in (PoolKind.DIRECTORY, PoolKind.HARDWARE, PoolKind.VM)
        ],
        "roles": [r.value for r in Role if r is not Role.SUPER_ADMIN],
        "name_path": pools.name_path,
    }


@view_config(
    route_name="access_approve", request_method="POST", permission=Permission.APPROVE_ACCESS
)
def approve(context: AccessRequestContext, request: FcRequest) -> Any:
    """Let someone in with a first role on a pool."""
    try:
        raw = request.POST.get("pool", "")
        pool = authorized_pool(
            request, int(raw) if raw.isdecimal() and len(raw) < 18 else None, Permission.SET_PERMS
        )
        request.find_service(IAccessService).approve(
            context.access_request, pool, request.POST.get("role", ""), request.identity
        )
        request.session.flash("Access approved.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("approvals"))


@view_config(route_name="access_deny", request_method="POST", permission=Permission.APPROVE_ACCESS)
def deny(context: AccessRequestContext, request: FcRequest) -> Any:
    """Refuse an access request, with a reason the person will read."""
    try:
        request.find_service(IAccessService).deny(
            context.access_request, request.POST.get("reason", ""), request.identity
        )
        request.session.flash("Access denied.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return HTTPSeeOther(request.route_url("approvals"))


@view_config(
    route_name="users", renderer="access/users.jinja2", permission=Permission.APPROVE_ACCESS
)
def people(request: FcRequest) -> dict[str, Any]:
    """Everyone FedoraCloud knows, with why they get in (or not): searched, sorted, paged."""
    service = request.find_service(IAccessService)
    sort = request.GET.get("sort", "username")
    query = UserQuery(
        q=request.GET.get("q", "").strip(),
        sort=sort.removeprefix("-"),
        descending=sort.startswith("-"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
    )
    users, total = search_users(request.dbsession, query)
    return {
        "people": [(u, service.gate(u)) for u in users],
        "page": Page(users, total, query.page, query.per_page, request),
        "query": query,
    }


@view_config(route_name="user_access", request_method="POST", permission=Permission.APPROVE_ACCESS)
def set_local_access(context: UserContext, request: UserRequest) -> Any:
    """Give or take back someone's local access (the audited override)."""
    allowed = request.POST.get("allowed") == "1"
    if context.user.id == request.identity.user.id:
        request.session.flash("You cannot change your own access.", "danger")
    else:
        request.find_service(IAccessService).set_local_access(context.user, allowed)
        request.session.flash(
            f"{context.user.username} {'may now' if allowed else 'may no longer'} log in.",
            "success",
        )
    return HTTPSeeOther(request.route_url("users"))
