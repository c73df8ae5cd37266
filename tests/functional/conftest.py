"""Helpers for the functional tests: WebTest through the real app and security policy.

The shared ``testapp`` runs every request inside the test's own transaction, so
pyramid_tm (which would abort a request that ended in an exception view) stands aside.
The ``testapp`` here puts that back: each request runs in a savepoint that is rolled
back when the answer is an error, as pyramid_tm's abort would in production.  So a
test that checks "a refused request writes nothing" checks what a real deployment does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import webtest
from sqlalchemy import func, select

from fedoracloud.models import Pool, RoleGrant, User

from ..conftest import csrf_token


class AbortOnError:
    """WSGI middleware: a savepoint per request, rolled back on a 4xx/5xx answer."""

    def __init__(self, app: Any, dbsession: Any) -> None:
        self.app = app
        self.dbsession = dbsession

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        savepoint = self.dbsession.begin_nested()
        status: list[int] = []

        def record_status(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, exc_info)

        try:
            body = list(self.app(environ, record_status))
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise
        if savepoint.is_active:
            if status and status[0] >= 400:
                savepoint.rollback()
            else:
                savepoint.commit()
        return body


@pytest.fixture
def testapp(testapp: webtest.TestApp, dbsession: Any) -> webtest.TestApp:
    """The shared WebTest app, with pyramid_tm's abort-on-error put back."""
    testapp.app = AbortOnError(testapp.app, dbsession)
    return testapp


def each(rows: Iterable[Any], check: Callable[..., None]) -> None:
    """Run ``check(*row)`` (``check(row)`` if the row is not a tuple) for every row of a
    table of refusals, in one test (one login, one tree); report every failing row at once."""
    failures = []
    for row in rows:
        try:
            check(*row) if isinstance(row, tuple) else check(row)
        except AssertionError as exc:
            failures.append(f"{row!r}: {exc}")
    assert not failures, f"{len(failures)} row(s) failed:\n" + "\n".join(failures)


# -- reading pages ---------------------------------------------------------------------------


def by_testid(page: webtest.TestResponse, testid: str) -> Any:
    """The element with ``data-testid=testid`` (or None)."""
    return page.html.find(attrs={"data-testid": testid})


def text_of(page: webtest.TestResponse, testid: str) -> str:
    """The whitespace-normalized text of the element with this ``data-testid``."""
    element = by_testid(page, testid)
    assert element is not None, f"no data-testid={testid!r} on the page"
    return " ".join(element.get_text(" ").split())


def flashes(page: webtest.TestResponse, queue: str) -> list[str]:
    """The flash messages of one queue shown on a page."""
    return [
        " ".join(el.get_text(" ").split())
        for el in page.html.find_all(attrs={"data-testid": f"flash-{queue}"})
    ]


def after_redirect(response: webtest.TestResponse) -> webtest.TestResponse:
    """Follow a 303 from a form and return the page it lands on."""
    assert response.status_int == 303, response.text[:500]
    return response.follow()


def location_path(response: webtest.TestResponse) -> str:
    """The path (and query) a redirect points at, on this site."""
    location = response.headers["Location"]
    assert location.startswith("http://example.com/"), location
    return location[len("http://example.com") :]


def host_rows(page: webtest.TestResponse) -> list[str]:
    """The host names in the host list's table, top to bottom."""
    table = by_testid(page, "host-table")
    if table is None:
        return []
    return [
        row.find("td").get_text(strip=True)
        for row in table.find_all(attrs={"data-testid": "host-row"})
    ]


def tree_names(page: webtest.TestResponse) -> list[str]:
    """The pool names in the pool tree page, in document order."""
    return [
        re.sub(r"^pool-", "", li["data-testid"])
        for li in page.html.find_all("li", attrs={"data-testid": re.compile("^pool-")})
    ]


# -- the API ---------------------------------------------------------------------------------


def session_csrf(app: webtest.TestApp) -> str:
    """The session's CSRF token, as ``csrf_token(app)`` gives it, but cheaper: remembered
    while the session cookie stays the same, else read from the smallest page that has
    the log-out form (a 404 page) instead of the pool tree."""
    cache = app.__dict__.setdefault("_csrf_by_cookie", {})
    cookie = app.cookies.get("fedoracloud")
    if cookie not in cache:
        page = app.get("/pools/0", expect_errors=True)
        field = page.html.find("input", {"name": "csrf_token"}) if page.status_int == 404 else None
        token = field["value"] if field is not None else csrf_token(app)
        cache.clear()
        # reading the page may have reissued the cookie: remember the token under both
        cache[cookie] = cache[app.cookies.get("fedoracloud")] = token
    return cache[cookie]


def api_headers(app: webtest.TestApp) -> dict[str, str]:
    """The header a cookie session's API call needs for POST, PATCH and DELETE."""
    return {"X-CSRF-Token": session_csrf(app)}


def assert_api_error(
    response: webtest.TestResponse, status: int, code: str, text: str = ""
) -> None:
    """An API error has one shape: ``{"error": {"code", "message", "details"}}``."""
    assert response.status_int == status, response.text[:500]
    assert response.content_type == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["details"], dict)
    assert text in error["message"], error["message"]


# -- the database ----------------------------------------------------------------------------


def user_named(dbsession: Any, username: str) -> User:
    """The user with this name, created if they never logged in."""
    user = dbsession.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username)
        dbsession.add(user)
        dbsession.flush()
    return user


def grant(dbsession: Any, username: str, pool: Pool, role: str) -> RoleGrant:
    """Give a user a role on a pool (and so on its subtree)."""
    row = RoleGrant(user_id=user_named(dbsession, username).id, pool_id=pool.id, role=role)
    dbsession.add(row)
    dbsession.flush()
    return row


def grant_group(dbsession: Any, group: str, pool: Pool, role: str) -> RoleGrant:
    """Give a group a role on a pool (memberships come from the test groups file)."""
    row = RoleGrant(group_name=group, pool_id=pool.id, role=role)
    dbsession.add(row)
    dbsession.flush()
    return row


def pool_named(dbsession: Any, name: str) -> Pool | None:
    """The (first) pool with this name, read fresh from the database."""
    dbsession.expire_all()
    return dbsession.scalars(select(Pool).where(Pool.name == name)).first()


def pool_count(dbsession: Any) -> int:
    """How many pools exist."""
    return dbsession.scalar(select(func.count()).select_from(Pool)) or 0


def snapshot(dbsession: Any) -> list[tuple[int, str, int | None, str]]:
    """Every pool's (id, name, parent, path): equal before and after means nothing changed."""
    dbsession.expire_all()
    rows = dbsession.execute(
        select(Pool.id, Pool.name, Pool.parent_id, Pool.path).order_by(Pool.id)
    )
    return [(row.id, row.name, row.parent_id, row.path) for row in rows]


def ids(items: Iterable[dict[str, Any]]) -> list[int]:
    """The ``id`` of each item of an API list."""
    return [item["id"] for item in items]
