"""Logging in and out with the password backend."""

from __future__ import annotations

from typing import Any

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED, forget, remember
from pyramid.view import view_config

from ..auth import BackendUnavailable, LoginFailed, Person
from ..request import FcRequest
from ..services.access import IAccessService
from ..services.throttle import IThrottleService, Throttled, count_failure
from . import safe_target


def _safe_next(request: FcRequest, target: str | None = None) -> str:
    """Where to go after logging in: a path on this site, else the pool tree."""
    if target is None:
        target = request.params.get("next", "")
    return safe_target(target, request.route_url("pools"))


@view_config(
    route_name="login",
    request_method="GET",
    renderer="auth/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login_form(request: FcRequest) -> Any:
    """The login page."""
    if request.identity is not None:
        return HTTPSeeOther(_safe_next(request))
    if request.fc_settings.auth_backend == "oidc":
        return begin_oidc(request)
    return {"next": _safe_next(request), "username": "", "error": None}


def begin_oidc(request: FcRequest) -> Any:
    """Send the browser to the OpenID provider (Fedora Accounts)."""
    backend = request.registry["auth_backend"]
    try:
        url, pending = backend.begin(request.route_url("oidc_callback"))
    except LoginFailed as exc:
        return login_problem(request, str(exc))
    request.session["oidc"] = {**pending, "next": _safe_next(request)}
    return HTTPSeeOther(url)


def login_problem(request: FcRequest, message: str, status: int = 503) -> Any:
    """Say what went wrong with a login through the provider, without a password form."""
    request.response.status = status
    request.override_renderer = "auth/problem.jinja2"
    return {"error": message}


@view_config(
    route_name="oidc_callback",
    request_method="GET",
    renderer="auth/problem.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def oidc_callback(request: FcRequest) -> Any:
    """The provider sent the browser back: check everything, then start the session."""
    pending = request.session.pop("oidc", None)
    if request.fc_settings.auth_backend != "oidc":
        raise HTTPNotFound()
    if not isinstance(pending, dict):
        return login_problem(request, "This login link has expired; please log in again.", 400)
    try:
        person, tokens = request.registry["auth_backend"].complete(
            dict(request.GET.items()), pending
        )
    except BackendUnavailable as exc:
        return login_problem(request, str(exc))
    except LoginFailed as exc:
        return login_problem(request, str(exc), 400)
    return start_session(request, person, tokens, str(pending.get("next", "")))


@view_config(
    route_name="login",
    request_method="POST",
    renderer="auth/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def login(request: FcRequest) -> Any:
    """Check the password; on success start a fresh session."""
    username = request.POST.get("username", "").strip()
    password = request.POST.get("password", "")
    backend = request.registry["auth_backend"]
    throttle = request.find_service(IThrottleService)
    page = {"next": _safe_next(request), "username": username[:64]}
    try:
        # a throttled account or address is refused before its password is looked at
        throttle.check(username[:64])
    except Throttled as exc:
        request.response.status = 429
        request.response.headers["Retry-After"] = str(exc.details["retry_after"])
        return {**page, "error": f"Too many failed logins: {exc.message}."}
    try:
        person = backend.authenticate(username, password)
    except BackendUnavailable as exc:
        request.response.status = 503
        return {**page, "error": str(exc)}
    if person is None:
        count_failure(request, "login", username[:64])
        request.response.status = 400
        return {**page, "error": "Wrong username or password."}
    throttle.succeeded("login", username[:64])
    return start_session(request, person)


def start_session(
    request: FcRequest, person: Person, provider_tokens: Any = None, next_target: str | None = None
) -> HTTPSeeOther:
    """After any backend said who this is: record the login and go where they were going."""
    settings = request.fc_settings
    _user, token = request.find_service(IAccessService).start_session(
        person, settings.auth_backend, request.user_agent or "", provider_tokens
    )
    headers = remember(request, token)
    new_csrf_token(request)
    return HTTPSeeOther(_safe_next(request, next_target), headers=headers)


@view_config(route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request: FcRequest) -> Any:
    """End the session."""
    headers = forget(request)
    request.session.flash("You are logged out.", "info")
    return HTTPSeeOther(request.route_url("login"), headers=headers)
