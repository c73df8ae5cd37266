"""People: users, their cached group memberships, access requests and API tokens."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped

USERNAME_MAX = 64
USERNAME_PATTERN = r"^[a-z_][a-z0-9_.-]*$"
#: how an API token's secret starts (a login session's has no prefix)
API_TOKEN_PREFIX = "fct_"  # noqa: S105 - a prefix, not a secret


def hash_token(token: str) -> str:
    """The SHA-256 under which a secret token (a login session's, an API token's) is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class RequestState(StrEnum):
    """Where an access, enrollment or VM request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class User(Base, Timestamped):
    """A person known to FedoraCloud (from FAS, OIDC or the local password file)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    #: an admin let this person in although they are not in the access group (audited)
    local_access: Mapped[bool] = mapped_column(default=False)
    last_login_at: Mapped[datetime | None] = mapped_column()
    memberships_checked_at: Mapped[datetime | None] = mapped_column()

    memberships: Mapped[list[GroupMembership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class GroupMembership(Base):
    """A group membership as the identity provider last reported it."""

    __tablename__ = "group_memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "group_name"),
        CheckConstraint("role_type IN ('user', 'sponsor', 'administrator')", name="role_type"),
        CheckConstraint("status IN ('approved', 'unapproved')", name="status"),
        Index("ix_group_memberships_group_name", "group_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_name: Mapped[str] = mapped_column(String(64))
    role_type: Mapped[str] = mapped_column(String(16), default="user")
    status: Mapped[str] = mapped_column(String(16), default="approved")
    checked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(back_populates="memberships")


class AccessRequest(Base, Timestamped):
    """Someone outside the access group asking to be let in."""

    __tablename__ = "access_requests"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'denied')", name="state"),
        Index("ix_access_requests_state", "state"),
        Index(
            "uq_access_requests_one_pending",
            "user_id",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default=RequestState.PENDING.value)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="SET NULL"))
    role: Mapped[str | None] = mapped_column(String(16))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str] = mapped_column(Text, default="")


class ApiToken(Base, Timestamped):
    """A named token a user made for scripts; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class LoginSession(Base, Timestamped):
    """A logged-in browser session, kept in the database so any UI box can serve it.

    The cookie carries a random token; only its SHA-256 is stored here.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    backend: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime | None] = mapped_column()
    memberships_checked_at: Mapped[datetime | None] = mapped_column()
    remote_addr: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    #: the identity provider's tokens (OIDC), to re-read group membership without a login
    provider_tokens: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()
