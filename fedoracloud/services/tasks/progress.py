"""Progress and cancellation, reported from inside a running task's handler."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from ...models import Task, TaskState
from ...models.meta import utcnow
from .errors import MESSAGE_MAX, TaskCanceled

log = logging.getLogger(__name__)


@dataclass
class _Running:
    engine: Engine
    task_id: int
    attempt: int


_running: contextvars.ContextVar[_Running | None] = contextvars.ContextVar(
    "fedoracloud_running_task", default=None
)


def progress(task: Task, percent: int, message: str | None = None) -> None:
    """Report a running task's progress (0-100) and what it is doing, visible at once
    (written apart from the handler's transaction); raises TaskCanceled if someone asked
    the task to stop.  Outside a worker (tests), it only sets the row's fields.  On SQLite
    (the demo) the handler's transaction holds the database's one write lock, so progress
    is written in it and shows when the task ends."""
    percent = max(0, min(100, int(percent)))
    running = _running.get()
    if running is None or running.task_id != task.id or running.engine.dialect.name == "sqlite":
        task.progress = percent
        if message is not None:
            task.message = message[:MESSAGE_MAX]
        if running is not None and running.task_id == task.id:
            check_canceled(task)
        return
    values: dict[str, Any] = {"progress": percent, "heartbeat_at": utcnow()}
    if message is not None:
        values["message"] = message[:MESSAGE_MAX]
    canceled = False
    try:
        with _short_transaction(running.engine) as conn:
            conn.execute(
                update(Task)
                .where(
                    Task.id == running.task_id,
                    Task.state == TaskState.RUNNING.value,
                    Task.attempts == running.attempt,
                )
                .values(**values)
            )
            canceled = bool(
                conn.scalar(select(Task.cancel_requested).where(Task.id == running.task_id))
            )
    except Exception as exc:  # progress is best effort; the run goes on
        log.debug("task %s: progress not recorded: %s", task.id, exc)
    if canceled:
        raise TaskCanceled("canceled while running")


def check_canceled(task: Task) -> None:
    """Raise TaskCanceled if someone asked this running task to stop."""
    running = _running.get()
    if running is None or running.task_id != task.id:
        if task.cancel_requested:
            raise TaskCanceled("canceled while running")
        return
    with _short_transaction(running.engine) as conn:
        if conn.scalar(select(Task.cancel_requested).where(Task.id == running.task_id)):
            raise TaskCanceled("canceled while running")


@contextmanager
def _short_transaction(engine: Engine) -> Iterator[Any]:
    """A transaction of its own; on SQLite, waiting only briefly for the database lock the
    handler's own transaction may hold."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA busy_timeout=300")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout=5000")
        else:
            yield conn
