"""Failed authentications, kept a short while so that guessing is throttled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class AuthFailure(Base):
    """One failed attempt to authenticate (a password, an API token, an enrollment token),
    counted against a key: ``account:NAME`` or ``address:IP``.  Held in the database, so
    the count holds across the web boxes."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_scope_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: what was tried: ``login``, ``api_token`` or ``enroll``
    scope: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column()
