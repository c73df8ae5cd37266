"""The JSON API under ``/api/v1/``: lists are ``{"items": [...], "next": URL-or-null}``."""

from __future__ import annotations

from typing import Any

from ...request import FcRequest
from ...resources import ID_MAX
from ...services import InvalidInput

#: ids are below this (PostgreSQL integers, as in the URLs)
ID_LIMIT = ID_MAX + 1


def json_body(request: FcRequest, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The request's JSON object, or InvalidInput saying what is wrong with it (including,
    when ``fields`` is given, any field outside it)."""
    try:
        body = request.json_body
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = set(body) - fields if fields is not None else set()
    if unknown:
        raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
    return body


def int_field(body: dict[str, Any], key: str, required: bool = True) -> int | None:
    """An integer id from a JSON body."""
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < ID_LIMIT:
        raise InvalidInput(f"'{key}' must be a pool id (a positive integer)", {"field": key})
    return value


def str_field(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    """A string from a JSON body."""
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string", {"field": key})
    return value
