"""What the schemathesis run (tests/contract/) found, each kept as a regression test.

1. An id larger than a PostgreSQL ``integer`` in a URL, a body or a filter was a 500
   (``NumericValueOutOfRange``) on PostgreSQL: it names nothing, so it is a 404 (a URL,
   a filter) or a 400 (a body field that must be an id).
"""

from __future__ import annotations

import pytest

from .conftest import api_headers, assert_api_error

TOO_BIG = [2**31, 469290393545, 10**17]


@pytest.mark.parametrize("number", TOO_BIG)
def test_an_id_too_big_for_the_database_is_a_404_in_a_url(admin_app, tree, number):
    headers = api_headers(admin_app)
    for method, path in [
        ("GET", f"/api/v1/pools/{number}"),
        ("GET", f"/api/v1/hosts/{number}"),
        ("GET", f"/api/v1/vms/{number}"),
        ("GET", f"/api/v1/tasks/{number}"),
        ("GET", f"/api/v1/tokens/{number}"),
        ("DELETE", f"/api/v1/vms/{number}"),
        ("POST", f"/api/v1/vms/{number}/start"),
        ("DELETE", f"/api/v1/pools/{tree['fedora'].id}/grants/{number}"),
        ("DELETE", f"/api/v1/pools/{number}/grants/1"),
    ]:
        answer = getattr(admin_app, method.lower())(path, headers=headers, expect_errors=True)
        assert_api_error(answer, 404, "not_found")


@pytest.mark.parametrize("number", TOO_BIG)
def test_an_id_too_big_for_the_database_in_a_body_or_filter(admin_app, tree, number):
    headers = api_headers(admin_app)
    answer = admin_app.post_json(
        "/api/v1/pools",
        {"name": "x", "kind": "vm", "parent": number},
        headers=headers,
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "'parent' must be a pool id")
    answer = admin_app.post_json(
        "/api/v1/vms",
        {"name": "web1", "pool": number, "memory_mib": 512},
        headers=headers,
        expect_errors=True,
    )
    assert_api_error(answer, 404, "not_found")
    for path in ("/api/v1/hosts", "/api/v1/vms"):
        answer = admin_app.get(path, {"pool": str(number)}, expect_errors=True)
        assert answer.status_int in (400, 404), answer.text


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/pools/%C2%B2",
        "/api/v1/vms/%C2%B2",
        "/api/v1/pools?page=%C2%B2",
        "/api/v1/vms?page=%C2%B2",
        "/api/v1/hosts?pool=%C2%B2",
        "/api/v1/vms?pool=%C2%B2",
        "/api/v1/tasks?target=%C2%B2",
        "/api/v1/tasks?target=99999999999",
    ],
)
def test_a_digit_int_cannot_read_is_refused_not_a_500(admin_app, tree, url):
    answer = admin_app.get(url, expect_errors=True)
    assert answer.status_int in (400, 404), answer.text
    assert set(answer.json["error"]) == {"code", "message", "details"}


def test_a_superscript_in_a_body_number_is_refused(admin_app, tree):
    headers = api_headers(admin_app)
    answer = admin_app.post_json(
        "/api/v1/vms",
        {"name": "web1", "pool": "\u00b2", "memory_mib": 512},
        headers=headers,
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "must be a whole number")
    answer = admin_app.put_json(
        f"/api/v1/pools/{tree['fedora'].id}/quota",
        {"vcpus": "\u00b2"},
        headers=headers,
        expect_errors=True,
    )
    assert_api_error(answer, 400, "invalid", "a whole number of 0 or more")
