"""Node enrollment: one-time tokens an admin issues and the enrollments nodes make with them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .host import Host
from .meta import Base, Timestamped


class EnrollmentToken(Base, Timestamped):
    """A one-time, expiring token, stored hashed, optionally bound to a hostname and pool."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(253))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class Enrollment(Base, Timestamped):
    """A node's enrollment: its CSR, the decision on it and the certificate it received."""

    __tablename__ = "enrollments"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'denied')", name="state"),
        Index("ix_enrollments_host_id", "host_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment_tokens.id", ondelete="SET NULL")
    )
    state: Mapped[str] = mapped_column(String(16), default="pending")
    csr_pem: Mapped[str] = mapped_column(Text)
    public_key_sha256: Mapped[str] = mapped_column(String(64))
    cert_pem: Mapped[str | None] = mapped_column(Text)
    poll_secret_hash: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str] = mapped_column(String(45), default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    #: the issued certificate's serial number (hex), its end of validity and its revocation
    cert_serial: Mapped[str | None] = mapped_column(String(40), unique=True)
    cert_not_after: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    host: Mapped[Host] = relationship()


class EnrollAttempt(Base):
    """One enrollment request from a client address, kept a short while for rate limiting."""

    __tablename__ = "enroll_attempts"
    __table_args__ = (Index("ix_enroll_attempts_remote_addr_at", "remote_addr", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    remote_addr: Mapped[str] = mapped_column(String(45))
    at: Mapped[datetime] = mapped_column()
