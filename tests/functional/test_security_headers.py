"""Every answer carries the browser protections itself (not only behind the deployment's
httpd): a Content-Security-Policy, no framing, no MIME sniffing, no cross-site Referer;
the API's answers are not stored by caches."""

from __future__ import annotations

import pytest

from fedoracloud.security import content_security_policy

from ..conftest import login
from .test_auth import make_token

PROTECTIONS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def assert_protected(response) -> None:
    for name, value in PROTECTIONS.items():
        assert response.headers.get(name) == value, (name, response.request.path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-eval'" not in csp and "script-src 'self' 'unsafe-inline'" not in csp


@pytest.mark.parametrize("path", ["/login", "/api/v1/openapi.json", "/nowhere"])
def test_anonymous_answers_are_protected(testapp, tree, path):
    assert_protected(testapp.get(path, expect_errors=True))


def test_pages_and_errors_of_a_logged_in_user_are_protected(testapp, tree):
    login(testapp, "alice")
    for path in ["/pools", "/vms", "/tokens", "/pools/999999"]:
        assert_protected(testapp.get(path, expect_errors=True))


def test_authenticated_api_answers_are_not_stored(testapp, tree, dbsession):
    headers = make_token(dbsession, "alice")
    for path in ["/api/v1/pools", "/api/v1/vms", "/api/v1/pools/999999"]:
        answer = testapp.get(path, headers=headers, expect_errors=True)
        assert answer.headers["Cache-Control"] == "no-store", path
        assert_protected(answer)
    login(testapp, "alice")
    assert testapp.get("/api/v1/tokens").headers["Cache-Control"] == "no-store"


def test_the_console_may_reach_a_proxy_configured_apart():
    assert "connect-src 'self';" in content_security_policy("/console/")
    csp = content_security_policy("wss://console.example.org:6080/")
    assert "connect-src 'self' wss://console.example.org:6080;" in csp
