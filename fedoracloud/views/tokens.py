"""The API tokens page: list your tokens, make one (its secret shown once), revoke one."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..permissions import Permission
from ..request import FcRequest, UserRequest
from ..resources import OwnedContext
from ..services import ServiceError
from ..services.tokens import ITokenService
from . import Page, page_number


def form_refused(request: FcRequest, exc: ServiceError, values: dict[str, Any]) -> dict[str, Any]:
    """A refused form is shown again with the reason, a 4xx status and nothing written."""
    request.tm.doom()
    request.response.status = exc.status
    return {**values, "error": exc.message}


@view_config(
    route_name="tokens",
    request_method="GET",
    renderer="tokens/list.jinja2",
    permission=Permission.VIEW,
)
def token_list(request: UserRequest) -> dict[str, Any]:
    """Your tokens: name, prefix, when made, last used, revoked; filtered, sorted, paged."""
    return {**token_page(request), "created": None, "error": None, "name": ""}


def token_page(request: UserRequest) -> dict[str, Any]:
    """The list part of the tokens page, from the query string (``status``, ``sort``,
    ``page``)."""
    sort = request.GET.get("sort", "-created")
    status = request.GET.get("status", "")
    number = page_number(request)
    per_page = request.fc_settings.page_size
    tokens, total = request.find_service(ITokenService).search(
        request.identity.user,
        status=status,
        sort=sort.removeprefix("-"),
        descending=sort.startswith("-"),
        page=number,
        per_page=per_page,
    )
    return {
        "tokens": tokens,
        "page": Page(tokens, total, number, per_page, request),
        "status": status,
    }


@view_config(
    route_name="tokens",
    request_method="POST",
    renderer="tokens/list.jinja2",
    permission=Permission.VIEW,
)
def token_create(request: UserRequest) -> dict[str, Any]:
    """Make a token and show its secret on this answer only (never in the cookie session)."""
    service, user = request.find_service(ITokenService), request.identity.user
    name = request.POST.get("name", "")
    try:
        created = service.create(user, name, via_token=request.identity.via_token)
    except ServiceError as exc:
        values = {**token_page(request), "created": None, "name": name[:64]}
        return form_refused(request, exc, values)
    request.response.cache_control = "no-store"
    return {**token_page(request), "created": created, "error": None, "name": ""}


@view_config(route_name="token_revoke", request_method="POST", permission=Permission.VIEW)
def token_revoke(context: OwnedContext, request: FcRequest) -> Any:
    """Revoke one of your tokens: calls made with it are refused from now on."""
    token = request.find_service(ITokenService).revoke(context.obj)
    request.session.flash(f"Token {token.name} revoked.", "success")
    return HTTPSeeOther(request.route_url("tokens"))
