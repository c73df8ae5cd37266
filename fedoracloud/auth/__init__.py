"""Login backends; the ini's ``fedoracloud.auth.backend`` chooses one.

Every backend tells the app the same things about a person: who they are and their group
memberships (with role type and status, as FAS reports them).  The gate — who gets in —
is decided from those memberships by ``services.access``, never by a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Membership:
    """A person's membership of a group."""

    group: str
    role_type: str = "user"  # user | sponsor | administrator
    status: str = "approved"  # approved | unapproved


@dataclass(frozen=True)
class Person:
    """Who an identity provider says someone is."""

    username: str
    display_name: str = ""
    email: str = ""
    memberships: tuple[Membership, ...] = field(default_factory=tuple)


class LoginFailed(Exception):
    """The login did not succeed; the message is safe to show the user."""


class BackendUnavailable(LoginFailed):
    """The identity provider could not be reached or answered nonsense."""


class PasswordBackend(Protocol):
    """A backend that checks a username and password (htpasswd, FAS2)."""

    def authenticate(self, username: str, password: str) -> Person | None:
        """The person if the password is right, None if not; BackendUnavailable if down."""

    def memberships(self, username: str) -> tuple[Membership, ...] | None:
        """Re-read someone's memberships (for the TTL check); None if they are unknown."""

    def group_members(self, group: str) -> list[Person]:
        """Everyone in a group, with their membership of it (for the user picker)."""
