"""The database does not answer: a 503 with ``Retry-After``, JSON for the API and a page
for a browser, and never a traceback or an answer without a content type."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from fedoracloud import main

from .conftest import assert_api_error

#: nothing listens there: every statement fails with OperationalError
NOWHERE = {
    "sqlite": "sqlite:////nonexistent-directory/fedoracloud.sqlite",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2",
}


@pytest.fixture
def down_app(app_settings: dict[str, Any], db_kind: str) -> webtest.TestApp:
    """The real app (with WebTest's WSGI checks) whose database is not there."""
    app = main({}, **dict(app_settings, **{"sqlalchemy.url": NOWHERE[db_kind]}))
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})


def test_an_api_call_is_a_json_503_with_retry_after(down_app):
    answer = down_app.get(
        "/api/v1/pools", headers={"Authorization": "Bearer fct_" + "x" * 40}, status=503
    )
    assert_api_error(answer, 503, "database_unavailable", "Try again in 5 seconds")
    assert answer.headers["Retry-After"] == "5"
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_page_is_an_html_503_with_retry_after(down_app, alice_app):
    down_app.set_cookie("fedoracloud", alice_app.cookies["fedoracloud"])
    page = down_app.get("/vms", status=503)
    assert page.content_type == "text/html"
    assert page.headers["Retry-After"] == "5"
    assert "Try again in 5 seconds" in page.html.find(attrs={"data-testid": "error-message"}).text
