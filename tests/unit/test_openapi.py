"""The OpenAPI document's merger (fragments that clash stop the app, naming both files) and
the response check's three modes (fail, log, off)."""

from __future__ import annotations

import logging
import os
import shutil
from types import SimpleNamespace
from typing import Any

import pytest
from pyramid.request import Request
from pyramid.response import Response

from fedoracloud import openapi
from fedoracloud.openapi import DocumentError, OpenApiSettings, build, load_document
from fedoracloud.openapi.validation import (
    ResponseDoesNotMatch,
    response_problems,
    response_validation_tween_factory,
)
from fedoracloud.settings import ConfigError

PING = """
paths:
  /api/v1/ping:
    get:
      responses:
        "200":
          description: pong
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [pong]
                properties:
                  pong: {type: boolean}
"""


@pytest.fixture
def directory(tmp_path: Any) -> str:
    shutil.copy(os.path.join(openapi.DIRECTORY, "base.yaml"), tmp_path / "base.yaml")
    (tmp_path / "ping.yaml").write_text(PING)
    return str(tmp_path)


def test_fragments_are_merged_with_the_common_answers(directory):
    document = load_document(directory)
    operation = document["paths"]["/api/v1/ping"]["get"]
    assert set(operation["responses"]) == {"200", "401", "403", "429", "503"}
    assert "Error" in document["components"]["schemas"]


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("other.yaml", PING.replace("boolean", "string"), "GET /api/v1/ping is already described"),
        ("bad.yaml", "info: {title: x}\npaths: {}\n", "only 'paths' and 'components'"),
        ("web.yaml", "paths:\n  /pools: {get: {responses: {}}}\n", "is not under /api/v1/"),
        ("list.yaml", "- 1\n", "not a YAML mapping"),
        ("broken.yaml", "paths: {\n", "cannot be read"),
        (
            "clash.yaml",
            "components:\n  schemas:\n    Error: {type: string}\n",
            "components.schemas.Error is already described in base.yaml",
        ),
    ],
)
def test_a_fragment_that_clashes_or_is_malformed_names_itself(directory, name, text, words):
    with open(os.path.join(directory, name), "w") as out:
        out.write(text)
    with pytest.raises(DocumentError) as raised:
        load_document(directory)
    assert words in str(raised.value)
    assert name in str(raised.value)


def test_the_same_description_twice_is_no_clash(directory):
    with open(os.path.join(directory, "again.yaml"), "w") as out:
        out.write(PING)
    assert "/api/v1/ping" in load_document(directory)["paths"]


def test_an_invalid_document_stops_at_build(directory):
    with open(os.path.join(directory, "wrong.yaml"), "w") as out:
        out.write("paths:\n  /api/v1/wrong:\n    get:\n      responses: {'200': {}}\n")
    with pytest.raises(DocumentError, match="invalid at paths"):
        build(directory)


@pytest.mark.parametrize(
    "raw, mode",
    [(None, "false"), ("true", "true"), ("LOG", "log"), ("0", "false")],
)
def test_the_response_mode_setting(raw, mode):
    extra = {} if raw is None else {"fedoracloud.openapi.validate_responses": raw}
    assert OpenApiSettings.from_settings(SimpleNamespace(extra=extra)).validate_responses == mode


def test_a_bad_response_mode_names_the_setting():
    extra = {"fedoracloud.openapi.validate_responses": "sometimes"}
    with pytest.raises(ConfigError, match=r"fedoracloud\.openapi\.validate_responses"):
        OpenApiSettings.from_settings(SimpleNamespace(extra=extra))


def _call(directory: str, mode: str, body: bytes, status: int = 200) -> Response:
    api = build(directory)
    registry = {"openapi": api, "openapi_settings": OpenApiSettings(True, mode)}

    def handler(request: Any) -> Response:
        return Response(body=body, status=status, content_type="application/json")

    request = Request.blank("/api/v1/ping")
    request.matched_route = SimpleNamespace(pattern="/api/v1/ping")
    return response_validation_tween_factory(handler, registry)(request)


def test_a_response_outside_the_document_fails_in_strict_mode(directory):
    assert _call(directory, "true", b'{"pong": true}').status_code == 200
    with pytest.raises(ResponseDoesNotMatch, match='pong: "yes" is not of type "boolean"'):
        _call(directory, "true", b'{"pong": "yes"}')
    with pytest.raises(ResponseDoesNotMatch, match="status 418 is not documented"):
        _call(directory, "true", b"{}", status=418)
    with pytest.raises(ResponseDoesNotMatch, match="Additional properties"):
        _call(directory, "true", b'{"pong": true, "secret": 1}')
    with pytest.raises(ResponseDoesNotMatch, match="the body is not JSON"):
        _call(directory, "true", b"<html>")


def test_a_response_of_an_undocumented_content_type_fails(directory):
    api = build(directory)
    request = Request.blank("/api/v1/ping")
    answer = Response(body=b"<p>pong</p>", content_type="text/html")
    assert response_problems(api, request, answer, "/api/v1/ping") == [
        "content type 'text/html' is not documented (application/json)"
    ]


def test_a_response_outside_the_document_is_logged_or_ignored(directory, caplog):
    with caplog.at_level(logging.ERROR, logger="fedoracloud.openapi.validation"):
        answer = _call(directory, "log", b'{"pong": "yes"}')
    assert answer.json == {"pong": "yes"}
    assert "does not match the API document (GET /api/v1/ping)" in caplog.text
    caplog.clear()
    assert _call(directory, "false", b'{"pong": "yes"}').json == {"pong": "yes"}
    assert caplog.text == ""


def test_response_problems_read_like_sentences(directory):
    api = build(directory)
    request = Request.blank("/api/v1/ping")
    answer = Response(body=b'{"pong": 1}', content_type="application/json")
    assert response_problems(api, request, answer, "/api/v1/ping") == [
        'pong: 1 is not of type "boolean"'
    ]
