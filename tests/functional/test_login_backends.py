"""Logging in through the app with each backend: OIDC against a real OpenID provider on
loopback, FAS2 against a FAS2 server speaking python-fedora's protocol, and htpasswd."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import webtest
from sqlalchemy import select

from fedoracloud import main
from fedoracloud.models import GroupMembership, LoginSession, User

from ..fas_server import fas_server  # noqa: F401 - fixture
from ..oidc_provider import TestUser, oidc_provider  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def app_with(app_settings: dict[str, Any], tm: Any, dbsession: Any, **overrides: str) -> Any:
    """The real app with another login backend, sharing the test's transaction."""
    app = main({}, **{**app_settings, **overrides})
    return webtest.TestApp(
        app,
        extra_environ={
            "HTTP_HOST": "example.com",
            "tm.active": True,
            "tm.manager": tm,
            "app.dbsession": dbsession,
        },
    )


def oidc_login(testapp: Any, next_path: str = "/pools") -> Any:
    """Follow the whole redirect dance: app → provider → app's callback."""
    start = testapp.get("/login", params={"next": next_path})
    assert start.status_int == 303
    at_provider = requests.get(start.location, allow_redirects=False, timeout=10)
    assert at_provider.status_code in (302, 303), at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == "/oidc/callback"
    return testapp.get(f"{back.path}?{back.query}", expect_errors=True)


@pytest.fixture
def oidc_app(app_settings, tm, dbsession, oidc_provider):  # noqa: F811
    return app_with(app_settings, tm, dbsession, **oidc_provider.ini_settings())


def test_oidc_member_logs_in_and_memberships_are_recorded(oidc_app, oidc_provider, dbsession, tree):  # noqa: F811
    started = time.perf_counter()
    done = oidc_login(oidc_app, "/hosts")
    elapsed = time.perf_counter() - started
    print(f"\nfull OIDC login through the app: {elapsed * 1000:.1f} ms")
    assert done.status_int == 303 and done.location.endswith("/hosts")
    assert oidc_app.get("/hosts").status_int == 200
    user = dbsession.scalars(select(User).where(User.username == "alice")).one()
    assert user.display_name == "Alice Liddell"
    groups = {m.group_name for m in user.memberships}
    assert {"sysadmin-cloud", "packager"} <= groups
    session = dbsession.scalars(select(LoginSession).where(LoginSession.user_id == user.id)).one()
    assert session.backend == "oidc" and session.provider_tokens["refresh_token"]


def test_oidc_outsider_is_asked_to_request_access(oidc_app, oidc_provider):  # noqa: F811
    oidc_provider.user = TestUser(
        sub="x-2", nickname="mallory", preferred_username="mallory", groups=["packager"]
    )
    oidc_login(oidc_app)
    page = oidc_app.get("/pools")
    assert page.status_int == 303 and page.location.endswith("/access")
    assert "not a member of sysadmin-cloud" in oidc_app.get("/access").text


def test_oidc_missing_groups_claim_means_no_access(oidc_app, oidc_provider):  # noqa: F811
    oidc_provider.user = TestUser(
        sub="x-3", nickname="nogroups", preferred_username="nogroups", groups=None
    )
    oidc_login(oidc_app)
    assert oidc_app.get("/api/v1/pools", expect_errors=True).json["error"]["code"] == "no_access"


@pytest.mark.parametrize(
    "fault", ["tamper_next_id_token", "wrong_nonce_next", "expire_next_id_token"]
)
def test_oidc_bad_tokens_are_refused_without_a_session(oidc_app, oidc_provider, fault, dbsession):  # noqa: F811
    getattr(oidc_provider, fault)()
    page = oidc_login(oidc_app)
    assert page.status_int == 400
    assert "tampered with or expired" in page.text
    assert dbsession.scalars(select(LoginSession)).first() is None
    assert oidc_app.get("/pools").status_int == 303  # still anonymous → login


def test_oidc_provider_down_is_a_clear_503(oidc_app, oidc_provider):  # noqa: F811
    oidc_provider.stop()
    page = oidc_app.get("/login", expect_errors=True)
    assert page.status_int == 503
    assert "Fedora Accounts could not be reached" in page.text


def test_oidc_callback_without_a_login_in_progress(oidc_app):
    page = oidc_app.get("/oidc/callback?code=x&state=y", expect_errors=True)
    assert page.status_int == 400 and "expired" in page.text


def test_oidc_membership_removed_loses_access_after_ttl(oidc_app, oidc_provider, dbsession):  # noqa: F811
    oidc_login(oidc_app)
    assert oidc_app.get("/pools").status_int == 200
    oidc_provider.user = TestUser(groups=["packager"])  # removed from sysadmin-cloud
    session = dbsession.scalars(select(LoginSession)).one()
    session.memberships_checked_at = session.memberships_checked_at.replace(year=2000)
    assert oidc_app.get("/pools").location.endswith("/access")


@pytest.fixture
def fas_app(app_settings, tm, dbsession, fas_server):  # noqa: F811
    fas_server.add_person("fasalice", "pw-alice", "Alice FAS", groups={"sysadmin-cloud": "user"})
    fas_server.add_person(
        "fasolga", "pw-olga", "Olga FAS", groups={"sysadmin-cloud": "administrator"}
    )
    fas_server.add_person("faspending", "pw-p", groups={"sysadmin-cloud": ("user", "unapproved")})
    fas_server.add_person("fasout", "pw-out", groups={"packager": "user"})
    return app_with(
        app_settings,
        tm,
        dbsession,
        **{
            "fedoracloud.auth.backend": "fas",
            "fedoracloud.fas.base_url": fas_server.base_url,
            "fedoracloud.fas.username": "cloudsvc",
            "fedoracloud.fas.password": "service-password",
        },
    )


def fas_login(app: Any, username: str, password: str) -> Any:
    form = app.get("/login").forms[0]
    form["username"], form["password"] = username, password
    return form.submit(expect_errors=True)


@pytest.mark.parametrize(
    "username, password, status, lands",
    [
        ("fasalice", "pw-alice", 303, "/pools"),
        ("fasolga", "pw-olga", 303, "/pools"),
        ("faspending", "pw-p", 303, "/access"),
        ("fasout", "pw-out", 303, "/access"),
        ("fasalice", "wrong", 400, None),
        ("nobody", "x", 400, None),
    ],
)
def test_fas_logins(fas_app, username, password, status, lands):
    done = fas_login(fas_app, username, password)
    assert done.status_int == status
    if lands is None:
        assert "Wrong username or password" in done.text
        return
    after = fas_app.get("/pools")
    if lands == "/pools":
        assert after.status_int == 200
    else:
        assert after.location.endswith("/access")


def test_fas_administrator_is_super_admin(fas_app, tree):
    fas_login(fas_app, "fasolga", "pw-olga")
    assert "(super admin)" in fas_app.get("/pools").text
    fas_app.reset()
    fas_login(fas_app, "fasalice", "pw-alice")
    assert "(super admin)" not in fas_app.get("/pools").text


def test_fas_unapproved_membership_is_recorded_as_such(fas_app, dbsession):
    fas_login(fas_app, "faspending", "pw-p")
    row = dbsession.scalars(
        select(GroupMembership).join(User).where(User.username == "faspending")
    ).one()
    assert (row.group_name, row.status) == ("sysadmin-cloud", "unapproved")


def test_fas_down_is_a_clear_503(fas_app, fas_server):  # noqa: F811
    fas_server.stop()
    page = fas_login(fas_app, "fasalice", "pw-alice")
    assert page.status_int == 503
    assert "FAS could not be reached" in page.text


def test_fas_user_picker_lists_only_grantable_people(fas_app, tree):
    fas_login(fas_app, "fasolga", "pw-olga")
    people = {p["username"] for p in fas_app.get("/api/v1/users").json["items"]}
    assert {"fasalice", "fasolga"} <= people
    assert "faspending" not in people and "fasout" not in people
