"""The probe's authorization sweep, kept as a test: every operation of the served OpenAPI
document, with its path filled with the ids of real objects inside the pool ``fedora``,
asked by

* a member (alice, with the ``admin`` role on the sibling pool ``redhat`` only), through
  an API token and without CSRF;
* a person who is not let in (eve: not an approved member of the access group), with a
  cookie session and the CSRF header;
* nobody (no cookie, no token).

None of them gets a 2xx for anything in fedora (a list answers, but without fedora's
objects), a 5xx, or changes a row: the refusals are committed here, as in production.
Then the super admin sends odd bodies and odd ids to every operation: never a 5xx.
The operations come from the document, so an operation added later is swept too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import webtest
from sqlalchemy import func, select

from fedoracloud.models import Base
from fedoracloud.openapi import load_document

from ..conftest import login
from .conftest import grant
from .test_auth import make_token
from .test_permissions import Place, place

METHODS = ("get", "post", "put", "patch", "delete")
#: what changes by design whoever asks: the counts of attempts, and the directory cache
#: (asking for people or groups copies the access group's members from the provider)
COUNTERS = {"auth_failures", "enroll_attempts", "users", "group_memberships"}
#: site-level objects anyone let in may view (networks and their IP pools)
SITE_READS = ("GET /api/v1/networks", "GET /api/v1/ip-pools")


def operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation that needs a login."""
    document = load_document()
    default = document.get("security")
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item and item[method].get("security", default)
    ]


def fill(path: str, p: Place) -> str:
    """The path with fedora's objects in it."""
    ids = {
        "pool_id": p.top.id,
        "host_id": p.host.id,
        "vm_id": p.vm.id,
        "network_id": p.network.id,
        "ip_pool_id": p.network.ip_pools[0].id,
        "storage_pool_id": p.storage_pool.id,
        "server_id": p.storage_server.id,
        "volume_id": 1,
        "task_id": p.vm_task.id,
        "request_id": p.vm_request.id,
        "grant_id": 1,
        "token_id": p.bob_token.id,
        "graph": "load",
        "action": "start",
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def row_counts(dbsession: Any) -> dict[str, int]:
    dbsession.flush()
    return {
        table.name: dbsession.scalar(select(func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
        if table.name not in COUNTERS
    }


@pytest.fixture
def fedora(testapp: webtest.TestApp, tree: dict[str, Any]) -> Place:
    testapp.app = getattr(testapp.app, "app", testapp.app)  # refusals are committed
    return place(tree["fedora"])


def send(app: webtest.TestApp, method: str, url: str, body: bytes, headers: Any) -> Any:
    """One call with a JSON body (none for a GET)."""
    if method == "GET":
        return app.get(url, headers=headers, expect_errors=True)
    return getattr(app, method.lower())(
        url, params=body, content_type="application/json", headers=headers, expect_errors=True
    )


def sweep(app: webtest.TestApp, p: Place, headers: dict[str, str]) -> list[tuple[str, Any]]:
    answers = []
    for method, template in operations():
        body = b"" if method == "DELETE" else json.dumps({}).encode()
        answer = send(app, method, fill(template, p), body, headers)
        answers.append((f"{method} {template}", answer))
    return answers


def secrets_of(p: Place) -> list[str]:
    """Names that only someone who may see fedora may read."""
    return [p.host.hostname, p.vm.name, p.storage_pool.name, p.vm_request.name]


def test_a_member_of_another_pool_reaches_nothing_in_fedora(testapp, dbsession, tree, fedora):
    grant(dbsession, "alice", tree["redhat"], "admin")
    headers = make_token(dbsession, "alice", secret="fct_" + "a" * 40)
    testapp.get("/api/v1/pools", headers=headers)  # her groups are read once, then cached
    before = row_counts(dbsession)
    failures = []
    for operation, answer in sweep(testapp, fedora, headers):
        leaked = [s for s in secrets_of(fedora) if s in answer.text]
        if answer.status_int >= 500 or leaked:
            failures.append(f"{operation}: {answer.status_int} {leaked}")
        elif answer.status_int < 300 and not operation.startswith("GET"):
            failures.append(f"{operation}: {answer.status_int} {answer.text[:120]}")
        elif (
            answer.status_int < 300
            and "{" in operation
            and "tokens" not in operation
            and not operation.startswith(SITE_READS)
        ):
            failures.append(f"{operation}: {answer.status_int} (an object of fedora)")
    assert not failures, "\n".join(failures)
    assert row_counts(dbsession) == before


@pytest.mark.parametrize("who", ["eve", "nobody"])
def test_an_outsider_or_nobody_reaches_nothing(testapp, dbsession, fedora, who):
    headers: dict[str, str] = {}
    if who == "eve":
        login(testapp, "eve")
        form = testapp.get("/access").html.find("input", {"name": "csrf_token"})
        headers = {"X-CSRF-Token": form["value"]}
    before = row_counts(dbsession)
    expected = (403, "no_access") if who == "eve" else (401, "unauthorized")
    failures = [
        f"{operation}: {answer.status_int} {answer.text[:120]}"
        for operation, answer in sweep(testapp, fedora, headers)
        if (answer.status_int, answer.json["error"]["code"]) != expected
    ]
    assert not failures, "\n".join(failures)
    assert row_counts(dbsession) == before


ODD_BODIES = [
    b"[]",
    b'"text"',
    b"{not json",
    b'{"name": "\\u0000", "pool": 99999999999999999999999}',
    b'{"name": "' + b"x" * 5000 + b'", "reason": null, "hostname": ["a"]}',
]
ODD_IDS = ["0", "-1", "99999999999999999999", "1e3", "%00", "%0A", "..%2F"]


def test_odd_input_to_every_operation_is_never_a_server_error(testapp, dbsession, fedora):
    """The probe's odd-input sweep: the super admin sends odd bodies to every operation and
    odd ids in every path; each answer is an answer (2xx or a clear 4xx), never a 5xx."""
    headers = make_token(dbsession, "admin", secret="fct_" + "z" * 40)
    calls = [
        (method, url)
        for method, template in operations()
        for url in [
            fill(template, fedora),  # all filled before the first call deletes anything
            *(re.sub(r"\{\w+_id\}", odd, template) for odd in ODD_IDS if "_id}" in template),
        ]
    ]
    failures = []
    for method, url in calls:
        for body in [b""] if method == "GET" else ODD_BODIES:
            answer = send(testapp, method, url, body, headers)
            answered = answer.status_int == 204 or answer.content_type == "application/json"
            if answer.status_int >= 500 or not answered:
                failures.append(f"{method} {url} {body[:30]!r}: {answer.status_int}")
    assert not failures, "\n".join(failures[:30])
