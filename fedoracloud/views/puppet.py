"""Puppet's external node classifier over HTTP, for a puppetserver that asks the app.

``GET /puppet/enc/{certname}`` answers the same YAML as ``fedoracloud enc CERTNAME``.  It is
not for people: it takes no login, only the bearer token of ``fedoracloud.enc.token``
(compared in constant time); without that setting the endpoint is off (404).
"""

from __future__ import annotations

import hmac

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..puppet.enc import IEncService
from ..request import FcRequest
from ..services import NotFound, ServiceError
from ..settings import ConfigError

YAML_TYPE = "application/yaml"


def _text(status: int, message: str, **headers: str) -> Response:
    return Response(
        message + "\n", status=status, content_type="text/plain", charset="utf-8", headers=headers
    )


def enc_token_ok(request: FcRequest, token: str) -> bool:
    """True if the request carries ``Authorization: Bearer <token>``."""
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@view_config(route_name="puppet_enc", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def puppet_enc(request: FcRequest) -> Response:
    """A certname's node document as YAML; 401 without the token, 404 for an unknown node."""
    settings = request.fc_settings.puppet
    if not settings.enc_token:
        return _text(404, "The HTTP ENC is off: set fedoracloud.enc.token to turn it on.")
    if not enc_token_ok(request, settings.enc_token):
        return _text(
            401,
            "Send the ENC token as 'Authorization: Bearer ...'.",
            **{"WWW-Authenticate": 'Bearer realm="fedoracloud-enc"'},
        )
    try:
        node = request.find_service(IEncService).classify(request.matchdict["certname"])
    except NotFound as exc:
        return _text(404, exc.message)
    except ServiceError as exc:
        status = 404 if exc.details.get("field") == "certname" else exc.status
        return _text(status, exc.message)
    except ConfigError as exc:
        return _text(503, f"The ENC cannot classify nodes until its settings are fixed: {exc}")
    return Response(node.to_yaml(), content_type=YAML_TYPE, charset="utf-8")
