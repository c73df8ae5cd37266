"""The compiled request check (fedoracloud.openapi.compiled): it lets through only what
openapi-core accepts too, and leaves everything else to openapi-core to word."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pyramid.request import Request

from fedoracloud import openapi
from fedoracloud.openapi.compiled import operation_check
from fedoracloud.openapi.validation import (
    OpenApiRequest,
    _validators,
    request_problems,
    spec_path,
)


def make(
    method: str,
    url: str,
    pattern: str,
    matchdict: dict[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> Request:
    request = Request.blank(url, method=method)
    if body is not None:
        request.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.content_type = content_type
    request.matched_route = SimpleNamespace(pattern=pattern)
    request.matchdict = matchdict or {}
    return request


def openapi_core_accepts(api: Any, request: Request, pattern: str) -> bool:
    """What openapi-core alone says of the request (the slow way)."""
    parameters, body = _validators(api)
    adapter = OpenApiRequest(request, pattern)
    errors = list(parameters.iter_errors(adapter))
    if request.body or request.method == "POST":
        try:
            errors += list(body.iter_errors(adapter))
        except RecursionError:
            return False
    return not errors


POOL = {"name": "qa", "kind": "hardware", "parent": 3}
CASES = [
    # (passes the compiled check, request)
    (True, ("GET", "/api/v1/vms", "/api/v1/vms")),
    (True, ("GET", "/api/v1/vms?q=web&sort=-vcpus&page=3&after=abc", "/api/v1/vms")),
    (True, ("GET", "/api/v1/vms?sort=", "/api/v1/vms")),  # empty: as if absent
    (False, ("GET", "/api/v1/vms?sort=name&sort=state", "/api/v1/vms")),
    (True, ("GET", "/api/v1/vms/12", "/api/v1/vms/{vm_id}", {"vm_id": "12"})),
    (False, ("GET", "/api/v1/vms/x", "/api/v1/vms/{vm_id}", {"vm_id": "x"})),
    (False, ("GET", "/api/v1/vms/-1", "/api/v1/vms/{vm_id}", {"vm_id": "-1"})),
    (False, ("GET", "/api/v1/vms/1", "/api/v1/vms/{vm_id}", {"vm_id": "9" * 12})),
    (False, ("GET", "/api/v1/vms/1", "/api/v1/vms/{vm_id}", {"vm_id": "\u0663"})),
    (
        True,
        (
            "GET",
            "/api/v1/hosts/1/graphs/cpu?range=1d",
            "/api/v1/hosts/{host_id}/graphs/{graph}",
            {"host_id": "1", "graph": "cpu"},
        ),
    ),
    (
        False,
        (
            "GET",
            "/api/v1/hosts/1/graphs/cpu?range=5y",
            "/api/v1/hosts/{host_id}/graphs/{graph}",
            {"host_id": "1", "graph": "cpu"},
        ),
    ),
    (
        False,
        (
            "GET",
            "/api/v1/hosts/1/graphs/disk",
            "/api/v1/hosts/{host_id}/graphs/{graph}",
            {"host_id": "1", "graph": "disk"},
        ),
    ),
    (True, ("POST", "/api/v1/pools", "/api/v1/pools", None, POOL)),
    (True, ("POST", "/api/v1/pools", "/api/v1/pools", None, {**POOL, "description": None})),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, {**POOL, "name": 5})),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, {**POOL, "colour": "red"})),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, {"name": "qa"})),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, [POOL])),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, b"{not json")),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, b"[" * 5000)),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools", None, POOL, "text/plain")),
    (False, ("POST", "/api/v1/pools", "/api/v1/pools")),  # no body, one is required
]


@pytest.mark.parametrize(("passes", "call"), CASES)
def test_the_compiled_check_passes_only_what_openapi_core_accepts(
    passes: bool, call: tuple[Any, ...]
) -> None:
    api = openapi.build()
    request = make(*call)
    pattern = call[2]
    check = operation_check(api.document, spec_path(pattern), request.method.lower())
    assert check.passes(request) is passes
    if passes:
        assert openapi_core_accepts(api, request, pattern)
    # the answer is openapi-core's either way: no problem exactly when it accepts
    assert (request_problems(api, request, pattern) == []) is openapi_core_accepts(
        api, request, pattern
    )
