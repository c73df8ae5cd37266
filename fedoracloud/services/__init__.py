"""Domain logic.  Views, tasks and the CLI call these; services never import views."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refusal the user should read: the message says what was wrong."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(ServiceError):
    """The input breaks a rule (length, characters, range)."""


class NotFound(ServiceError):
    """The object does not exist, or the user may not see it."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request clashes with the current state (a duplicate, a non-empty pool)."""

    status = 409
    code = "conflict"
