"""The queue's upkeep: heartbeats of running tasks, and the sweep that retries (or fails)
tasks a dead worker left running and re-sends queued tasks whose message was lost."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ...models import Task, TaskState
from ...models.meta import utcnow
from .dispatch import Dispatcher, _send_now, current_dispatcher
from .progress import _short_transaction
from .settings import TaskSettings

log = logging.getLogger(__name__)


#: a PostgreSQL advisory lock key: one sweep at a time in the whole cluster
SWEEP_LOCK = 0x46435357  # "FCSW"


@dataclass
class SweepResult:
    """What one sweep did."""

    resent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: bool = False


def worker_name() -> str:
    """This process, as a task's ``worker`` field shows it."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def still_claimed(task_id: int, attempt: int) -> ColumnElement[bool]:
    """The task is still running the attempt this worker (or the sweep) looked at: every
    write that ends or requeues an attempt is guarded by this, so a stale one changes nothing."""
    return and_(Task.id == task_id, Task.state == TaskState.RUNNING.value, Task.attempts == attempt)


class TaskSweeper:
    """A worker's state (its name, the tasks it runs) and the queue's upkeep: the embedded
    worker's due tasks, heartbeats and the sweep.  ``TaskRunner`` runs the tasks."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: TaskSettings | None = None,
        dispatcher: Dispatcher | None = None,
        name: str | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings or TaskSettings()
        self.dispatcher = dispatcher
        self.name = name or worker_name()
        self._running: dict[int, int] = {}  # task id → attempt, for heartbeats
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        bind = self.session_factory.kw["bind"]
        return bind if isinstance(bind, Engine) else bind.engine

    def _send(self, task_id: int, eta: datetime | None = None) -> None:
        _send_now(self.dispatcher or current_dispatcher(), task_id, eta)

    def due_tasks(self, limit: int = 20) -> list[int]:
        """Ids of queued tasks that are due, oldest first (the embedded worker's queue)."""
        now = utcnow()
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    select(Task.id)
                    .where(
                        Task.state == TaskState.QUEUED.value,
                        or_(Task.next_attempt_at.is_(None), Task.next_attempt_at <= now),
                    )
                    .order_by(Task.id)
                    .limit(limit)
                )
            )

    # -- heartbeats and the sweep --

    def beat(self) -> int:
        """Mark this worker's running tasks alive; how many."""
        with self._lock:
            ids = list(self._running)
        if not ids:
            return 0
        try:
            with _short_transaction(self.engine) as conn:
                return int(
                    conn.execute(
                        update(Task)
                        .where(
                            Task.id.in_(ids),
                            Task.state == TaskState.RUNNING.value,
                            Task.worker == self.name,
                        )
                        .values(heartbeat_at=utcnow())
                    ).rowcount
                )
        except OperationalError:
            if self.engine.dialect.name != "sqlite":
                raise
            return 0  # a handler holds SQLite's write lock: it marks its task itself

    def sweep(self, resend: bool = True, limit: int = 1000) -> SweepResult:
        """Retry (or fail, visibly) tasks left running by a dead worker — past their deadline
        or silent for three heartbeats — and, with ``resend``, send again the queued tasks
        whose message is older than ``resend_after``.  Safe when several sweeps run: on
        PostgreSQL one holds an advisory lock and rows are taken FOR UPDATE SKIP LOCKED."""
        result = SweepResult()
        now = utcnow()
        silent = now - timedelta(seconds=3 * self.settings.heartbeat)
        with self.engine.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            if conn.dialect.name == "sqlite":
                # take the write lock before reading (a read-then-write transaction on
                # SQLite fails if another connection wrote in between)
                conn.execute(update(Task).where(Task.id < 0).values(worker=""))
            if postgres and not conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK}
            ):
                result.skipped = True
                return result
            stuck_query = (
                select(Task.id, Task.attempts, Task.max_attempts, Task.worker)
                .where(
                    Task.state == TaskState.RUNNING.value,
                    or_(Task.deadline_at < now, Task.heartbeat_at < silent),
                )
                .order_by(Task.id)
                .limit(limit)
            )
            if postgres:
                stuck_query = stuck_query.with_for_update(skip_locked=True)
            for task_id, attempts, max_attempts, worker in conn.execute(stuck_query).all():
                with self._lock:
                    if self._running.get(task_id) == attempts:
                        continue  # our own, still running (only the deadline passed)
                where = still_claimed(task_id, attempts)
                who = f"worker {worker}" if worker else "its worker"
                if attempts < max_attempts:
                    conn.execute(
                        update(Task)
                        .where(where)
                        .values(
                            state=TaskState.QUEUED.value,
                            next_attempt_at=None,
                            sent_at=now,
                            worker="",
                            deadline_at=None,
                            message=(
                                f"attempt {attempts} of {max_attempts} stopped answering"
                                f" ({who} died or passed the deadline); trying again"
                            ),
                        )
                    )
                    result.retried.append(task_id)
                else:
                    conn.execute(
                        update(Task)
                        .where(where)
                        .values(
                            state=TaskState.FAILED.value,
                            finished_at=now,
                            message=(
                                f"gave up after {attempts} attempts: the last one stopped"
                                f" answering ({who} died or passed the deadline)"
                            ),
                        )
                    )
                    result.failed.append(task_id)
            if resend:
                lost_query = (
                    select(Task.id)
                    .where(
                        Task.state == TaskState.QUEUED.value,
                        func.coalesce(Task.sent_at, Task.created_at)
                        < now - timedelta(seconds=self.settings.resend_after),
                        or_(Task.next_attempt_at.is_(None), Task.next_attempt_at <= now),
                    )
                    .order_by(Task.id)
                    .limit(limit)
                )
                if postgres:
                    lost_query = lost_query.with_for_update(skip_locked=True)
                result.resent = list(conn.scalars(lost_query))
                if result.resent:
                    conn.execute(update(Task).where(Task.id.in_(result.resent)).values(sent_at=now))
        if resend:
            for task_id in [*result.retried, *result.resent]:
                self._send(task_id)
        return result
