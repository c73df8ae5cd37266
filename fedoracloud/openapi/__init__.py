"""The API contract: one OpenAPI 3.1 document for every ``/api/v1/`` route, merged at start-up
from ``base.yaml`` and one fragment per domain (``<domain>.yaml``: top-level ``paths`` and
optional ``components``), served at ``/api/v1/openapi.json``, and enforced: requests are
validated before the view runs, responses after it (see ``validation``).

A fragment may not describe an operation or a component another file already describes
differently: the app refuses to start, naming both files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from ..settings import ConfigError

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
BASE = "base.yaml"
API_PREFIX = "/api/v1/"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
UNSAFE = ("put", "post", "delete", "patch")
FRAGMENT_KEYS = frozenset({"paths", "components"})
RESPONSE_MODES = ("true", "log", "false")


class DocumentError(Exception):
    """A fragment is malformed or clashes with another file; the message names them."""


@dataclass(frozen=True)
class OpenApiSettings:
    """``fedoracloud.openapi.*``: whether requests and responses are checked against the
    document.  ``validate_responses``: ``true`` (a response outside the document is an
    error: tests, development), ``log`` (it is logged and sent as it is), ``false`` (not
    checked: the default, as production runs; the tests check every response)."""

    validate_requests: bool = True
    validate_responses: str = "false"

    @classmethod
    def from_settings(cls, settings: Any) -> OpenApiSettings:
        """From the app's typed Settings."""
        extra = settings.extra
        key = "fedoracloud.openapi.validate_responses"
        responses = str(extra.get(key, "") or cls.validate_responses).strip().lower()
        responses = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false"}.get(
            responses, responses
        )
        if responses not in RESPONSE_MODES:
            raise ConfigError(f"setting {key}: expected true, log or false, got {responses!r}")
        key = "fedoracloud.openapi.validate_requests"
        requests = str(extra.get(key, "") or "true").strip().lower()
        if requests not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ConfigError(f"setting {key}: expected true or false, got {requests!r}")
        return cls(
            validate_requests=requests in ("true", "1", "yes", "on"),
            validate_responses=responses,
        )


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as exc:
        raise DocumentError(f"{os.path.basename(path)}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise DocumentError(f"{os.path.basename(path)}: not a YAML mapping")
    return data


def fragment_names(directory: str = DIRECTORY) -> list[str]:
    """The fragments' file names, in the order they are merged."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".yaml") and name != BASE)


def merge_fragment(
    document: dict[str, Any], fragment: dict[str, Any], name: str, owners: dict[str, str]
) -> None:
    """Add one fragment's paths and components to the document; ``owners`` remembers which
    file described what, to name both files of a clash."""
    unknown = set(fragment) - FRAGMENT_KEYS
    if unknown:
        raise DocumentError(
            f"{name}: a fragment has only 'paths' and 'components', not {sorted(unknown)}"
        )
    paths = fragment.get("paths") or {}
    if not isinstance(paths, dict):
        raise DocumentError(f"{name}: 'paths' must be a mapping")
    for path, item in paths.items():
        if not isinstance(path, str) or not path.startswith(API_PREFIX):
            raise DocumentError(f"{name}: path {path!r} is not under {API_PREFIX}")
        if not isinstance(item, dict):
            raise DocumentError(f"{name}: {path} must be a mapping")
        target = document["paths"].setdefault(path, {})
        for key, value in item.items():
            owner_key = f"{key.upper()} {path}" if key in METHODS else f"{path} {key}"
            if key in target and target[key] != value:
                raise DocumentError(
                    f"{name}: {owner_key} is already described in {owners.get(owner_key)}"
                )
            target[key] = value
            owners[owner_key] = name
    components = fragment.get("components") or {}
    if not isinstance(components, dict):
        raise DocumentError(f"{name}: 'components' must be a mapping")
    for section, entries in components.items():
        if not isinstance(entries, dict):
            raise DocumentError(f"{name}: components.{section} must be a mapping")
        target = document.setdefault("components", {}).setdefault(section, {})
        for key, value in entries.items():
            owner_key = f"components.{section}.{key}"
            if key in target and target[key] != value:
                raise DocumentError(
                    f"{name}: {owner_key} is already described in {owners.get(owner_key)}"
                )
            target[key] = value
            owners.setdefault(owner_key, name)


def add_common_responses(document: dict[str, Any]) -> None:
    """The answers every operation of a kind may give (503 when the database does not
    answer, 401/403/429 with a login, 404 with a path parameter, 400 with input or an unsafe
    method), unless it describes them itself."""
    default_security = document.get("security") or []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("503", {"$ref": "#/components/responses/Unavailable"})
            if operation.get("security", default_security):
                responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
                responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
                responses.setdefault("429", {"$ref": "#/components/responses/Throttled"})
            if "{" in path:
                responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
            if (
                method in UNSAFE
                or operation.get("parameters")
                or item.get("parameters")
                or operation.get("requestBody")
            ):
                responses.setdefault("400", {"$ref": "#/components/responses/BadRequest"})


def load_document(directory: str = DIRECTORY) -> dict[str, Any]:
    """The served document: the base, every fragment, the common answers."""
    return copy.deepcopy(_load(directory, _stamp(directory)))


def _stamp(directory: str) -> tuple[tuple[str, float, int], ...]:
    names = [BASE, *fragment_names(directory)]
    stats = [os.stat(os.path.join(directory, name)) for name in names]
    return tuple((n, s.st_mtime, s.st_size) for n, s in zip(names, stats, strict=True))


@lru_cache(maxsize=4)
def _load(directory: str, stamp: tuple[tuple[str, float, int], ...]) -> dict[str, Any]:
    document = _read(os.path.join(directory, BASE))
    document.setdefault("paths", {})
    owners: dict[str, str] = {
        f"components.{section}.{key}": BASE
        for section, entries in (document.get("components") or {}).items()
        for key in entries
    }
    for name in fragment_names(directory):
        merge_fragment(document, _read(os.path.join(directory, name)), name, owners)
    add_common_responses(document)
    document["paths"] = dict(sorted(document["paths"].items()))
    return document


@dataclass(frozen=True)
class ApiDocument:
    """The merged document, its JSON (served as it is) and the validator built from it."""

    document: dict[str, Any]
    json: bytes
    etag: str
    openapi: Any


@lru_cache(maxsize=4)
def _build(directory: str, stamp: tuple[tuple[str, float, int], ...]) -> ApiDocument:
    from openapi_core import OpenAPI
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    document = _load(directory, stamp)
    try:
        openapi = OpenAPI.from_dict(copy.deepcopy(document))
    except OpenAPIValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise DocumentError(
            f"the merged OpenAPI document is invalid at {where}: {exc.message}"
        ) from None
    body = json.dumps(document, indent=1, sort_keys=False).encode()
    return ApiDocument(document, body, hashlib.sha256(body).hexdigest()[:32], openapi)


def build(directory: str = DIRECTORY) -> ApiDocument:
    """The checked document (built once per set of files in a process)."""
    return _build(directory, _stamp(directory))
