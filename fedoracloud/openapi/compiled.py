"""A request's parameters and JSON body checked by schemas compiled once per operation
(jsonschema-rs), the quick way every well-formed ``/api/v1/`` call takes.

It only ever answers "this request matches the document" when it is sure; whatever it
cannot judge the same way openapi-core does (a parameter it would have to deserialize,
a schema with a ``format``, another content type, a value given twice) or finds wrong,
it leaves to openapi-core, which words what is wrong (``validation.request_problems``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

#: the parameter types checked here: a string as it is, an integer from ASCII digits
_PLAIN_TYPES = ("string", "integer")


@dataclass(frozen=True)
class _Parameter:
    """One documented parameter: where, whether required, its type and compiled schema."""

    name: str
    location: str
    required: bool
    kind: str | None  # "string", "integer", or None: not checked here
    validator: Any


@dataclass(frozen=True)
class OperationCheck:
    """What one operation accepts, compiled."""

    parameters: tuple[_Parameter, ...]
    has_body: bool
    body_required: bool
    body: Any  # the compiled JSON body schema, None when not checked here

    def passes(self, request: Any) -> bool:
        """True when the request surely matches the document; False when openapi-core
        must judge it (it may still be fine)."""
        return self._parameters_pass(request) and self._body_passes(request)

    def _parameters_pass(self, request: Any) -> bool:
        for parameter in self.parameters:
            raw = _value(request, parameter)
            if raw is _TWICE:
                return False
            if raw is None:
                if parameter.required:
                    return False
                continue
            if parameter.kind is None:
                return False
            if parameter.kind == "integer":
                if not (raw.isascii() and raw.isdecimal()):
                    return False
                value: Any = int(raw)
            else:
                value = raw
            if not parameter.validator.is_valid(value):
                return False
        return True

    def _body_passes(self, request: Any) -> bool:
        if not self.has_body or not (request.body or self.body_required):
            return True
        if self.body is None or not request.body:
            return False
        if str(request.headers.get("Content-Type", "")).lower() != "application/json":
            return False
        try:
            return bool(self.body.is_valid(json.loads(request.body)))
        except (ValueError, RecursionError, OverflowError):
            return False


_TWICE = object()


def _value(request: Any, parameter: _Parameter) -> Any:
    """The parameter's raw value, None when absent (an empty query value counts as absent,
    as for openapi-core), _TWICE when a query gives it more than once."""
    if parameter.location == "query":
        values = [v for v in request.GET.getall(parameter.name) if v != ""]
        if len(values) > 1:
            return _TWICE
        return values[0] if values else None
    if parameter.location == "path":
        return (request.matchdict or {}).get(parameter.name)
    if parameter.location == "header":
        return request.headers.get(parameter.name)
    return request.cookies.get(parameter.name)


def _resolve(document: dict[str, Any], entry: Any) -> dict[str, Any]:
    """A parameter or request body with its local ``$ref`` followed."""
    seen = 0
    while isinstance(entry, dict) and "$ref" in entry and seen < 10:
        target: Any = document
        for part in str(entry["$ref"]).removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        entry = {**target, **{k: v for k, v in entry.items() if k != "$ref"}}
        seen += 1
    return entry if isinstance(entry, dict) else {}


def _compile(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": document.get("components", {})}
    )


def _has_format(schema: Any) -> bool:
    """Whether a ``format`` keyword appears (openapi-core checks formats; this does not)."""
    if isinstance(schema, dict):
        if isinstance(schema.get("format"), str):
            return True
        return any(_has_format(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_format(v) for v in schema)
    return False


def _parameter(document: dict[str, Any], entry: Any) -> _Parameter:
    spec = _resolve(document, entry)
    schema = _resolve(document, spec.get("schema", {}))
    kind = schema.get("type")
    plain = (
        kind in _PLAIN_TYPES
        and "style" not in spec
        and "content" not in spec
        and not _has_format(schema)
    )
    return _Parameter(
        name=str(spec.get("name", "")),
        location=str(spec.get("in", "")),
        required=bool(spec.get("required")),
        kind=kind if plain else None,
        validator=_compile(document, schema) if plain else None,
    )


def operation_check(document: dict[str, Any], path: str, method: str) -> OperationCheck:
    """The compiled check of one operation of the document (``path`` as the document
    spells it, ``method`` in lower case)."""
    item = document["paths"][path]
    operation = item[method]
    entries = {
        (p.get("name"), p.get("in")): p
        for p in (
            _resolve(document, e)
            for e in [*item.get("parameters", []), *operation.get("parameters", [])]
        )
    }
    parameters = tuple(_parameter(document, e) for e in entries.values())
    request_body = _resolve(document, operation.get("requestBody"))
    content = request_body.get("content") or {}
    media = content.get("application/json") if isinstance(content, dict) else None
    schema = media.get("schema") if isinstance(media, dict) else None
    body = None
    if (
        isinstance(schema, dict)
        and list(content) == ["application/json"]
        and not _has_format(schema)
    ):
        body = _compile(document, _resolve(document, schema))
    return OperationCheck(
        parameters=parameters,
        has_body=bool(request_body),
        body_required=bool(request_body.get("required")),
        body=body,
    )
