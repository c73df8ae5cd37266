"""Requests and responses of ``/api/v1/`` checked against the OpenAPI document.

A request is checked after the security policy and CSRF (so nobody learns the API's shape
before logging in) and before the view: one that does not match answers 400 in the one
error shape, ``details.fields`` listing what is wrong.  A response is checked after the
view and the exception views (its status, content type and body; with jsonschema-rs, fast
enough for every call); one that does not match is an error (``true``: tests, development),
a logged error (``log``) or not looked at (``false``).  ``includeme`` builds the document
(a bad one stops the app at start-up) and wires both checks in.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from openapi_core.casting.schemas.exceptions import CastError
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.exceptions import DeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (
    InvalidRequestBody,
    MissingRequiredParameter,
    MissingRequiredRequestBody,
    ParameterValidationError,
)
from openapi_core.validation.request.validators import (
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict

from ..services import InvalidInput
from ..settings import ConfigError
from . import API_PREFIX, ApiDocument, DocumentError, OpenApiSettings, build
from .compiled import OperationCheck, operation_check

log = logging.getLogger(__name__)

_REGEX_PART = re.compile(r"\{(\w+):[^}]*\}")
_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a JSON object",
    "null": "null",
}
_MAX_PROBLEMS = 20


class RequestDoesNotMatch(InvalidInput):
    """The request does not match the API document: 400, ``details.fields`` says where."""


class ResponseDoesNotMatch(Exception):
    """A response of the app does not match the API document: a bug in the view or in
    the document (tests and development fail on it)."""


def spec_path(route_pattern: str) -> str:
    """The document's path for a route's pattern (``{id:\\d+}`` → ``{id}``)."""
    return _REGEX_PART.sub(r"{\1}", route_pattern)


def api_route_pattern(request: Any) -> str | None:
    """The matched route's pattern when it is an ``/api/v1/`` route, else None."""
    route = getattr(request, "matched_route", None)
    pattern = getattr(route, "pattern", None)
    if not isinstance(pattern, str):
        return None
    pattern = pattern if pattern.startswith("/") else "/" + pattern
    return pattern if pattern.startswith(API_PREFIX) else None


class OpenApiRequest:
    """A Pyramid request as openapi-core reads it (the path comes from the matched route)."""

    def __init__(self, request: Any, path_pattern: str) -> None:
        self.request = request
        self.path_pattern = spec_path(path_pattern)
        self.parameters = RequestParameters(
            # an empty value (``?sort=``) is the view's to judge, as if it were absent
            query=ImmutableMultiDict([(k, v) for k, v in request.GET.items() if v != ""]),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(list(request.cookies.items())),
            path=dict(request.matchdict or {}),
        )

    @property
    def host_url(self) -> str:
        return str(self.request.host_url)

    @property
    def path(self) -> str:
        return str(self.request.path)

    @property
    def method(self) -> str:
        return str(self.request.method).lower()

    @property
    def body(self) -> bytes | None:
        return self.request.body or None

    @property
    def content_type(self) -> str:
        return str(self.request.headers.get("Content-Type", "")).lower() or (
            "application/octet-stream"
        )


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (``body``, ``query``, ``path``, ``header``),
    which field, and what."""

    location: str
    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "in": self.location, "message": self.message}


class _Schemas:
    """Reads titles and types of the document's schemas, following local ``$ref``s."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 10:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                break
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def expected(self, schema: Any) -> str:
        """What a value must be, in words: the schema's ``title``, else its type or enum."""
        schema = self.resolve(schema)
        if schema.get("title"):
            return str(schema["title"])
        if "enum" in schema:
            return "one of " + ", ".join(str(v) for v in schema["enum"][:20])
        if "const" in schema:
            return repr(schema["const"])
        kinds = schema.get("type")
        if isinstance(kinds, str):
            return _TYPE_WORDS.get(kinds, kinds)
        if isinstance(kinds, list) and kinds:
            return " or ".join(_TYPE_WORDS.get(k, str(k)) for k in kinds)
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list):
                return " or ".join(self.expected(s) for s in schema[key][:5])
        return "of the documented form"


def _quoted(field: str, location: str) -> str:
    # body fields are quoted as the views quote them; parameters are named as they are
    return f"'{field}'" if location == "body" else field


def _schema_problems(error: Any, location: str, name: str, schemas: _Schemas) -> list[Problem]:
    """The problems one jsonschema error stands for."""
    parts = [str(p) for p in error.path]
    base = ".".join([name, *parts] if name else parts)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "additionalProperties" and isinstance(error.instance, dict):
        known = set(schema.get("properties") or {})
        extra = sorted(str(k) for k in error.instance if k not in known)
        field = ".".join(p for p in (base, extra[0] if extra else "") if p)
        return [Problem(location, field, "unknown fields: " + ", ".join(extra[:10]))]
    if keyword == "required" and isinstance(error.instance, dict):
        properties = schema.get("properties") or {}
        problems = []
        for missing in error.validator_value:
            if missing in error.instance:
                continue
            field = ".".join(p for p in (base, str(missing)) if p)
            what = schemas.expected(properties.get(missing, {}))
            problems.append(Problem(location, field, f"{_quoted(field, location)} must be {what}"))
        return problems
    if not base and location == "body" and keyword == "type":
        return [Problem(location, "", f"the request body must be {schemas.expected(schema)}")]
    label = _quoted(base, location) if base else "the value"
    if keyword in ("minLength", "maxLength", "minItems", "maxItems", "pattern", "format"):
        words = {
            "minLength": f"has at least {error.validator_value} characters",
            "maxLength": f"has at most {error.validator_value} characters",
            "minItems": f"has at least {error.validator_value} items",
            "maxItems": f"has at most {error.validator_value} items",
            "pattern": "has the documented form",
            "format": f"is a {error.validator_value}",
        }[keyword]
        return [Problem(location, base, f"{label} must be a value that {words}")]
    if keyword in ("oneOf", "anyOf") and error.context:
        # the alternatives' own complaints say more than "not valid under any"
        first = min(error.context, key=lambda e: len(list(e.path)))
        nested = _schema_problems(first, location, name, schemas)
        if nested:
            return nested
    return [Problem(location, base, f"{label} must be {schemas.expected(schema)}")]


def _request_problems(exc: Exception, schemas: _Schemas) -> list[Problem]:
    cause = exc.__cause__
    if isinstance(exc, MissingRequiredParameter):
        return [Problem(exc.location, exc.name, f"{exc.name} is required")]
    if isinstance(exc, ParameterValidationError):
        if isinstance(cause, InvalidSchemaValue):
            problems = []
            for error in cause.schema_errors:
                problems += _schema_problems(error, exc.location, exc.name, schemas)
            if problems:
                return problems
        return [Problem(exc.location, exc.name, f"{exc.name} is not of the documented form")]
    if isinstance(exc, MissingRequiredRequestBody):
        return [Problem("body", "", "the request body is not JSON (it is empty)")]
    if isinstance(exc, InvalidRequestBody) or isinstance(cause, InvalidSchemaValue):
        problems = []
        for error in getattr(cause, "schema_errors", []):
            problems += _schema_problems(error, "body", "", schemas)
        return problems or [Problem("body", "", "the request body is not of the documented form")]
    if isinstance(cause, MediaTypeNotFound):
        return [Problem("body", "", "the request body must be JSON (application/json)")]
    if isinstance(cause, (DeserializeError, CastError)):
        return [Problem("body", "", "the request body is not JSON")]
    return [Problem("body", "", str(exc)[:200])]


_VALIDATORS: dict[int, tuple[Any, Any]] = {}
_CHECKS: dict[tuple[int, str, str], OperationCheck] = {}


def _validators(api: ApiDocument) -> tuple[Any, Any]:
    """openapi-core's parameter and body validators, made once per document."""
    key = id(api.openapi)
    if key not in _VALIDATORS:
        spec = api.openapi.spec
        _VALIDATORS[key] = (V31RequestParametersValidator(spec), V31RequestBodyValidator(spec))
    return _VALIDATORS[key]


def request_problems(api: ApiDocument, request: Any, pattern: str) -> list[Problem] | None:
    """What is wrong with an API request (empty: nothing); None if the document does not
    describe its operation."""
    path, method = spec_path(pattern), request.method.lower()
    operation = api.document["paths"].get(path, {}).get(method)
    if operation is None or operation.get("x-validate-request") is False:
        return None
    key = (id(api.document), path, method)
    check = _CHECKS.get(key)
    if check is None:
        check = _CHECKS[key] = operation_check(api.document, path, method)
    if check.passes(request):  # the quick way; openapi-core words what is wrong
        return []
    parameters, body = _validators(api)
    adapter = OpenApiRequest(request, pattern)
    schemas = _Schemas(api.document)
    problems: list[Problem] = []
    errors: list[Exception] = list(parameters.iter_errors(adapter))
    if request.body or operation.get("requestBody", {}).get("required"):
        try:
            errors += list(body.iter_errors(adapter))
        except RecursionError:  # nested too deep for the JSON parser
            problems.append(Problem("body", "", "the request body is not JSON"))
    for error in errors:
        if isinstance(error, PathError):
            return None
        problems += _request_problems(error, schemas)
    unique = list(dict.fromkeys(problems))
    return unique[:_MAX_PROBLEMS]


def request_validation_deriver(view: Any, info: Any) -> Any:
    """Check ``/api/v1/`` requests before the view (after the permission and CSRF checks);
    a mismatch raises RequestDoesNotMatch, which the error views answer with a 400."""

    def validating_view(context: Any, request: Any) -> Any:
        if request.exception is None:
            pattern = api_route_pattern(request)
            settings = request.registry.get("openapi_settings")
            if pattern is not None and settings is not None and settings.validate_requests:
                problems = request_problems(request.registry["openapi"], request, pattern)
                if problems:
                    first = problems[0]
                    message = "; ".join(p.message for p in problems[:5])
                    if len(problems) > 5:
                        message += f" (and {len(problems) - 5} more)"
                    raise RequestDoesNotMatch(
                        message,
                        {"field": first.field, "fields": [p.as_json() for p in problems]},
                    )
        return view(context, request)

    return validating_view


class ResponseSchemas:
    """The documented responses' body schemas, compiled once (jsonschema-rs: a page of 25
    VMs is checked in well under a millisecond, where a Python validator takes tens)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.compiled: dict[tuple[str, str, str, str], Any] = {}

    def _resolve(self, entry: Any) -> dict[str, Any]:
        return _Schemas(self.document).resolve(entry)

    def problems(
        self, path: str, method: str, status: int, content_type: str, body: bytes
    ) -> list[str]:
        """What is wrong with one answer of ``method path`` (empty: nothing)."""
        operation = self.document["paths"][path][method]
        responses = operation.get("responses") or {}
        key = next(
            (k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None
        )
        if key is None:
            return [f"status {status} is not documented (documented: {', '.join(responses)})"]
        content = self._resolve(responses[key]).get("content") or {}
        if not content:
            return []
        media = content.get(content_type, content.get("*/*"))
        if media is None:
            return [f"content type {content_type!r} is not documented ({', '.join(content)})"]
        schema = media.get("schema") if isinstance(media, dict) else None
        if schema is None or not (content_type.endswith("json")):
            return []
        try:
            instance = json.loads(body or b"null")
        except (ValueError, RecursionError):
            return ["the body is not JSON"]
        cache_key = (path, method, key, content_type)
        if cache_key not in self.compiled:
            root = {**schema, "components": self.document.get("components", {})}
            self.compiled[cache_key] = jsonschema_rs.Draft202012Validator(root)
        return [
            f"{'/'.join(str(p) for p in error.instance_path) or '(body)'}: {error.message[:300]}"
            for error in self.compiled[cache_key].iter_errors(instance)
        ]


_RESPONSE_SCHEMAS: dict[int, ResponseSchemas] = {}


def response_problems(api: ApiDocument, request: Any, response: Any, pattern: str) -> list[str]:
    """What is wrong with an API response, in words (empty: nothing)."""
    schemas = _RESPONSE_SCHEMAS.get(id(api.document))
    if schemas is None:
        schemas = _RESPONSE_SCHEMAS[id(api.document)] = ResponseSchemas(api.document)
    return schemas.problems(
        spec_path(pattern),
        request.method.lower(),
        int(response.status_code),
        str(response.content_type or ""),
        response.body,
    )


def response_validation_tween_factory(handler: Any, registry: Any) -> Any:
    """Check every ``/api/v1/`` response against the document (unless switched off)."""
    settings = registry.get("openapi_settings")
    if settings is None or settings.validate_responses == "false":
        return handler
    api: ApiDocument = registry["openapi"]
    strict = settings.validate_responses == "true"

    def validate_response(request: Any) -> Any:
        response = handler(request)
        pattern = api_route_pattern(request)
        if pattern is None or request.method == "HEAD":
            return response
        path = spec_path(pattern)
        operation = api.document["paths"].get(path, {}).get(request.method.lower())
        if operation is None:
            if response.status_code < 400:
                log.warning("%s %s is not described in fedoracloud/openapi/", request.method, path)
            return response
        problems = response_problems(api, request, response, pattern)
        if problems:
            text = (
                f"the response to {request.method} {request.path} ({response.status_code}) "
                f"does not match the API document ({request.method} {path}): "
                + "; ".join(problems[:10])
            )
            if strict:
                raise ResponseDoesNotMatch(text)
            log.error("%s", text)
        return response

    return validate_response


def includeme(config: Any) -> None:
    """Build and check the document (a bad one stops the app at start-up) and wire in the
    request and response validation for ``/api/v1/``."""
    settings = OpenApiSettings.from_settings(config.registry["fc_settings"])
    try:
        api = build()
    except DocumentError as exc:
        raise ConfigError(f"the API document (fedoracloud/openapi/): {exc}") from None
    config.registry["openapi"] = api
    config.registry["openapi_settings"] = settings
    config.add_view_deriver(
        request_validation_deriver,
        "openapi_request_validation",
        under="csrf_view",
        over="owrapped_view",
    )
    config.add_tween(
        "fedoracloud.openapi.validation.response_validation_tween_factory",
        under="pyramid_tm.tm_tween_factory",
        over="pyramid.tweens.excview_tween_factory",
    )
