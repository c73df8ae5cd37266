"""Logging in and out with the password backend."""

from __future__ import annotations

from typing import Any

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config

from ..auth import LoginFailed, Person
from ..services.access import AccessService


def _safe_next(request: Any) -> str:
    target = request.params.get("next", "")
    # only paths on this site: no scheme, no host, no protocol-relative //
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return request.route_url("pools")


@view_config(
    route_name="login",
    request_method="GET",
    renderer="auth/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login_form(request: Any) -> Any:
    """The login page."""
    if request.identity is not None:
        return HTTPSeeOther(_safe_next(request))
    return {"next": _safe_next(request), "username": "", "error": None}


@view_config(
    route_name="login",
    request_method="POST",
    renderer="auth/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login(request: Any) -> Any:
    """Check the password; on success start a fresh session."""
    username = request.POST.get("username", "").strip()
    password = request.POST.get("password", "")
    backend = request.registry["auth_backend"]
    try:
        person = backend.authenticate(username, password)
    except LoginFailed as exc:
        request.response.status = 503
        return {"next": _safe_next(request), "username": username[:64], "error": str(exc)}
    if person is None:
        request.response.status = 400
        return {
            "next": _safe_next(request),
            "username": username[:64],
            "error": "Wrong username or password.",
        }
    return start_session(request, person)


def start_session(request: Any, person: Person, provider_tokens: Any = None) -> HTTPSeeOther:
    """After any backend said who this is: record the login and go where they were going."""
    settings = request.fc_settings
    _user, token = AccessService(
        request.dbsession, settings, None, request.client_addr or ""
    ).start_session(person, settings.auth_backend, request.user_agent or "", provider_tokens)
    headers = remember(request, token)
    new_csrf_token(request)
    return HTTPSeeOther(_safe_next(request), headers=headers)


@view_config(route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request: Any) -> Any:
    """End the session."""
    headers = forget(request)
    request.session.flash("You are logged out.", "info")
    return HTTPSeeOther(request.route_url("login"), headers=headers)
