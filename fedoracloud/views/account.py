"""The account page: who you are, your groups, your roles pool by pool, and your things."""

from __future__ import annotations

from typing import Any

from pyramid.interfaces import IRoutesMapper
from pyramid.view import view_config

from ..permissions import Permission
from ..request import UserRequest
from ..services.account import IAccountService

#: the account page's links to your own things: (label, route, query); a route another
#: part has not registered is left out
OWN_THINGS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("Your API tokens", "tokens", {}),
    ("Your VM requests", "vm_requests", {"mine": "1"}),
    ("Tasks you asked for", "tasks", {"mine": "1"}),
    ("Your smart pools", "smart_pools", {}),
)


@view_config(route_name="account", renderer="account/show.jinja2", permission=Permission.VIEW)
def account(request: UserRequest) -> dict[str, Any]:
    """Who am I, my groups, my roles per pool, links to my tokens, requests and tasks."""
    identity = request.identity
    mapper = request.registry.getUtility(IRoutesMapper)
    links = [
        (label, request.route_url(route, _query=query))
        for label, route, query in OWN_THINGS
        if mapper.get_route(route) is not None
    ]
    links.append(
        (
            "What you did (audit log)",
            request.route_url("audit", _query={"user": identity.user.username}),
        )
    )
    return {
        "identity": identity,
        "summary": request.find_service(IAccountService).summary(identity),
        "links": links,
    }
