"""Console tokens: one-time, short-lived tickets for a VM's VNC display.

The app issues a token to a user who may open a VM's console, mapped to the host address
and VNC port the console proxy (websockify) connects to.  Only the token's SHA-256 is
stored, so every UI box and the proxy share it through the database; the proxy consumes
it with one atomic ``UPDATE … WHERE used_at IS NULL AND expires_at > now``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped
from .vm import Vm


class ConsoleToken(Base, Timestamped):
    """A ticket for one WebSocket connection to one VM's VNC display."""

    __tablename__ = "console_tokens"
    __table_args__ = (Index("ix_console_tokens_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vms.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: where the proxy connects: the VM's host (name or address) and its live VNC port
    target_host: Mapped[str] = mapped_column(String(255))
    target_port: Mapped[int] = mapped_column()
    remote_addr: Mapped[str] = mapped_column(String(45), default="")
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()

    vm: Mapped[Vm] = relationship()
