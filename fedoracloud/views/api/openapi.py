"""``GET /api/v1/openapi.json``: the API's OpenAPI 3.1 document (public, cacheable)."""

from __future__ import annotations

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ...request import FcRequest

#: how long a client or proxy may keep the document without asking again
MAX_AGE = 3600


@view_config(route_name="api_openapi", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def openapi_document(request: FcRequest) -> Response:
    """The merged document, as the app validates against it; ``If-None-Match`` → 304."""
    api = request.registry["openapi"]
    response = Response(
        body=api.json,
        content_type="application/json",
        charset="utf-8",
        conditional_response=True,
    )
    response.etag = api.etag
    response.cache_control = f"public, max-age={MAX_AGE}"
    return response
