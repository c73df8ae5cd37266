"""Logging in and out, the session cookie, ``next``, anonymous requests and API tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from pyramid.interfaces import ISecurityPolicy
from pyramid.request import RequestLocalCache
from sqlalchemy import event, func, select

from fedoracloud.models import ApiToken, AuditEvent, User
from fedoracloud.models.meta import utcnow
from fedoracloud.security import hash_token

from ..conftest import PASSWORDS, csrf_token, login
from .conftest import (
    after_redirect,
    assert_api_error,
    each,
    flashes,
    grant,
    grant_group,
    location_path,
    text_of,
)


def submit_login(testapp, username, password, next_url=None, status=None):
    page = testapp.get("/login", {"next": next_url} if next_url is not None else {})
    form = page.forms[0]
    form["username"] = username
    form["password"] = password
    return form.submit(status=status)


def user_count(dbsession):
    return dbsession.scalar(select(func.count()).select_from(User))


# -- the login page ---------------------------------------------------------------------------


def test_login_page_has_a_form_with_csrf_token(testapp):
    page = testapp.get("/login")
    assert page.status_int == 200
    form = page.forms[0]
    assert form.method.lower() == "post"
    assert form["csrf_token"].value
    assert form["next"].value.endswith("/pools")
    assert "Log in to FedoraCloud" in page.text
    # nobody is logged in: no navigation, no log-out button
    assert "Log out" not in page.text


def test_good_password_logs_in_and_lands_on_the_pools(testapp, tree, dbsession):
    response = submit_login(testapp, "admin", PASSWORDS["admin"])
    assert response.status_int == 303
    assert location_path(response) == "/pools"
    page = response.follow()
    assert text_of(page, "current-user") == "admin (super admin)"
    user = dbsession.scalars(select(User).where(User.username == "admin")).one()
    assert user.last_login_at is not None
    assert dbsession.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "user.login", AuditEvent.user_id == user.id)
    )


def test_session_cookie_is_httponly_and_samesite_lax_but_not_secure_in_tests(testapp):
    response = submit_login(testapp, "alice", PASSWORDS["alice"])
    cookies = [c for c in response.headers.getall("Set-Cookie") if c.startswith("fedoracloud=")]
    assert len(cookies) == 1
    flags = [part.strip().lower() for part in cookies[0].split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "secure" not in flags  # fedoracloud.secure_cookies = false in the tests


def test_login_starts_a_fresh_session(testapp):
    before = testapp.cookies.get("fedoracloud")
    submit_login(testapp, "alice", PASSWORDS["alice"])
    assert testapp.cookies.get("fedoracloud") not in (None, before)


@pytest.mark.parametrize(
    "username, password",
    [
        ("admin", "wrong-password"),
        ("alice", PASSWORDS["admin"]),  # someone else's password
        ("mallory", "anything"),  # unknown user
        ("admin", ""),
        ("Admin", PASSWORDS["admin"]),  # usernames are lowercase
        ("a" * 65, "x"),  # longer than a username may be
        ("a" * 10_000, "x"),
        ("admin", "x" * 5000),
    ],
    ids=[
        "wrong",
        "other-users",
        "unknown",
        "empty",
        "uppercase",
        "65-chars",
        "10000-chars",
        "long-pw",
    ],
)
def test_bad_logins_are_refused_with_one_message_and_write_nothing(
    testapp, dbsession, username, password
):
    users_before = user_count(dbsession)
    page = submit_login(testapp, username, password, status=400)
    assert text_of(page, "login-error") == "Wrong username or password."
    # the form comes back with the name (cut to the field's length) and no password
    assert page.forms[0]["username"].value == username.strip()[:64]
    assert page.forms[0]["password"].value == ""
    assert user_count(dbsession) == users_before
    # still anonymous
    assert location_path(testapp.get("/pools", status=303)).startswith("/login")


def test_login_without_csrf_token_is_refused(testapp, dbsession):
    users_before = user_count(dbsession)
    response = testapp.post(
        "/login", {"username": "admin", "password": PASSWORDS["admin"]}, status=400
    )
    assert "did not come from this site" in text_of(response, "error-message")
    assert user_count(dbsession) == users_before
    assert location_path(testapp.get("/pools", status=303)).startswith("/login")


def test_logged_in_user_visiting_login_is_sent_on(testapp, tree):
    login(testapp, "admin")
    assert location_path(testapp.get("/login", status=303)) == "/pools"
    assert location_path(testapp.get("/login", {"next": "/hosts"}, status=303)) == "/hosts"
    assert location_path(testapp.get("/login", {"next": "//evil.example"}, status=303)) == "/pools"


# -- where a login leads ------------------------------------------------------------------------


def test_anonymous_page_request_comes_back_after_login(testapp, tree):
    response = testapp.get("/hosts", {"state": "available"}, status=303)
    assert location_path(response) == "/login?next=%2Fhosts%3Fstate%3Davailable"
    page = response.follow()
    assert page.forms[0]["next"].value == "/hosts?state=available"
    page.forms[0]["username"] = "admin"
    page.forms[0]["password"] = PASSWORDS["admin"]
    assert location_path(page.forms[0].submit(status=303)) == "/hosts?state=available"


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example",
        "//evil.example/pools",
        "http://evil.example",
        "https://evil.example/login",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        " //evil.example",
    ],
)
def test_next_never_leaves_the_site(testapp, tree, next_url):
    response = submit_login(testapp, "alice", PASSWORDS["alice"], next_url=next_url)
    assert location_path(response) == "/pools"


def test_next_with_characters_a_url_cannot_hold_goes_to_the_pools(testapp, tree):
    """Control characters or non-ASCII in ``next`` must not break the redirect (or the login)."""

    def check(next_url):
        response = submit_login(testapp, "alice", PASSWORDS["alice"], next_url=next_url)
        assert location_path(response) == "/pools"
        assert location_path(testapp.get("/login", {"next": next_url}, status=303)) == "/pools"
        testapp.post("/logout", {"csrf_token": csrf_token(testapp)}, status=303)

    each(
        ["/x\r\nSet-Cookie: a=b", "/x\ny", "/x\x00y", "/\u2603", "/pools?q=\u2603", "/a b"],
        check,
    )


def test_next_keeps_an_encoded_query(testapp, tree):
    response = submit_login(testapp, "alice", PASSWORDS["alice"], next_url="/hosts?q=%E2%98%83")
    assert location_path(response) == "/hosts?q=%E2%98%83"


def test_next_with_a_tab_stays_on_the_site(testapp, tree):
    # browsers drop tabs in URLs: "/\t/evil.example" must not turn into "//evil.example"
    response = submit_login(testapp, "alice", PASSWORDS["alice"], next_url="/\t/evil.example")
    assert response.headers["Location"].startswith("http://example.com/")
    assert "//evil.example" not in response.headers["Location"]


def test_next_is_escaped_in_the_login_form(testapp):
    page = testapp.get("/login", {"next": '/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    assert page.forms[0]["next"].value == '/"><script>alert(1)</script>'


# -- logging out --------------------------------------------------------------------------------


def test_logout_ends_the_session_and_says_so(testapp, tree):
    login(testapp, "admin")
    token = csrf_token(testapp)
    response = testapp.post("/logout", {"csrf_token": token}, status=303)
    assert location_path(response) == "/login"
    page = response.follow()
    assert flashes(page, "info") == ["You are logged out."]
    assert location_path(testapp.get("/pools", status=303)).startswith("/login")
    assert testapp.get("/api/v1/pools", status=401)


def test_a_copy_of_the_cookie_is_worthless_after_logout(testapp, tree):
    login(testapp, "admin")
    stolen = testapp.cookies["fedoracloud"]
    testapp.post("/logout", {"csrf_token": csrf_token(testapp)}, status=303)
    testapp.set_cookie("fedoracloud", stolen)
    assert location_path(testapp.get("/pools", status=303)).startswith("/login")
    assert_api_error(testapp.get("/api/v1/pools", status=401), 401, "unauthorized")


def test_logout_needs_the_csrf_token(testapp, tree):
    login(testapp, "admin")
    response = testapp.post("/logout", status=400)
    assert "did not come from this site" in text_of(response, "error-message")
    testapp.post("/logout", {"csrf_token": "wrong"}, status=400)
    assert testapp.get("/pools").status_int == 200  # still logged in


def test_logout_form_is_on_every_page(testapp, tree):
    login(testapp, "alice")
    page = testapp.get("/hosts")
    form = next(f for f in page.forms.values() if f.action.endswith("/logout"))
    assert location_path(form.submit(status=303)) == "/login"
    assert location_path(testapp.get("/hosts", status=303)).startswith("/login")


def test_an_inactive_user_is_logged_out(testapp, tree, dbsession):
    login(testapp, "alice")
    user = dbsession.scalars(select(User).where(User.username == "alice")).one()
    user.is_active = False
    dbsession.flush()
    assert location_path(testapp.get("/pools", status=303)).startswith("/login")
    assert_api_error(testapp.get("/api/v1/pools", status=401), 401, "unauthorized")


# -- anonymous requests -------------------------------------------------------------------------

HTML_GETS = ["/", "/pools", "/pools/{fedora}", "/hosts", "/hosts/{host}"]
HTML_POSTS = [
    "/pools/{fedora}/children",
    "/pools/{fedora}/rename",
    "/pools/{fedora}/move",
    "/pools/{fedora}/delete",
    "/hosts/{host}/move",
]
API_CALLS = [
    ("GET", "/api/v1/pools"),
    ("POST", "/api/v1/pools"),
    ("GET", "/api/v1/pools/{fedora}"),
    ("PATCH", "/api/v1/pools/{fedora}"),
    ("DELETE", "/api/v1/pools/{fedora}"),
    ("GET", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{host}"),
    ("PATCH", "/api/v1/hosts/{host}"),
]


@pytest.fixture
def urls(tree):
    from ..factories import HostFactory

    host = HostFactory(pool=tree["fedora"])
    return {"fedora": tree["fedora"].id, "host": host.id}


@pytest.mark.parametrize("path", HTML_GETS)
def test_anonymous_page_redirects_to_login(testapp, urls, path):
    path = path.format(**urls)
    response = testapp.get(path, status=303)
    assert location_path(response) == "/login?next=" + path.replace("/", "%2F")


@pytest.mark.parametrize("path", HTML_POSTS)
def test_anonymous_form_post_redirects_to_login_and_changes_nothing(testapp, urls, dbsession, path):
    from .conftest import snapshot

    before = snapshot(dbsession)
    response = testapp.post(path.format(**urls), {"name": "x", "parent": "1", "pool": "1"})
    assert response.status_int == 303
    # after logging in, a GET of a form's URL would only find nothing: go to the pools
    assert location_path(response) == "/login"
    assert snapshot(dbsession) == before


@pytest.mark.parametrize("method, path", API_CALLS)
def test_anonymous_api_call_is_401_json(testapp, urls, dbsession, method, path):
    from .conftest import snapshot

    before = snapshot(dbsession)
    if method == "GET":
        response = testapp.get(path.format(**urls), expect_errors=True)
    else:
        response = getattr(testapp, method.lower())(
            path.format(**urls),
            params=b'{"name": "x"}',
            content_type="application/json",
            expect_errors=True,
        )
    assert_api_error(response, 401, "unauthorized", "Log in")
    assert snapshot(dbsession) == before


@pytest.mark.parametrize(
    "path",
    ["/pools/999999", "/hosts/999999", "/pools/abc", "/api/v1/pools/999999", "/api/v1/hosts/x"],
)
def test_anonymous_cannot_tell_which_ids_exist(testapp, tree, path):
    """An unknown id answers like a known one: log in first (no 404 to probe with)."""
    response = testapp.get(path, expect_errors=True)
    if path.startswith("/api/"):
        assert_api_error(response, 401, "unauthorized")
    else:
        assert response.status_int == 303
        assert location_path(response).startswith("/login?next=")


def test_login_page_and_static_files_need_no_login(testapp):
    assert testapp.get("/login").status_int == 200
    assert testapp.get("/static/fedoracloud.css").status_int == 200


# -- API tokens ---------------------------------------------------------------------------------


def make_token(dbsession, username, secret="fct_" + "s" * 40, **values):
    user = dbsession.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username)
        dbsession.add(user)
        dbsession.flush()
    dbsession.add(
        ApiToken(
            user_id=user.id,
            name="script",
            token_hash=hash_token(secret),
            prefix=secret[:8],
            **values,
        )
    )
    dbsession.flush()
    return {"Authorization": f"Bearer {secret}"}


def test_api_token_works_without_cookie_or_csrf(testapp, tree, dbsession):
    headers = make_token(dbsession, "admin")
    listing = testapp.get("/api/v1/pools", headers=headers)
    assert listing.json["total"] == len(tree)
    created = testapp.post_json(
        "/api/v1/pools",
        {"name": "scripted", "kind": "hardware", "parent": tree["fedora"].id},
        headers=headers,
        status=201,
    )
    assert created.json["name"] == "scripted"
    token = dbsession.scalars(select(ApiToken)).one()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer fct_not-a-known-token",
        "Bearer " + "s" * 44,  # no fct_ prefix
        "Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=",
        "Bearer",
    ],
)
def test_unknown_api_tokens_are_401(testapp, tree, dbsession, header):
    make_token(dbsession, "admin")
    assert_api_error(
        testapp.get("/api/v1/pools", headers={"Authorization": header}, status=401),
        401,
        "unauthorized",
    )


@pytest.mark.parametrize(
    "values",
    [
        {"revoked_at": utcnow() - timedelta(minutes=1)},
        {"expires_at": utcnow() - timedelta(seconds=1)},
    ],
    ids=["revoked", "expired"],
)
def test_revoked_or_expired_api_token_is_401(testapp, tree, dbsession, values):
    headers = make_token(dbsession, "admin", **values)
    assert_api_error(testapp.get("/api/v1/pools", headers=headers, status=401), 401, "unauthorized")


def test_api_token_of_a_user_without_grants_sees_nothing(testapp, tree, dbsession):
    headers = make_token(dbsession, "bob")
    assert testapp.get("/api/v1/pools", headers=headers).json == {
        "items": [],
        "next": None,
        "total": 0,
    }
    assert_api_error(
        testapp.get(f"/api/v1/pools/{tree['fedora'].id}", headers=headers, status=404),
        404,
        "not_found",
    )


def test_login_shows_the_logged_out_flash_once(testapp, tree):
    login(testapp, "bob")
    testapp.post("/logout", {"csrf_token": csrf_token(testapp)})
    first = testapp.get("/login")
    assert flashes(first, "info") == ["You are logged out."]
    assert flashes(testapp.get("/login"), "info") == []
    page = after_redirect(submit_login(testapp, "bob", PASSWORDS["bob"]))
    assert text_of(page, "current-user") == "bob"


@contextmanager
def statements_while_loading_identity(app, engine) -> Iterator[list[str]]:
    """The SQL statements the security policy issues while it loads an identity."""
    policy = app.registry.getUtility(ISecurityPolicy)
    original = policy.identity_cache
    inside, seen = [False], []

    def note(conn, cursor, statement, *args):
        if inside[0] and not statement.startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            seen.append(statement)

    def load_identity(request):
        inside[0] = True
        try:
            return policy.load_identity(request)
        finally:
            inside[0] = False

    policy.identity_cache = RequestLocalCache(load_identity)
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)
        policy.identity_cache = original


def test_identity_costs_at_most_two_statements(testapp, app, tree, dbsession, dbengine):
    """Who is asking and what reaches them: the session or token with its user and
    memberships, then the grants (the user's and their groups')."""
    grant(dbsession, "alice", tree["fedora"], "user")
    grant_group(dbsession, "sysadmin-cloud", tree["redhat"], "monitor")
    headers = make_token(dbsession, "alice")
    testapp.get("/api/v1/pools", headers=headers)  # the first call refreshes memberships
    login(testapp, "alice")
    testapp.get("/api/v1/pools")
    dbsession.expunge_all()  # nothing comes from the session's identity map
    with statements_while_loading_identity(app, dbengine) as seen:
        testapp.get("/api/v1/pools", headers=headers)
    assert len(seen) <= 2, seen
    dbsession.expunge_all()
    with statements_while_loading_identity(app, dbengine) as seen:
        pools = testapp.get("/api/v1/pools").json
    assert len(seen) <= 2, seen
    assert {p["name"] for p in pools["items"]} == {"fedora", "fedora-vms", "redhat", "redhat-vms"}


def test_an_api_tokens_last_use_is_written_at_most_once_a_minute(testapp, tree, dbsession):
    headers = make_token(dbsession, "alice")
    token = dbsession.scalars(select(ApiToken)).one()
    testapp.get("/api/v1/pools", headers=headers)
    first = token.last_used_at
    assert first is not None
    testapp.get("/api/v1/pools", headers=headers)
    dbsession.refresh(token)
    assert token.last_used_at == first
    token.last_used_at = first - timedelta(seconds=61)
    dbsession.flush()
    testapp.get("/api/v1/pools", headers=headers)
    dbsession.refresh(token)
    assert token.last_used_at > first - timedelta(seconds=61)
