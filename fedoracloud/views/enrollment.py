"""Pages for node enrollment: "Add a host" (a one-time token and the node's command, shown
once), approving or rejecting a host from its page or the approvals inbox."""

from __future__ import annotations

from typing import Any

from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import Host, Pool, PoolKind
from ..permissions import Permission
from ..request import FcRequest
from ..resources import HostContext, PoolContext, SiteContext
from ..services import NotFound, ServiceError
from ..services.enrollment import IEnrollmentService, host_certificate
from ..services.pools import IPoolService
from . import authorized_pool, refused


def approvable_pools(request: FcRequest) -> list[tuple[Pool, str]]:
    """Hardware pools where the user may approve hosts, with their name paths."""
    if request.identity is None:
        return []
    pools = request.find_service(IPoolService)
    try:
        root = pools.root()
    except NotFound:  # an empty pool tree (before initdb): nowhere to approve hosts
        return []
    subtree = pools.subtree(root, request.identity.visible_pools())
    names = {p.id: p.name for p in subtree}  # one query: paths from the subtree itself
    return [
        (p, "/".join(names[i] for i in p.ancestor_ids if i in names))
        for p in subtree
        if p.kind == PoolKind.HARDWARE
        and request.has_permission(Permission.HOST_APPROVE, PoolContext(p))
    ]


def may_add_hosts(request: FcRequest) -> bool:
    """Whether the user may add a host somewhere (the Add a host button): HOST_ADD, and a
    pool tree to add it to (before initdb there is none)."""
    if not request.has_permission(Permission.HOST_ADD, SiteContext(request)):
        return False
    try:
        request.find_service(IPoolService).root()
    except NotFound:
        return False
    return True


def _pool_field(request: FcRequest) -> Pool | None:
    raw = request.POST.get("pool", "")
    if not raw:
        return None
    return authorized_pool(
        request, int(raw) if raw.isdecimal() and len(raw) < 18 else None, Permission.HOST_APPROVE
    )


@subscriber(BeforeRender)
def enrollment_globals(event: Any) -> None:
    """Give templates the pending hosts and approvable pools, computed only when used."""
    request = event.get("request")
    if request is None:
        return
    event["pending_hosts"] = lambda: request.find_service(IEnrollmentService).pending_hosts(
        request.identity.visible_pools()
    )
    event["approvable_pools"] = lambda: approvable_pools(request)
    event["may_add_hosts"] = lambda: may_add_hosts(request)
    event["host_certificate"] = lambda host: host_certificate(request.dbsession, host)
    event["may_approve"] = lambda host: request.has_permission(
        Permission.HOST_APPROVE, HostContext(host)
    )


@view_config(
    route_name="host_add",
    request_method="GET",
    renderer="enrollment/add.jinja2",
    permission=Permission.VIEW,
)
def add_host_form(request: FcRequest) -> dict[str, Any]:
    """The "Add a host" form: pool, optional host name binding, lifetime."""
    return {"pools": approvable_pools(request), "issued": None, "form": {}}


@view_config(
    route_name="host_add",
    request_method="POST",
    renderer="enrollment/add.jinja2",
    permission=Permission.VIEW,
)
def add_host(request: FcRequest) -> Any:
    """Issue a one-time enrollment token and show the node's command, once."""
    form = {k: request.POST.get(k, "")[:253] for k in ("pool", "hostname", "expires")}
    try:
        pool = _pool_field(request)
        if pool is None:
            pool = authorized_pool(
                request,
                request.find_service(IPoolService)
                .by_path_names(
                    request.find_service(IEnrollmentService).config.default_pool,
                )
                .id,
                Permission.HOST_APPROVE,
            )
        issued = request.find_service(IEnrollmentService).issue_token(
            pool,
            form["hostname"].strip() or None,
            form["expires"].strip() or "1h",
            request.find_service(IEnrollmentService).config.server_url or request.application_url,
        )
    except ServiceError as exc:
        request.tm.doom()
        request.response.status = exc.status
        pools = approvable_pools(request)
        return {"pools": pools, "issued": None, "form": form, "error": exc.message}
    request.response.cache_control = "no-store"  # the token is shown once, never cached
    return {"pools": approvable_pools(request), "issued": issued, "form": form}


def _back(request: FcRequest, host: Host) -> Any:
    if request.POST.get("back") == "approvals":
        return HTTPSeeOther(request.route_url("approvals"))
    return HTTPSeeOther(request.route_url("host", host_id=host.id))


@view_config(route_name="host_approve", request_method="POST", permission=Permission.HOST_APPROVE)
def approve_host(context: HostContext, request: FcRequest) -> Any:
    """Approve a pending host, in the hardware pool chosen (or where it is)."""
    try:
        request.find_service(IEnrollmentService).approve(context.host, _pool_field(request))
        request.session.flash(f"{context.host.hostname} approved.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return _back(request, context.host)


@view_config(route_name="host_reject", request_method="POST", permission=Permission.HOST_APPROVE)
def reject_host(context: HostContext, request: FcRequest) -> Any:
    """Reject a host with a reason; its certificates are revoked."""
    try:
        request.find_service(IEnrollmentService).reject(
            context.host, request.POST.get("reason", "")
        )
        request.session.flash(f"{context.host.hostname} rejected.", "success")
    except ServiceError as exc:
        refused(request, exc)
    return _back(request, context.host)
