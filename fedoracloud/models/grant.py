"""Role grants: a user or a group holds a role on a pool and its whole subtree."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped
from .pool import Pool
from .user import User


class RoleGrant(Base, Timestamped):
    """(user or group, pool, role)."""

    __tablename__ = "role_grants"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (group_name IS NULL)", name="one_principal"),
        CheckConstraint("role IN ('monitor', 'user', 'admin', 'super_admin')", name="role"),
        UniqueConstraint("pool_id", "user_id"),
        UniqueConstraint("pool_id", "group_name"),
        Index("ix_role_grants_user_id", "user_id"),
        Index("ix_role_grants_group_name", "group_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_name: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    pool: Mapped[Pool] = relationship()
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
