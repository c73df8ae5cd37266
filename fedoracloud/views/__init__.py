"""Thin views: parse input, call a service, render.  The JSON API lives in ``views.api``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPNotFound
from pyramid.renderers import JSON, render_to_response

from ..models import Pool
from ..permissions import Permission
from ..request import FcRequest
from ..resources import ID_MAX, PoolContext, SiteContext
from ..services import NotFound, ServiceError
from ..services.approvals import IApprovalsService
from ..services.pools import IPoolService
from ..services.smart_pools import ISmartPoolService


@dataclass
class Page:
    """One page of a list, with the links a template or an API answer needs.  A list that
    pages by cursor gives the next page's (``after``): its next link carries it, which
    costs the same however deep the page."""

    items: list[Any]
    total: int
    number: int
    per_page: int
    request: FcRequest
    after: str | None = None

    @property
    def count(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def url(self, number: int, after: str | None = None) -> str:
        params = {k: v for k, v in self.request.GET.items() if k not in ("page", "after")}
        if after is not None:
            params["after"] = after
        params["page"] = str(number)
        return f"{self.request.path_url}?{urlencode(params)}"

    @property
    def next_url(self) -> str | None:
        if self.after is not None:
            return self.url(self.number + 1, self.after)
        return self.url(self.number + 1) if self.number < self.count else None

    @property
    def previous_url(self) -> str | None:
        return self.url(self.number - 1) if self.number > 1 else None


def safe_target(target: str, default: str) -> str:
    """Where a redirect named by the user (``next``) may go: ``target`` if it is a path on
    this site that a Location header can carry, else ``default``.  Every redirect to a
    user-given target goes through here."""
    # no scheme, no host, no protocol-relative // (nor /\, which browsers read as //);
    # only printable ASCII, a URL's own alphabet: a browser drops tabs and newlines, so
    # "/\t/evil.example" would become "//evil.example", and a header cannot hold them
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(" " < c < "\x7f" for c in target)
    ):
        return target
    return default


def page_number(request: FcRequest) -> int:
    """The ``page`` query parameter (1 if absent); 0 for nonsense, which services refuse."""
    raw = request.GET.get("page", "1")
    return int(raw) if raw.isdecimal() and len(raw) < 7 else 0


def sort_url(request: FcRequest, column: str) -> str:
    """The list's URL sorted by a column, toggling the direction if already sorted by it."""
    current = request.GET.get("sort", "")
    params = {k: v for k, v in request.GET.items() if k not in ("sort", "page")}
    params["sort"] = f"-{column}" if current == column else column
    return f"{request.path_url}?{urlencode(params)}"


class NotAllowed(ServiceError):
    """The user sees the pool but holds no role that allows this there."""

    status = 403
    code = "forbidden"


def refused(request: FcRequest, exc: ServiceError) -> None:
    """A form was refused: nothing it changed is kept, and the page says why."""
    request.tm.doom()
    request.session.flash(exc.message, "danger")


def form_refused_page(
    request: FcRequest, exc: ServiceError, renderer: str, values: dict[str, Any], form: str
) -> Any:
    """A refused form shown again on its page: nothing it changed is kept, the answer has
    the refusal's status, and the page shows the reason beside the form (``form_error``,
    ``form_error_field``) with what was typed (``form_values``) under ``form``."""
    request.tm.doom()
    response = render_to_response(
        renderer,
        {
            **values,
            "form_name": form,
            "form_error": exc.message,
            "form_error_field": (exc.details or {}).get("field", ""),
            "form_values": {k: v[:2000] for k, v in request.POST.items() if k != "csrf_token"},
        },
        request=request,
    )
    response.status = exc.status
    return response


def authorized_pool(request: FcRequest, pool_id: int | None, permission: Permission) -> Pool:
    """A pool named in a form or body, if the user may act there: 404 if they cannot see it,
    403 (NotAllowed) if they see it without the permission."""
    if pool_id is None or not 0 < pool_id <= ID_MAX:  # a larger id names nothing
        raise HTTPNotFound()
    try:
        pool = request.find_service(IPoolService).get(pool_id)
    except NotFound:
        raise HTTPNotFound() from None
    if not request.has_permission(Permission.VIEW, PoolContext(pool)):
        raise HTTPNotFound()
    if not request.has_permission(permission, PoolContext(pool)):
        raise NotAllowed(f"you may not do that in pool {pool.name!r}")
    return pool


def includeme(config: Any) -> None:
    """Jinja2 templates, their globals, and a JSON renderer that knows datetimes."""
    config.add_jinja2_search_path("fedoracloud:templates")
    json_renderer = JSON()
    json_renderer.add_adapter(datetime, lambda obj, request: obj.isoformat())
    config.add_renderer("json", json_renderer)

    def add_globals(event: Any) -> None:
        event["sort_url"] = sort_url
        event["pool_trail"] = pool_trail

    config.add_subscriber(add_globals, "pyramid.events.BeforeRender")
    config.add_request_method(may_approve_access, reify=True)
    config.add_request_method(pending_approvals, reify=True)
    config.add_request_method(smart_pool_shortcuts, reify=True)
    config.include(".vm_requests")


def pool_trail(request: FcRequest, pool: Pool, last: bool = True) -> list[tuple[str, str]]:
    """Breadcrumbs down the pool tree: the pool list, then the pool's ancestors the user
    may view, then the pool itself (``last=False`` leaves it out), as (label, URL) pairs."""
    trail = [("Pools", str(request.route_url("pools")))]
    chain = [*request.find_service(IPoolService).ancestors(pool), pool]
    for p in chain if last else chain[:-1]:
        if request.has_permission(Permission.VIEW, PoolContext(p)):
            trail.append((p.name, str(request.route_url("pool", pool_id=p.id))))
    return trail


def may_approve_access(request: FcRequest) -> bool:
    """Whether the user decides access requests and manages people (the navigation's
    Approvals and People), asked once per request."""
    return bool(request.has_permission(Permission.APPROVE_ACCESS, SiteContext(request)))


def pending_approvals(request: FcRequest) -> int:
    """How many requests wait in the approvals inbox, for the navigation: asked once per
    request (reified), and only for a super admin (nobody else has the inbox)."""
    if not request.may_approve_access:
        return 0
    count: int = request.find_service(IApprovalsService).pending_count()
    return count


def smart_pool_shortcuts(request: FcRequest) -> list[Pool]:
    """The logged-in user's smart pools, for the menu at the bottom left."""
    identity = request.identity
    if identity is None:
        return []
    return request.find_service(ISmartPoolService).list_for(identity.user)
