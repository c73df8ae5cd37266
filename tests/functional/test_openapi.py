"""The API contract as a client meets it: the served OpenAPI document describes every
``/api/v1`` route with every method its views accept, and requests that do not match it are
refused with a 400 in the one error shape, listing every field that is wrong."""

from __future__ import annotations

from typing import Any

from fedoracloud.openapi import METHODS, build
from fedoracloud.openapi.validation import spec_path

from .conftest import api_headers, assert_api_error, pool_count


def api_routes(app: Any) -> dict[str, set[str]]:
    """Every ``/api/v1`` route pattern of the running app, with the methods its views accept."""
    introspector = app.registry.introspector
    routes: dict[str, set[str]] = {}
    for route in introspector.get_category("routes"):
        pattern = route["introspectable"]["pattern"]
        pattern = pattern if pattern.startswith("/") else "/" + pattern
        if not pattern.startswith("/api/v1/"):
            continue
        methods = routes.setdefault(spec_path(pattern), set())
        for related in route["related"]:
            if related.category_name != "views":
                continue
            accepted = related["request_methods"]
            if accepted is None:
                methods.add("ANY")
            else:
                methods.update([accepted] if isinstance(accepted, str) else [m for m in accepted])
    return routes


def test_every_api_route_and_method_is_described(app, testapp):
    document = testapp.get("/api/v1/openapi.json").json
    missing = []
    for path, methods in sorted(api_routes(app).items()):
        described = {m.upper() for m in document["paths"].get(path, {}) if m in METHODS}
        for method in sorted(methods - {"HEAD"}):
            if method == "ANY":
                missing.append(f"{path}: a view accepts any method; give it a request_method")
            elif method not in described:
                missing.append(f"{method} {path}")
    assert not missing, "described nowhere in fedoracloud/openapi/<domain>.yaml:\n  " + "\n  ".join(
        missing
    )
    # and the document describes nothing the app does not answer
    routes = api_routes(app)
    for path, item in document["paths"].items():
        assert path in routes, f"{path} is described but is no route"
        for method in (m for m in item if m in METHODS):
            assert method.upper() in routes[path], f"{method.upper()} {path}: no view"


def test_the_document_is_public_cacheable_and_what_the_app_checks_against(app, testapp):
    answer = testapp.get("/api/v1/openapi.json")
    assert answer.content_type == "application/json"
    assert answer.json == app.registry["openapi"].document
    assert answer.json["paths"].keys() == build().document["paths"].keys()
    assert answer.json["openapi"].startswith("3.1")
    assert "public" in answer.headers["Cache-Control"]
    again = testapp.get(
        "/api/v1/openapi.json", headers={"If-None-Match": answer.headers["ETag"]}, status=304
    )
    assert again.body == b""


def test_every_operation_answers_errors_in_the_one_shape(testapp):
    document = testapp.get("/api/v1/openapi.json").json
    error = {"$ref": "#/components/schemas/Error"}
    for name, response in document["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == error, name
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in response:
                    assert response["$ref"].startswith("#/components/responses/"), (path, status)
                else:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == error, f"{method.upper()} {path} {status}"
            if "{" in path:
                assert "404" in operation["responses"], f"{method.upper()} {path}"


def test_a_body_outside_the_document_is_400_listing_every_field(admin_app, tree, dbsession):
    before = pool_count(dbsession)
    answer = admin_app.post_json(
        "/api/v1/pools",
        {"name": 5, "kind": ["vm"], "parent": "3", "colour": "red"},
        headers=api_headers(admin_app),
        status=400,
    )
    assert_api_error(answer, 400, "invalid")
    details = answer.json["error"]["details"]
    fields = {(f["field"], f["in"]) for f in details["fields"]}
    assert fields == {("name", "body"), ("kind", "body"), ("parent", "body"), ("colour", "body")}
    assert details["field"] in {"name", "kind", "parent", "colour"}
    message = answer.json["error"]["message"]
    assert "'name' must be a string" in message
    assert "'parent' must be a pool id (a positive integer)" in message
    assert "unknown fields: colour" in message
    assert pool_count(dbsession) == before


def test_nested_and_empty_bodies_outside_the_document_are_400(admin_app, tree, dbsession):
    headers = api_headers(admin_app)
    answer = admin_app.post_json(
        "/api/v1/vms",
        {"name": "web1", "pool": tree["fedora-vms"].id, "memory_mib": 512, "disks": "sda"},
        headers=headers,
        status=400,
    )
    assert_api_error(answer, 400, "invalid", "'disks' must be a list or null")
    assert answer.json["error"]["details"]["fields"] == [
        {"field": "disks", "in": "body", "message": "'disks' must be a list or null"}
    ]
    answer = admin_app.post(
        "/api/v1/tokens", b"", content_type="application/json", headers=headers, status=400
    )
    assert_api_error(answer, 400, "invalid", "the request body is not JSON (it is empty)")


def test_anonymous_callers_learn_nothing_of_the_documents_rules(testapp, tree):
    # the permission check comes before the document's: no login, no 400 about fields
    answer = testapp.post_json("/api/v1/pools", {"name": 5}, expect_errors=True)
    assert_api_error(answer, 401, "unauthorized")
