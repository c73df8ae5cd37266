"""``/api/v1/tokens``: list your API tokens, make one (its secret is in that answer only),
read or revoke one."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import ApiToken
from ...permissions import Permission
from ...request import FcRequest, UserRequest
from ...resources import OwnedContext
from ...services import InvalidInput
from ...services.tokens import ITokenService
from . import json_body, str_field


def token_json(token: ApiToken, request: FcRequest) -> dict[str, Any]:
    """A token as the API shows it (never its secret or hash)."""
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "url": request.route_url("api_token", token_id=token.id),
    }


@view_config(
    route_name="api_tokens", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_tokens(request: UserRequest) -> dict[str, Any]:
    """Your tokens, newest first."""
    tokens = request.find_service(ITokenService).list_for(request.identity.user)
    return {"items": [token_json(t, request) for t in tokens], "next": None, "total": len(tokens)}


@view_config(
    route_name="api_tokens", request_method="POST", renderer="json", permission=Permission.VIEW
)
def create_token(request: UserRequest) -> dict[str, Any]:
    """Make a token: ``{"name"}`` → 201 with ``"token"``, the secret, shown this once."""
    body = json_body(request)
    unknown = set(body) - {"name"}
    if unknown:
        raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
    identity = request.identity
    created = request.find_service(ITokenService).create(
        identity.user, str_field(body, "name") or "", via_token=identity.via_token
    )
    request.response.status = 201
    request.response.cache_control = "no-store"
    return {**token_json(created.token, request), "token": created.secret}


@view_config(
    route_name="api_token", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_token(context: OwnedContext, request: FcRequest) -> dict[str, Any]:
    """One of your tokens."""
    return token_json(context.obj, request)


@view_config(
    route_name="api_token", request_method="DELETE", renderer="json", permission=Permission.VIEW
)
def revoke_token(context: OwnedContext, request: FcRequest) -> Any:
    """Revoke one of your tokens (204; revoking it again is harmless)."""
    request.find_service(ITokenService).revoke(context.obj)
    request.response.status = 204
    return request.response
