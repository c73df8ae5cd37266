"""API tokens: the tokens page, ``/api/v1/tokens``, and using a token made there."""

from __future__ import annotations

import json

import pytest
import webtest
from sqlalchemy import func, select

from fedoracloud.models import ApiToken, AuditEvent
from fedoracloud.security import hash_token

from ..conftest import csrf_token, login
from .conftest import (
    after_redirect,
    api_headers,
    assert_api_error,
    by_testid,
    flashes,
    grant,
    location_path,
    text_of,
    user_named,
)


def without_cookies(app: webtest.TestApp) -> webtest.TestApp:
    """Another client of the same app and transaction, with no cookie session: only what
    it sends in headers identifies it."""
    return webtest.TestApp(app.app, extra_environ=dict(app.extra_environ))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def token_rows(page: webtest.TestResponse) -> list[list[str]]:
    """The cells of the token table (without the button column)."""
    table = by_testid(page, "token-table")
    if table is None:
        return []
    return [
        [td.get_text(" ", strip=True) for td in row.find_all("td")[:-1]]
        for row in table.find_all(attrs={"data-testid": "token-row"})
    ]


def create_form(app: webtest.TestApp) -> webtest.Form:
    page = app.get("/tokens")
    return next(f for f in page.forms.values() if f.action == "http://example.com/tokens")


def create_through_the_form(app: webtest.TestApp, name: str) -> webtest.TestResponse:
    form = create_form(app)
    form["name"] = name
    return form.submit()


def revoke_form(app: webtest.TestApp) -> webtest.Form:
    """The first (newest) token's revoke button."""
    page = app.get("/tokens")
    return next(f for f in page.forms.values() if f.action.endswith("/revoke"))


def tokens_of(dbsession, username: str) -> list[ApiToken]:
    dbsession.expire_all()
    user = user_named(dbsession, username)
    return list(dbsession.scalars(select(ApiToken).where(ApiToken.user_id == user.id)))


def token_count(dbsession) -> int:
    return dbsession.scalar(select(func.count()).select_from(ApiToken)) or 0


def audit_count(dbsession) -> int:
    return dbsession.scalar(select(func.count()).select_from(AuditEvent)) or 0


def send(app, method, url, body=None, headers=None, status=None):
    """A JSON call with the session's CSRF token (unless ``headers`` says otherwise)."""
    return getattr(app, method.lower())(
        url,
        params=body if isinstance(body, bytes) else json.dumps(body).encode(),
        content_type="application/json",
        headers=api_headers(app) if headers is None else headers,
        expect_errors=True,
        status=status,
    )


# -- who may come -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/tokens", "/api/v1/tokens"])
def test_anonymous_is_asked_to_log_in(testapp, tree, path):
    response = testapp.get(path, expect_errors=True)
    if path.startswith("/api/"):
        assert_api_error(response, 401, "unauthorized")
    else:
        assert response.status_int == 303
        assert location_path(response) == "/login?next=%2Ftokens"


def test_anonymous_posts_write_nothing(testapp, tree, dbsession):
    admin = user_named(dbsession, "admin")
    token = ApiToken(user_id=admin.id, name="t", token_hash="h" * 64, prefix="fct_xxxxxxxx")
    dbsession.add(token)
    dbsession.flush()
    assert testapp.post("/tokens", {"name": "x"}, status=303).location.endswith("/login")
    testapp.post(f"/tokens/{token.id}/revoke", status=303)
    assert_api_error(
        send(testapp, "POST", "/api/v1/tokens", {"name": "x"}, {}), 401, "unauthorized"
    )
    assert_api_error(
        send(testapp, "DELETE", f"/api/v1/tokens/{token.id}", None, {}), 401, "unauthorized"
    )
    assert token_count(dbsession) == 1
    dbsession.refresh(token)
    assert token.revoked_at is None


def test_an_outsider_is_sent_to_the_access_page(testapp, tree):
    login(testapp, "eve")
    assert testapp.get("/tokens", status=303).location.endswith("/access")
    assert_api_error(testapp.get("/api/v1/tokens", status=403), 403, "no_access")


# -- the page -----------------------------------------------------------------------------------


def test_a_new_user_has_no_tokens(alice_app):
    page = alice_app.get("/tokens")
    assert token_rows(page) == []
    assert "You have no API tokens yet." in text_of(page, "empty-state")
    assert by_testid(page, "new-token") is None


def test_create_shows_the_secret_once_and_stores_only_its_hash(alice_app, dbsession):
    response = create_through_the_form(alice_app, "  backup script  ")
    assert response.status_int == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = text_of(response, "new-token-secret")
    assert secret.startswith("fct_") and len(secret) == 4 + 43
    assert "Token backup script created. Copy it now" in text_of(response, "new-token")
    assert "Set-Cookie" not in response.headers or secret not in response.headers["Set-Cookie"]
    [token] = tokens_of(dbsession, "alice")
    assert token.name == "backup script"
    assert token.token_hash == hash_token(secret)
    assert token.prefix == secret[:12]
    assert secret not in (token.prefix, token.token_hash)
    # the next page shows the token's prefix, never the secret
    page = alice_app.get("/tokens")
    assert secret not in page.text
    assert by_testid(page, "new-token") is None
    [row] = token_rows(page)
    assert row[:2] == ["backup script", f"{secret[:12]}…"]
    assert row[3:] == ["never", "—"]


def test_tokens_are_listed_newest_first(alice_app):
    for name in ("first", "second", "third"):
        create_through_the_form(alice_app, name)
    assert [row[0] for row in token_rows(alice_app.get("/tokens"))] == [
        "third",
        "second",
        "first",
    ]


def test_each_user_sees_only_their_own_tokens(alice_app, dbsession):
    create_through_the_form(alice_app, "alice's")
    alice_app.reset()
    login(alice_app, "bob")
    assert token_rows(alice_app.get("/tokens")) == []
    create_through_the_form(alice_app, "alice's")  # the same name is fine for someone else
    assert [row[0] for row in token_rows(alice_app.get("/tokens"))] == ["alice's"]
    assert len(tokens_of(dbsession, "alice")) == len(tokens_of(dbsession, "bob")) == 1


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "a token needs a name"),
        ("    ", "a token needs a name"),
        ("n" * 65, "a token name has at most 64 characters"),
        ("tab\there", "a token name has no control characters"),
    ],
)
def test_bad_names_are_refused_and_write_nothing(alice_app, dbsession, name, message):
    before = audit_count(dbsession)
    response = alice_app.post(
        "/tokens", {"name": name, "csrf_token": csrf_token(alice_app)}, status=400
    )
    assert text_of(response, "form-error") == message
    assert by_testid(response, "new-token") is None
    assert token_count(dbsession) == 0
    assert audit_count(dbsession) == before


def test_a_name_of_64_characters_is_fine(alice_app, dbsession):
    create_through_the_form(alice_app, "n" * 64)
    assert [t.name for t in tokens_of(dbsession, "alice")] == ["n" * 64]


@pytest.mark.parametrize("revoked", [False, True])
def test_a_duplicate_name_is_refused(alice_app, dbsession, revoked):
    create_through_the_form(alice_app, "ci")
    if revoked:
        revoke_form(alice_app).submit(status=303)
    response = alice_app.post(
        "/tokens", {"name": "ci", "csrf_token": csrf_token(alice_app)}, status=409
    )
    assert text_of(response, "form-error") == (
        "you already have a token named 'ci' (revoked ones keep their name); choose another name"
    )
    assert create_form(alice_app)["name"].value == ""
    assert response.html.find("input", {"name": "name"})["value"] == "ci"
    assert len(tokens_of(dbsession, "alice")) == 1


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_creating_needs_the_csrf_token(alice_app, dbsession, token):
    fields = {"name": "x"} if token is None else {"name": "x", "csrf_token": token}
    page = alice_app.post("/tokens", fields, status=400)
    assert "The form was stale" in text_of(page, "error-message")
    assert token_count(dbsession) == 0


# -- using a token, then revoking it -------------------------------------------------------------


def test_a_token_made_on_the_page_acts_as_its_owner_until_revoked(alice_app, tree, dbsession):
    grant(dbsession, "alice", tree["fedora"], "monitor")
    secret = text_of(create_through_the_form(alice_app, "laptop"), "new-token-secret")
    script = without_cookies(alice_app)
    pools = script.get("/api/v1/pools", headers=bearer(secret)).json
    assert {p["name"] for p in pools["items"]} == {"fedora", "fedora-vms"}
    script.get(f"/api/v1/pools/{tree['redhat'].id}", headers=bearer(secret), status=404)
    [token] = tokens_of(dbsession, "alice")
    assert token.last_used_at is not None
    assert token_rows(alice_app.get("/tokens"))[0][3] != "never"

    revoked = after_redirect(revoke_form(alice_app).submit())
    assert flashes(revoked, "success") == ["Token laptop revoked."]
    [row] = token_rows(revoked)
    assert row[4] != "—"
    assert by_testid(revoked, "revoke-form") is None
    answer = script.get("/api/v1/pools", headers=bearer(secret), status=401)
    assert_api_error(answer, 401, "unauthorized")


def test_token_create_and_revoke_are_audited_without_the_secret(alice_app, dbsession):
    secret = text_of(create_through_the_form(alice_app, "audited"), "new-token-secret")
    revoke_form(alice_app).submit(status=303)
    [token] = tokens_of(dbsession, "alice")
    events = dbsession.scalars(
        select(AuditEvent).where(AuditEvent.target_type == "token").order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.username, e.target_id) for e in events] == [
        ("token.create", "alice", token.id),
        ("token.revoke", "alice", token.id),
    ]
    assert events[0].after == {"name": "audited", "prefix": secret[:12], "revoked": False}
    assert events[1].after["revoked"] is True
    for event in events:
        assert secret not in json.dumps([event.before, event.after])
        assert token.token_hash not in json.dumps([event.before, event.after])


def test_revoking_twice_changes_nothing(alice_app, dbsession):
    create_through_the_form(alice_app, "t")
    [token] = tokens_of(dbsession, "alice")
    token_csrf = csrf_token(alice_app)
    alice_app.post(f"/tokens/{token.id}/revoke", {"csrf_token": token_csrf}, status=303)
    first = tokens_of(dbsession, "alice")[0].revoked_at
    alice_app.post(f"/tokens/{token.id}/revoke", {"csrf_token": token_csrf}, status=303)
    assert tokens_of(dbsession, "alice")[0].revoked_at == first
    revokes = select(func.count()).where(AuditEvent.action == "token.revoke")
    assert dbsession.scalar(revokes) == 1


def test_someone_elses_token_cannot_be_revoked(alice_app, dbsession):
    create_through_the_form(alice_app, "alice's")
    [token] = tokens_of(dbsession, "alice")
    alice_app.reset()
    login(alice_app, "bob")
    page = alice_app.post(
        f"/tokens/{token.id}/revoke", {"csrf_token": csrf_token(alice_app)}, status=404
    )
    assert "There is nothing here" in text_of(page, "error-message")
    assert tokens_of(dbsession, "alice")[0].revoked_at is None


@pytest.mark.parametrize("token_id", ["999999", "abc", "-1", "9" * 30])
def test_revoking_an_unknown_token_is_404(alice_app, token_id):
    alice_app.post(f"/tokens/{token_id}/revoke", {"csrf_token": csrf_token(alice_app)}, status=404)


def test_revoking_needs_the_csrf_token(alice_app, dbsession):
    create_through_the_form(alice_app, "t")
    [token] = tokens_of(dbsession, "alice")
    alice_app.post(f"/tokens/{token.id}/revoke", {"csrf_token": "wrong"}, status=400)
    alice_app.post(f"/tokens/{token.id}/revoke", status=400)
    assert tokens_of(dbsession, "alice")[0].revoked_at is None


# -- the API ------------------------------------------------------------------------------------

TOKEN_KEYS = {
    "id",
    "name",
    "prefix",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "url",
}


def test_api_create_list_use_and_revoke(alice_app, tree, dbsession):
    grant(dbsession, "alice", tree["redhat"], "user")
    created = send(alice_app, "POST", "/api/v1/tokens", {"name": "cron"}, status=201)
    assert created.headers["Cache-Control"] == "no-store"
    data = created.json
    assert set(data) == TOKEN_KEYS | {"token"}
    assert data["name"] == "cron"
    assert data["token"].startswith("fct_") and data["prefix"] == data["token"][:12]
    assert data["revoked_at"] is None and data["last_used_at"] is None
    assert data["url"] == f"http://example.com/api/v1/tokens/{data['id']}"

    listing = alice_app.get("/api/v1/tokens").json
    assert listing["total"] == 1 and listing["next"] is None
    [item] = listing["items"]
    assert set(item) == TOKEN_KEYS  # the secret is never listed
    assert item["id"] == data["id"]
    assert alice_app.get(data["url"]).json == item

    script = without_cookies(alice_app)
    pools = script.get("/api/v1/pools", headers=bearer(data["token"])).json
    assert {p["name"] for p in pools["items"]} == {"redhat", "redhat-vms"}
    # a token may list and revoke tokens (no CSRF needed), but not make new ones
    assert script.get("/api/v1/tokens", headers=bearer(data["token"])).json["total"] == 1
    refused = send(script, "POST", "/api/v1/tokens", {"name": "more"}, bearer(data["token"]))
    assert_api_error(refused, 403, "forbidden", "an API token cannot make API tokens")

    send(alice_app, "DELETE", data["url"], None, status=204)
    assert alice_app.get(data["url"]).json["revoked_at"] is not None
    send(alice_app, "DELETE", data["url"], None, status=204)  # again: no harm
    answer = script.get("/api/v1/pools", headers=bearer(data["token"]), status=401)
    assert_api_error(answer, 401, "unauthorized")
    assert len(tokens_of(dbsession, "alice")) == 1


def test_api_a_token_can_revoke_itself(alice_app, dbsession):
    data = send(alice_app, "POST", "/api/v1/tokens", {"name": "self"}, status=201).json
    script = without_cookies(alice_app)
    send(script, "DELETE", data["url"], None, bearer(data["token"]), status=204)
    script.get("/api/v1/tokens", headers=bearer(data["token"]), status=401)


@pytest.mark.parametrize(
    "body, status, code, message",
    [
        ({"name": ""}, 400, "invalid", "a token needs a name"),
        ({"name": "n" * 65}, 400, "invalid", "a token name has at most 64 characters"),
        ({"name": 12}, 400, "invalid", "'name' must be a string"),
        ({}, 400, "invalid", "'name' must be a string"),
        ({"name": "x", "token": "fct_mine"}, 400, "invalid", "unknown fields: token"),
        (["name"], 400, "invalid", "the request body must be a JSON object"),
        (b"{not json", 400, "invalid", "the request body is not JSON"),
        ({"name": "taken"}, 409, "conflict", "you already have a token named 'taken'"),
    ],
)
def test_api_create_refusals_write_nothing(alice_app, dbsession, body, status, code, message):
    send(alice_app, "POST", "/api/v1/tokens", {"name": "taken"}, status=201)
    before = audit_count(dbsession)
    answer = send(alice_app, "POST", "/api/v1/tokens", body)
    assert_api_error(answer, status, code, message)
    assert [t.name for t in tokens_of(dbsession, "alice")] == ["taken"]
    assert audit_count(dbsession) == before


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_api_changes_need_the_csrf_header_with_a_cookie_session(alice_app, dbsession, method):
    data = send(alice_app, "POST", "/api/v1/tokens", {"name": "t"}, status=201).json
    url = "/api/v1/tokens" if method == "POST" else data["url"]
    answer = send(alice_app, method, url, {"name": "other"}, headers={})
    assert_api_error(answer, 400, "bad_csrf")
    assert [(t.name, t.revoked_at) for t in tokens_of(dbsession, "alice")] == [("t", None)]


def test_api_someone_elses_token_is_404(alice_app, dbsession):
    data = send(alice_app, "POST", "/api/v1/tokens", {"name": "t"}, status=201).json
    alice_app.reset()
    login(alice_app, "bob")
    assert alice_app.get("/api/v1/tokens").json == {"items": [], "next": None, "total": 0}
    assert_api_error(alice_app.get(data["url"], status=404), 404, "not_found")
    assert_api_error(send(alice_app, "DELETE", data["url"], None), 404, "not_found")
    assert tokens_of(dbsession, "alice")[0].revoked_at is None


@pytest.mark.parametrize("token_id", ["999999", "abc", "0x1"])
def test_api_unknown_token_is_404(alice_app, token_id):
    assert_api_error(alice_app.get(f"/api/v1/tokens/{token_id}", status=404), 404, "not_found")


def test_the_admin_sees_only_their_own_tokens_too(admin_app, dbsession):
    alice = user_named(dbsession, "alice")
    token = ApiToken(user_id=alice.id, name="a", token_hash="a" * 64, prefix="fct_aaaaaaaa")
    dbsession.add(token)
    dbsession.flush()
    assert admin_app.get("/api/v1/tokens").json["total"] == 0
    assert token_rows(admin_app.get("/tokens")) == []
    admin_app.post(f"/tokens/{token.id}/revoke", {"csrf_token": csrf_token(admin_app)}, status=404)
    assert_api_error(
        send(admin_app, "DELETE", f"/api/v1/tokens/{token.id}", None), 404, "not_found"
    )


# -- a bearer token never falls back on the cookie ----------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["Bearer fct_bogus", "Bearer", "Bearer   ", "bearer fct_bogus", "Bearer not-ours"],
)
def test_a_bad_bearer_token_with_a_cookie_is_401_not_the_cookies_user(alice_app, dbsession, header):
    """The probe's CSRF bypass: a cookie session plus any bearer header made a token
    without the CSRF token.  Now the bad token decides: 401, nothing written."""
    send(alice_app, "POST", "/api/v1/tokens", {"name": "mine"}, status=201)
    before = audit_count(dbsession)
    for method, url, body in [
        ("POST", "/api/v1/tokens", {"name": "x"}),
        ("GET", "/api/v1/tokens", None),
        ("DELETE", f"/api/v1/tokens/{tokens_of(dbsession, 'alice')[0].id}", None),
    ]:
        if method == "GET":
            answer = alice_app.get(url, headers={"Authorization": header}, expect_errors=True)
        else:
            answer = send(alice_app, method, url, body, {"Authorization": header})
        assert_api_error(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert [(t.name, t.revoked_at) for t in tokens_of(dbsession, "alice")] == [("mine", None)]
    assert audit_count(dbsession) == before
    # the page's form with a bad bearer header is not carried out either
    alice_app.post("/tokens", {"name": "y"}, headers={"Authorization": header}, status=303)
    assert len(tokens_of(dbsession, "alice")) == 1


def test_a_revoked_bearer_token_with_a_cookie_is_401(alice_app, dbsession):
    data = send(alice_app, "POST", "/api/v1/tokens", {"name": "old"}, status=201).json
    send(alice_app, "DELETE", data["url"], None, status=204)
    answer = send(alice_app, "POST", "/api/v1/tokens", {"name": "x"}, bearer(data["token"]))
    assert_api_error(answer, 401, "unauthorized")
    assert [t.name for t in tokens_of(dbsession, "alice")] == ["old"]


def test_a_good_bearer_token_acts_as_its_owner_not_the_cookies(alice_app, tree, dbsession):
    grant(dbsession, "bob", tree["redhat"], "user")
    grant(dbsession, "alice", tree["fedora"], "user")
    bobs = without_cookies(alice_app)
    login(bobs, "bob")
    secret = send(bobs, "POST", "/api/v1/tokens", {"name": "b"}, status=201).json["token"]
    pools = alice_app.get("/api/v1/pools", headers=bearer(secret)).json
    assert {p["name"] for p in pools["items"]} == {"redhat", "redhat-vms"}
    # with a valid token no CSRF is asked, and the change is the token owner's
    data = send(alice_app, "DELETE", "/api/v1/tokens/999999", None, bearer(secret))
    assert_api_error(data, 404, "not_found")


def test_an_anonymous_api_call_is_told_how_to_authenticate(testapp, tree):
    answer = testapp.get("/api/v1/pools", status=401)
    assert_api_error(answer, 401, "unauthorized")
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="fedoracloud"'
