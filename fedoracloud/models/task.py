"""Tasks: every action that touches libvirt, Cobbler or storage is a row first."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import Base, Timestamped

if TYPE_CHECKING:
    from .user import User


class TaskState(StrEnum):
    """A task's life: queued, running, then finished, failed or canceled."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


_STATES_SQL = ", ".join(f"'{s.value}'" for s in TaskState)


class Task(Base, Timestamped):
    """One unit of work for the worker, committed with the request that asked for it."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES_SQL})", name="state"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_tasks_state", "state"),
        Index("ix_tasks_target", "target_type", "target_id"),
        Index("ix_tasks_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int] = mapped_column()
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=TaskState.QUEUED.value)
    message: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    deadline_at: Mapped[datetime | None] = mapped_column()
    # -- the queue's bookkeeping: retries, re-sends, the worker, cancellation --
    #: how long one attempt may run before the sweep calls it stuck
    timeout_seconds: Mapped[int] = mapped_column(default=600, server_default="600")
    #: attempts before a retryable failure becomes final
    max_attempts: Mapped[int] = mapped_column(default=5, server_default="5")
    #: a retry waits until then (exponential backoff); None: due now
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    #: when its id was last handed to the broker (the sweep re-sends long-queued ones)
    sent_at: Mapped[datetime | None] = mapped_column()
    #: the worker running it (host and process), and when it last reported
    worker: Mapped[str] = mapped_column(String(128), default="", server_default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    #: someone asked a running task to stop; the handler checks it
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())

    user: Mapped[User | None] = relationship()
