"""Guessing is throttled: failed logins per account and per address, bad API tokens and
bad enrollment tokens per address, counted in the database, answered 429 with
``Retry-After`` past the limit, and audited when a limit is reached.

A refusal is committed in production (the count must hold), so these tests take off the
functional tests' roll-back-on-4xx middleware, as the enrollment tests do.  "Waiting" is
moving the counted failures back out of the window, never a sleep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from fedoracloud.models import AuditEvent, AuthFailure
from fedoracloud.models.meta import utcnow

from ..conftest import PASSWORDS
from .conftest import assert_api_error
from .test_tokens import bearer

_ADDR = iter(range(1, 10**6))


@pytest.fixture
def client(testapp: Any, tree: dict[str, Any]) -> Any:
    """The test app, committing refusals, from an address of its own."""
    testapp.app = getattr(testapp.app, "app", testapp.app)
    n = next(_ADDR)
    testapp.extra_environ["REMOTE_ADDR"] = f"10.77.{n // 250 % 250}.{n % 250 + 1}"
    return testapp


def try_login(app: Any, username: str, password: str, token: str) -> Any:
    return app.post(
        "/login",
        {"username": username, "password": password, "csrf_token": token},
        expect_errors=True,
    )


def wait_out_the_window(dbsession: Any) -> None:
    """As if the window had passed: every counted failure is older than it."""
    dbsession.execute(update(AuthFailure).values(at=utcnow() - timedelta(days=1)))
    dbsession.flush()


def audited(dbsession: Any, action: str) -> list[AuditEvent]:
    return list(dbsession.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_ten_wrong_passwords_lock_the_account_until_the_window_passes(client, dbsession):
    token = client.get("/login").forms[0]["csrf_token"].value
    for _ in range(10):
        assert try_login(client, "alice", "wrong", token).status_int == 400
    refused = try_login(client, "alice", PASSWORDS["alice"], token)
    assert refused.status_int == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 901
    assert "Too many failed logins" in refused.text
    [event] = audited(dbsession, "login.throttled")
    assert event.after["key"] == "account:alice" and event.username == "system"
    # another account from the same address is not locked by alice's failures
    assert try_login(client, "bob", PASSWORDS["bob"], token).status_int == 303
    client.reset()
    token = client.get("/login").forms[0]["csrf_token"].value
    wait_out_the_window(dbsession)
    assert try_login(client, "alice", PASSWORDS["alice"], token).status_int == 303


@pytest.fixture
def five_per_address(app: Any, monkeypatch: Any) -> None:
    """An address is throttled after 5 failures (50 by default)."""
    extra = app.registry["fc_settings"].extra
    monkeypatch.setitem(extra, "fedoracloud.throttle.address_failures", "5")


def test_failures_from_one_address_lock_the_address(client, dbsession, five_per_address):
    token = client.get("/login").forms[0]["csrf_token"].value
    for i in range(5):
        assert try_login(client, f"nobody{i}", "wrong", token).status_int == 400
    assert try_login(client, "carol", PASSWORDS["carol"], token).status_int == 429
    assert [e.after["key"] for e in audited(dbsession, "login.throttled")] == [
        f"address:{client.extra_environ['REMOTE_ADDR']}"
    ]
    wait_out_the_window(dbsession)
    assert try_login(client, "bob", PASSWORDS["bob"], token).status_int == 303


def test_bad_api_tokens_from_one_address_are_throttled(client, dbsession, five_per_address):
    for i in range(5):
        answer = client.get("/api/v1/pools", headers=bearer(f"fct_guess{i}"), expect_errors=True)
        assert_api_error(answer, 401, "unauthorized")
    answer = client.get("/api/v1/pools", headers=bearer("fct_guess"), expect_errors=True)
    assert_api_error(answer, 429, "throttled", "too many failed attempts")
    assert int(answer.headers["Retry-After"]) >= 1
    assert len(audited(dbsession, "api_token.throttled")) == 1
    wait_out_the_window(dbsession)
    answer = client.get("/api/v1/pools", headers=bearer("fct_guess"), expect_errors=True)
    assert_api_error(answer, 401, "unauthorized")


def test_bad_enrollment_tokens_from_one_address_are_throttled(client, dbsession, five_per_address):
    for i in range(5):
        answer = client.post_json(
            "/api/v1/enroll", {"token": f"fcenroll_guess{i}"}, expect_errors=True
        )
        assert answer.status_int == 403, answer.text
    answer = client.post_json("/api/v1/enroll", {"token": "fcenroll_x"}, expect_errors=True)
    assert answer.status_int == 429
    assert answer.json["error"]["code"] == "throttled"
    assert int(answer.headers["Retry-After"]) >= 1
    assert len(audited(dbsession, "enroll.throttled")) == 1
