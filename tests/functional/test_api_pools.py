"""``/api/v1/pools``: list, create, read, rename/move and delete pools as JSON."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import select

from fedoracloud.models import AuditEvent

from ..factories import HostFactory, PoolFactory
from .conftest import api_headers, assert_api_error, each, ids, pool_named, snapshot

POOL_KEYS = {"id", "name", "kind", "parent", "path", "depth", "description", "url"}


def send(app, method, url, body, status=None, headers=None):
    """A JSON call with the session's CSRF token (unless ``headers`` says otherwise)."""
    return getattr(app, method.lower())(
        url,
        params=body if isinstance(body, bytes) else json.dumps(body).encode(),
        content_type="application/json",
        headers=api_headers(app) if headers is None else headers,
        expect_errors=True,
        status=status,
    )


# -- GET /api/v1/pools --------------------------------------------------------------------------


def test_list_pools_in_tree_order(admin_app, tree):
    answer = admin_app.get("/api/v1/pools")
    assert answer.content_type == "application/json"
    data = answer.json
    assert set(data) == {"items", "next", "total"}
    assert data["total"] == len(tree) == len(data["items"])
    assert data["next"] is None
    assert [p["path"] for p in data["items"]] == sorted(p.path for p in tree.values())
    fedora = next(p for p in data["items"] if p["name"] == "fedora")
    assert set(fedora) == POOL_KEYS
    assert fedora == {
        "id": tree["fedora"].id,
        "name": "fedora",
        "kind": "hardware",
        "parent": tree["hardware"].id,
        "path": tree["fedora"].path,
        "depth": 2,
        "description": "",
        "url": f"http://example.com/api/v1/pools/{tree['fedora'].id}",
    }
    root = next(p for p in data["items"] if p["name"] == "root")
    assert root["parent"] is None


def test_list_pools_of_one_kind(admin_app, tree):
    def check(kind, names):
        data = admin_app.get("/api/v1/pools", {"kind": kind}).json
        assert {p["name"] for p in data["items"]} == names
        assert data["total"] == len(names)

    each(
        [
            ("vm", {"fedora-vms", "redhat-vms"}),
            ("directory", {"root", "users"}),
            ("hardware", {"hardware", "default", "fedora", "redhat"}),
            ("smart", set()),
        ],
        check,
    )


def test_list_pools_pages_by_100(admin_app, tree):
    for n in range(100 - len(tree) + 5):
        PoolFactory(name=f"p{n:03d}", parent=tree["redhat"])
    first = admin_app.get("/api/v1/pools").json
    assert first["total"] == 105
    assert len(first["items"]) == 100
    assert first["next"] == "http://example.com/api/v1/pools?page=2"
    second = admin_app.get(first["next"]).json
    assert len(second["items"]) == 5
    assert second["next"] is None
    assert second["total"] == 105
    assert len(set(ids(first["items"]) + ids(second["items"]))) == 105


def test_list_pools_keeps_the_kind_filter_in_next(admin_app, tree):
    for n in range(101):
        PoolFactory(name=f"v{n:03d}", kind="vm", parent=tree["fedora"])
    data = admin_app.get("/api/v1/pools", {"kind": "vm"}).json
    assert data["total"] == 103
    assert data["next"] == "http://example.com/api/v1/pools?kind=vm&page=2"


def test_list_pools_past_the_end_is_empty(admin_app, tree):
    data = admin_app.get("/api/v1/pools", {"page": "2"}).json
    assert data == {"items": [], "next": None, "total": len(tree)}


def test_list_pools_with_bad_parameters_is_400(admin_app, tree):
    def check(params, message):
        answer = admin_app.get("/api/v1/pools", params, status=400)
        assert_api_error(answer, 400, "invalid", message)

    each(
        [
            ({"kind": "bogus"}, "unknown pool kind 'bogus'"),
            ({"page": "0"}, "page must be a positive integer"),
            ({"page": "-2"}, "page must be a positive integer"),
            ({"page": "x"}, "page must be a positive integer"),
            ({"page": "9" * 30}, "page must be a positive integer"),
        ],
        check,
    )


def test_list_pools_for_a_user_without_grants_is_empty(alice_app, tree):
    assert alice_app.get("/api/v1/pools").json == {"items": [], "next": None, "total": 0}
    assert alice_app.get("/api/v1/pools", {"kind": "hardware"}).json["total"] == 0


# -- POST /api/v1/pools -------------------------------------------------------------------------


def test_create_pool(admin_app, tree, dbsession):
    answer = send(
        admin_app,
        "POST",
        "/api/v1/pools",
        {"name": "rack-9", "kind": "hardware", "parent": tree["fedora"].id, "description": "r9"},
        status=201,
    )
    data = answer.json
    pool = pool_named(dbsession, "rack-9")
    assert data == {
        "id": pool.id,
        "name": "rack-9",
        "kind": "hardware",
        "parent": tree["fedora"].id,
        "path": f"{tree['fedora'].path}{pool.id}/",
        "depth": 3,
        "description": "r9",
        "url": f"http://example.com/api/v1/pools/{pool.id}",
    }
    assert admin_app.get(data["url"]).json == data
    event = dbsession.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "pool.create", AuditEvent.target_id == pool.id
        )
    ).one()
    assert event.username == "admin"


def test_create_pool_without_description(admin_app, tree, dbsession):
    body = {"name": "vms2", "kind": "vm", "parent": tree["redhat"].id, "description": None}
    assert send(admin_app, "POST", "/api/v1/pools", body, status=201).json["description"] == ""


def test_create_pool_refusals(admin_app, tree, dbsession):
    def check(body, status, code, message):
        full = {"name": "new-pool", "kind": "vm", "parent": tree["fedora"].id} | body
        if isinstance(full["parent"], str) and full["parent"] in tree:
            full["parent"] = tree[full["parent"]].id
        before = snapshot(dbsession)
        assert_api_error(send(admin_app, "POST", "/api/v1/pools", full), status, code, message)
        assert snapshot(dbsession) == before

    each(
        [
            # names
            ({"name": "x" * 65}, 400, "invalid", "a pool name has at most 64 characters"),
            ({"name": ""}, 400, "invalid", "a pool needs a name"),
            ({"name": "<b>"}, 400, "invalid", "starts with a letter or digit"),
            ({"name": "a/b"}, 400, "invalid", "only letters, digits"),
            ({"name": "a b"}, 400, "invalid", "only letters, digits"),
            ({"name": "it's"}, 400, "invalid", "only letters, digits"),
            ({"name": 'say"hi"'}, 400, "invalid", "only letters, digits"),
            ({"name": "fedora-vms"}, 409, "conflict", "a pool named 'fedora-vms' already exists"),
            # kinds and places
            (
                {"kind": "vm", "parent": "users"},
                400,
                "invalid",
                "a VM pool must be inside a hardware",
            ),
            ({"kind": "vm", "parent": "fedora-vms"}, 400, "invalid", "must be inside a hardware"),
            ({"kind": "directory"}, 400, "invalid", "a directory pool must be inside a directory"),
            ({"kind": "cluster"}, 400, "invalid", "unknown pool kind 'cluster'"),
            ({"description": "d" * 2001}, 400, "invalid", "a description has at most 2000"),
            # types
            ({"name": 5}, 400, "invalid", "'name' must be a string"),
            ({"name": None}, 400, "invalid", "'name' must be a string"),
            ({"kind": ["vm"]}, 400, "invalid", "'kind' must be a string"),
            ({"description": 7}, 400, "invalid", "'description' must be a string"),
            ({"parent": "3"}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": True}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": 1.5}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": 0}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": -4}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": None}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": 10**30}, 400, "invalid", "'parent' must be a pool id"),
            ({"parent": 999_999}, 404, "not_found", "There is nothing here"),
            # fields nobody asked for
            ({"descripton": "typo"}, 400, "invalid", "unknown fields: descripton"),
            ({"id": 1, "path": "/1/"}, 400, "invalid", "unknown fields: id, path"),
        ],
        check,
    )


def test_create_pool_missing_a_field_is_400(admin_app, tree, dbsession):
    def check(missing):
        body = {"name": "new", "kind": "hardware", "parent": tree["fedora"].id}
        del body[missing]
        before = snapshot(dbsession)
        answer = send(admin_app, "POST", "/api/v1/pools", body)
        assert_api_error(answer, 400, "invalid", f"'{missing}' must be")
        assert answer.json["error"]["details"]["field"] == missing
        assert snapshot(dbsession) == before

    each(["name", "kind", "parent"], check)


def test_create_pool_with_a_body_that_is_not_an_object_is_400(admin_app, tree, dbsession):
    def check(raw, message):
        before = snapshot(dbsession)
        assert_api_error(send(admin_app, "POST", "/api/v1/pools", raw), 400, "invalid", message)
        assert snapshot(dbsession) == before

    each(
        [
            (b"{", "the request body is not JSON"),
            (b"", "the request body is not JSON"),
            (b"name=x&kind=vm", "the request body is not JSON"),
            (b"\xff\xfe{}", "the request body is not JSON"),
            (b"[" * 100_000 + b"]" * 100_000, "the request body is not JSON"),
            (b"[]", "the request body must be a JSON object"),
            (b'"pool"', "the request body must be a JSON object"),
            (b"42", "the request body must be a JSON object"),
            (b"null", "the request body must be a JSON object"),
        ],
        check,
    )


def test_create_pool_without_the_csrf_token_is_400(admin_app, tree, dbsession):
    def check(headers):
        before = snapshot(dbsession)
        body = {"name": "new", "kind": "hardware", "parent": tree["fedora"].id}
        answer = send(admin_app, "POST", "/api/v1/pools", body, headers=headers)
        assert_api_error(answer, 400, "bad_csrf", "did not come from this site")
        assert snapshot(dbsession) == before

    each([{}, {"X-CSRF-Token": "forged"}], check)


def test_csrf_token_in_a_json_body_does_not_count(admin_app, tree, dbsession):
    from ..conftest import csrf_token

    body = {"name": "new", "kind": "hardware", "parent": tree["fedora"].id}
    body["csrf_token"] = csrf_token(admin_app)
    answer = send(admin_app, "POST", "/api/v1/pools", body, headers={})
    assert_api_error(answer, 400, "bad_csrf")
    assert pool_named(dbsession, "new") is None


# -- GET /api/v1/pools/{id} ---------------------------------------------------------------------


def test_get_pool(admin_app, tree):
    data = admin_app.get(f"/api/v1/pools/{tree['fedora-vms'].id}").json
    assert data["name"] == "fedora-vms"
    assert data["kind"] == "vm"
    assert data["parent"] == tree["fedora"].id
    assert set(data) == POOL_KEYS


def test_get_unknown_or_malformed_pool_is_404(admin_app, tree):
    def check(pool_id):
        answer = admin_app.get(f"/api/v1/pools/{pool_id}", status=404)
        assert_api_error(answer, 404, "not_found", "There is nothing here, or you may not see it.")

    each(["999999", "abc", "1e3", "-1", "9" * 19, "%20"], check)


def test_unknown_api_url_and_method_are_404_json(admin_app, tree):
    assert_api_error(admin_app.get("/api/v1/nothing", status=404), 404, "not_found")
    answer = admin_app.put_json(
        f"/api/v1/pools/{tree['fedora'].id}", {}, headers=api_headers(admin_app), status=404
    )
    assert_api_error(answer, 404, "not_found")


# -- PATCH /api/v1/pools/{id} -------------------------------------------------------------------


def test_rename_pool(admin_app, tree, dbsession):
    data = send(admin_app, "PATCH", f"/api/v1/pools/{tree['redhat'].id}", {"name": "rhel"}).json
    assert data["name"] == "rhel"
    assert data["id"] == tree["redhat"].id
    assert pool_named(dbsession, "rhel").id == tree["redhat"].id


def test_move_pool(admin_app, tree, dbsession):
    url = f"/api/v1/pools/{tree['redhat-vms'].id}"
    data = send(admin_app, "PATCH", url, {"parent": tree["fedora"].id}, status=200).json
    assert data["parent"] == tree["fedora"].id
    assert data["path"] == f"{tree['fedora'].path}{tree['redhat-vms'].id}/"
    assert pool_named(dbsession, "redhat-vms").parent_id == tree["fedora"].id


def test_rename_and_move_at_once(admin_app, tree, dbsession):
    url = f"/api/v1/pools/{tree['redhat-vms'].id}"
    data = send(admin_app, "PATCH", url, {"name": "moved", "parent": tree["fedora"].id}).json
    assert (data["name"], data["parent"]) == ("moved", tree["fedora"].id)


def test_patch_with_nothing_changes_nothing(admin_app, tree, dbsession):
    before = snapshot(dbsession)
    url = f"/api/v1/pools/{tree['fedora'].id}"
    assert send(admin_app, "PATCH", url, {}, status=200).json["name"] == "fedora"
    assert send(admin_app, "PATCH", url, {"name": None, "parent": None}, status=200)
    assert snapshot(dbsession) == before


def test_patch_pool_refusals(admin_app, tree, dbsession):
    def check(pool, body, status, code, message):
        body = {
            k: tree[v].id if k == "parent" and isinstance(v, str) and v in tree else v
            for k, v in body.items()
        }
        before = snapshot(dbsession)
        answer = send(admin_app, "PATCH", f"/api/v1/pools/{tree[pool].id}", body)
        assert_api_error(answer, status, code, message)
        assert snapshot(dbsession) == before

    each(
        [
            ("redhat", {"name": "x" * 65}, 400, "invalid", "at most 64 characters"),
            ("redhat", {"name": "red hat"}, 400, "invalid", "only letters, digits"),
            ("redhat", {"name": "red<hat>"}, 400, "invalid", "only letters, digits"),
            ("redhat", {"name": "fedora"}, 409, "conflict", "a pool named 'fedora' already exists"),
            ("redhat", {"name": 12}, 400, "invalid", "'name' must be a string"),
            ("redhat", {"parent": "2"}, 400, "invalid", "'parent' must be a pool id"),
            ("redhat", {"parent": 999_999}, 404, "not_found", "There is nothing here"),
            ("redhat", {"kind": "vm"}, 400, "invalid", "unknown fields: kind"),
            ("redhat", {"name": "ok", "owner": 1}, 400, "invalid", "unknown fields: owner"),
            ("fedora", {"parent": "fedora"}, 400, "invalid", "into itself or one of its own"),
            ("hardware", {"parent": "fedora"}, 400, "invalid", "into itself or one of its own"),
            (
                "fedora-vms",
                {"parent": "users"},
                400,
                "invalid",
                "a VM pool must be inside a hardware",
            ),
            ("fedora-vms", {"parent": "redhat-vms"}, 400, "invalid", "must be inside a hardware"),
            ("root", {"parent": "users"}, 400, "invalid", "the root pool cannot be moved"),
            # a valid rename together with a refused move: neither happens
            (
                "fedora",
                {"name": "renamed", "parent": "fedora-vms"},
                400,
                "invalid",
                "own sub-pools",
            ),
        ],
        check,
    )


def test_patch_pool_with_a_bad_body_is_400(admin_app, tree, dbsession):
    def check(raw):
        before = snapshot(dbsession)
        answer = send(admin_app, "PATCH", f"/api/v1/pools/{tree['fedora'].id}", raw)
        assert_api_error(answer, 400, "invalid", "the request body")
        assert snapshot(dbsession) == before

    each([b"{", b"[1]", b'"x"'], check)


def test_patch_and_delete_without_the_csrf_token_are_400(admin_app, tree, dbsession):
    def check(headers, method):
        before = snapshot(dbsession)
        url = f"/api/v1/pools/{tree['redhat-vms'].id}"
        answer = send(admin_app, method, url, {"name": "x"}, headers=headers)
        assert_api_error(answer, 400, "bad_csrf")
        assert snapshot(dbsession) == before

    each(
        itertools.product([{}, {"X-CSRF-Token": "forged"}], ["PATCH", "DELETE"]),
        check,
    )


def test_patch_unknown_pool_is_404(admin_app, tree):
    assert_api_error(
        send(admin_app, "PATCH", "/api/v1/pools/999999", {"name": "x"}), 404, "not_found"
    )


# -- DELETE /api/v1/pools/{id} ------------------------------------------------------------------


def test_delete_empty_pool(admin_app, tree, dbsession):
    answer = send(admin_app, "DELETE", f"/api/v1/pools/{tree['redhat-vms'].id}", b"", status=204)
    assert answer.body == b""
    assert pool_named(dbsession, "redhat-vms") is None
    admin_app.get(f"/api/v1/pools/{tree['redhat-vms'].id}", status=404)
    assert dbsession.scalars(select(AuditEvent).where(AuditEvent.action == "pool.delete")).one()


def test_delete_non_empty_pool_is_409(admin_app, tree, dbsession):
    HostFactory(pool=tree["redhat"])
    before = snapshot(dbsession)
    answer = send(admin_app, "DELETE", f"/api/v1/pools/{tree['redhat'].id}", b"")
    assert_api_error(
        answer,
        409,
        "conflict",
        "pool 'redhat' is not empty: it holds 1 sub-pool, 1 host; move or delete them first",
    )
    assert snapshot(dbsession) == before


def test_delete_built_in_pool_is_400(admin_app, tree, dbsession):
    def check(pool, message):
        before = snapshot(dbsession)
        answer = send(admin_app, "DELETE", f"/api/v1/pools/{tree[pool].id}", b"")
        assert_api_error(answer, 400, "invalid", message)
        assert snapshot(dbsession) == before

    each(
        [
            ("root", "the root pool cannot be deleted"),
            ("hardware", "the built-in pool 'hardware' cannot be deleted"),
            ("default", "the built-in pool 'default' cannot be deleted"),
        ],
        check,
    )


def test_delete_unknown_pool_is_404(admin_app, tree):
    assert_api_error(send(admin_app, "DELETE", "/api/v1/pools/999999", b""), 404, "not_found")
