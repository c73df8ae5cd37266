"""Errors: anonymous → login (or 401 for the API), not allowed to view → 404, refusals → 4xx."""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config

from ..permissions import Permission
from ..request import FcRequest
from ..security import InvalidBearerToken, bearer_token
from ..services import ServiceError


def is_api(request: FcRequest) -> bool:
    """True for the JSON API."""
    return request.path.startswith("/api/")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one shape of every API error."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _render(
    request: FcRequest, status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Any:
    request.response.status = status
    if is_api(request):
        request.override_renderer = "json"
        return error_body(code, message, details)
    request.override_renderer = "error.jinja2"
    return {"status": status, "message": message}


def log_in_first(request: FcRequest) -> Any:
    """Anonymous: the API says 401; a page sends to the login form, coming back after it
    (only for a GET: a form's URL has nothing to show)."""
    if is_api(request):
        throttled = getattr(request, "auth_throttled", None)
        if throttled is not None:
            return refused(throttled, request)
        if bearer_token(request) is None:
            request.response.headers["WWW-Authenticate"] = 'Bearer realm="fedoracloud"'
            message = "Log in, or send an API token as 'Authorization: Bearer ...'."
        else:
            request.response.headers["WWW-Authenticate"] = (
                'Bearer realm="fedoracloud", error="invalid_token"'
            )
            message = "The API token is unknown, revoked or expired, or its owner may not log in."
        return _render(request, 401, "unauthorized", message)
    query = {"next": request.path_qs} if request.method == "GET" else {}
    return HTTPSeeOther(request.route_url("login", _query=query))


def ask_for_access(request: FcRequest) -> Any:
    """Logged in but not let in by the gate: the API says so, a page offers the request form."""
    if is_api(request):
        why = request.identity.why if request.identity is not None else "not logged in"
        return _render(request, 403, "no_access", f"You may not use FedoraCloud: {why}.")
    return HTTPSeeOther(request.route_url("access"))


@notfound_view_config(renderer="error.jinja2")
def not_found(request: FcRequest) -> Any:
    """404, for what does not exist and for what the user may not see.

    Anonymous callers are asked to log in instead, so that nobody learns which ids exist
    before logging in."""
    if request.identity is None:
        return log_in_first(request)
    if not request.identity.has_access:
        return ask_for_access(request)
    return _render(request, 404, "not_found", "There is nothing here, or you may not see it.")


@forbidden_view_config(renderer="error.jinja2")
def forbidden(exc: Any, request: FcRequest) -> Any:
    """Not logged in → login; cannot even view the object → 404; else 403."""
    if request.identity is None:
        return log_in_first(request)
    if not request.identity.has_access:
        return ask_for_access(request)
    if not request.has_permission(Permission.VIEW, request.context):
        return not_found(request)
    return _render(request, 403, "forbidden", "You may not do that here.")


@exception_view_config(InvalidBearerToken, renderer="error.jinja2")
def invalid_bearer_token(exc: InvalidBearerToken, request: FcRequest) -> Any:
    """A change sent with an API token that authenticates nobody: 401 (the API) or the
    login form, never the cookie session's user."""
    return log_in_first(request)


@exception_view_config(BadCSRFToken, renderer="error.jinja2")
def bad_csrf(exc: Any, request: FcRequest) -> Any:
    """A form or API call without the session's CSRF token."""
    return _render(
        request,
        400,
        "bad_csrf",
        "The form was stale or did not come from this site; reload and try again.",
    )


@exception_view_config(ServiceError, renderer="error.jinja2")
def refused(exc: ServiceError, request: FcRequest) -> Any:
    """A service refused: say why (and, for a refusal that passes, when to try again)."""
    if "retry_after" in exc.details:
        request.response.headers["Retry-After"] = str(exc.details["retry_after"])
    return _render(request, exc.status, exc.code, exc.message, exc.details)


#: seconds a client is asked to wait when the database does not answer
RETRY_AFTER = 5
DATABASE_DOWN = (
    "The database is not reachable right now (it may be restarting); your request was not"
    f" carried out. Try again in {RETRY_AFTER} seconds."
)


@exception_view_config(sqlalchemy.exc.OperationalError)
@exception_view_config(sqlalchemy.exc.InterfaceError)
@exception_view_config(sqlalchemy.exc.TimeoutError)
def database_unavailable(exc: Exception, request: FcRequest) -> Any:
    """The database is down, restarting or out of connections (its transaction is rolled
    back; a serialization failure was retried first by pyramid_retry): 503 with a message
    and Retry-After, never a traceback.  The page reads nothing from the database."""
    if is_api(request):
        response = Response(
            json_body=error_body("database_unavailable", DATABASE_DOWN),
            status=503,
            content_type="application/json",
        )
    else:
        page = render(
            "unavailable.jinja2", {"message": DATABASE_DOWN, "retry_after": RETRY_AFTER}, request
        )
        response = Response(page, status=503, content_type="text/html", charset="utf-8")
    # added to the response's own headers: a ``headers=`` argument would replace them all,
    # Content-Type included
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.cache_control = "no-store"
    return response
