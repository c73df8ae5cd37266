"""With ``fedoracloud.public_url`` set, absolute URLs (``url`` fields, redirects, the
enrollment command) come from it, never from the Host header the client chose."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from fedoracloud import main
from fedoracloud.settings import ConfigError

from ..conftest import PASSWORDS
from .test_auth import make_token

PUBLIC = "https://cloud.example.org:8443"


@pytest.fixture(scope="module")
def pinned_app(app_settings: dict[str, Any], dbengine: Any) -> Any:
    return main({}, **dict(app_settings, **{"fedoracloud.public_url": PUBLIC + "/"}))


@pytest.fixture
def evil_host(pinned_app: Any, tm: Any, dbsession: Any, tree: Any) -> webtest.TestApp:
    """A client that sends ``Host: evil.example``."""
    return webtest.TestApp(
        pinned_app,
        extra_environ={
            "HTTP_HOST": "evil.example",
            "tm.active": True,
            "tm.manager": tm,
            "app.dbsession": dbsession,
        },
    )


def test_url_fields_and_redirects_use_the_public_url(evil_host, dbsession, tree):
    headers = make_token(dbsession, "admin")
    pools = evil_host.get("/api/v1/pools", headers=headers).json
    assert pools["items"] and all(
        p["url"].startswith(f"{PUBLIC}/api/v1/pools/") for p in pools["items"]
    )
    assert evil_host.get("/tokens", status=303).location == f"{PUBLIC}/login?next=%2Ftokens"
    form = evil_host.get("/login").forms[0]
    assert form.action == f"{PUBLIC}/login"
    fields = {
        "csrf_token": form["csrf_token"].value,
        "username": "admin",
        "password": PASSWORDS["admin"],
    }
    # posted to the path (WebTest would keep the public URL's host for its cookies)
    answer = evil_host.post("/login", fields, headers={"Referer": f"{PUBLIC}/login"})
    assert answer.status_int == 303 and answer.location == f"{PUBLIC}/pools"


def test_without_the_setting_urls_follow_the_request(testapp, dbsession, tree):
    headers = make_token(dbsession, "admin")
    [first, *_] = testapp.get("/api/v1/pools", headers=headers).json["items"]
    assert first["url"].startswith("http://example.com/api/v1/pools/")


@pytest.mark.parametrize("value", ["cloud.example.org", "ftp://cloud.example.org", "https://"])
def test_a_bad_public_url_stops_the_app(app_settings, value):
    with pytest.raises(ConfigError, match=r"fedoracloud\.public_url"):
        main({}, **dict(app_settings, **{"fedoracloud.public_url": value}))
