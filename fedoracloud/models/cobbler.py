"""Cobbler's profiles and images as last listed (a cache with its refresh time), and which
of them each pool's users may install (allowed on a pool and its whole subtree)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped

PROFILE_KINDS = ("profile", "image")


class CobblerProfile(Base, Timestamped):
    """A Cobbler profile (or image) seen at the last refresh; ``present`` is false once
    Cobbler stopped listing it (kept so pools' choices and old requests still name it)."""

    __tablename__ = "cobbler_profiles"
    __table_args__ = (
        CheckConstraint("kind IN ('profile', 'image')", name="kind"),
        UniqueConstraint("kind", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="profile")
    name: Mapped[str] = mapped_column(String(255))
    distro: Mapped[str] = mapped_column(String(255), default="")
    arch: Mapped[str] = mapped_column(String(32), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    present: Mapped[bool] = mapped_column(default=True)
    refreshed_at: Mapped[datetime | None] = mapped_column()

    def __repr__(self) -> str:
        return f"<CobblerProfile {self.kind} {self.name}>"


class PoolProfile(Base, Timestamped):
    """A profile allowed on a pool: its users may request VMs with it there and in every
    pool below."""

    __tablename__ = "pool_profiles"
    __table_args__ = (
        UniqueConstraint("pool_id", "profile_id"),
        Index("ix_pool_profiles_profile_id", "profile_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("cobbler_profiles.id", ondelete="CASCADE"))
    allowed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    profile: Mapped[CobblerProfile] = relationship()
