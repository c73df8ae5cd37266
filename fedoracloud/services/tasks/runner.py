"""Running tasks: a worker claims a task, runs its kind's handler, and ends, retries or
fails it."""

from __future__ import annotations

import logging
from datetime import timedelta

import transaction
from sqlalchemy import or_, select, update

from ...models import Task, TaskState, get_tm_session
from ...models.meta import utcnow
from .. import ServiceError
from .errors import MESSAGE_MAX, TaskCanceled, error_message, is_retryable
from .progress import _Running, _running
from .registry import kind_for
from .sweep import TaskSweeper, still_claimed

log = logging.getLogger(__name__)


class TaskRunner(TaskSweeper):
    """Claims and runs tasks, and sweeps the queue; the same code for a Celery worker and
    for the worker embedded in ``fedoracloud serve``."""

    # -- one task --

    def claim(self, task_id: int) -> int | None:
        """Take a queued, due task for this worker (atomic: of two claims, one wins);
        the attempt number, or None if it is not there to take."""
        now = utcnow()
        with self.engine.begin() as conn:
            # the UPDATE comes first: it takes the write lock at once (SQLite cannot turn a
            # read into a write while another transaction reads)
            claimed = conn.execute(
                update(Task)
                .where(
                    Task.id == task_id,
                    Task.state == TaskState.QUEUED.value,
                    or_(Task.next_attempt_at.is_(None), Task.next_attempt_at <= now),
                )
                .values(
                    state=TaskState.RUNNING.value,
                    attempts=Task.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                    worker=self.name,
                    message="running",
                    progress=0,
                    next_attempt_at=None,
                )
                .returning(Task.attempts, Task.timeout_seconds)
            ).first()
            if claimed is None:
                return None
            attempts, timeout = claimed
            conn.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(deadline_at=now + timedelta(seconds=int(timeout)))
            )
            return int(attempts)

    def run(self, task_id: int) -> str:
        """Claim and run one task; the state it ended in (or ``skipped`` when it was not
        there to claim: already running, done, canceled, or not due yet)."""
        attempt = self.claim(task_id)
        if attempt is None:
            return "skipped"
        with self._lock:
            self._running[task_id] = attempt
        token = _running.set(_Running(self.engine, task_id, attempt))
        try:
            return self._run_claimed(task_id, attempt)
        finally:
            _running.reset(token)
            with self._lock:
                self._running.pop(task_id, None)

    def _run_claimed(self, task_id: int, attempt: int) -> str:
        manager = transaction.TransactionManager(explicit=True)
        try:
            with manager:
                dbsession = get_tm_session(self.session_factory, manager)
                if self.engine.dialect.name == "sqlite":
                    # take SQLite's write lock first: a transaction that read before
                    # another connection wrote could not write any more
                    dbsession.execute(
                        update(Task).where(Task.id == task_id).values(heartbeat_at=utcnow())
                    )
                task = dbsession.get(Task, task_id)
                if task is None:  # deleted under us
                    return "skipped"
                try:
                    kind = kind_for(task.kind)
                except KeyError:
                    raise _NoHandler(
                        f"no handler for task kind {task.kind!r} in this worker"
                    ) from None
                message = kind.handler(task, dbsession)
                dbsession.flush()
                finished = dbsession.execute(
                    update(Task)
                    .where(still_claimed(task_id, attempt))
                    .values(
                        state=TaskState.FINISHED.value,
                        message=(message or "done")[:MESSAGE_MAX],
                        progress=100,
                        finished_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                if finished != 1:
                    raise _LostClaim()
            return TaskState.FINISHED.value
        except _LostClaim:
            log.warning(
                "task %s attempt %s: the sweep took it back; not finishing", task_id, attempt
            )
            return "lost"
        except TaskCanceled as exc:
            return self._end(task_id, attempt, TaskState.CANCELED, error_message(exc))
        except Exception as exc:
            return self._failed(task_id, attempt, exc)

    def _failed(self, task_id: int, attempt: int, exc: Exception) -> str:
        message = error_message(exc)
        if not is_retryable(exc) or isinstance(exc, _NoHandler):
            if not isinstance(exc, ServiceError | _NoHandler):
                log.exception("task %s failed", task_id)
            return self._end(task_id, attempt, TaskState.FAILED, message)
        with self.engine.begin() as conn:
            max_attempts = conn.scalar(select(Task.max_attempts).where(Task.id == task_id)) or 1
        if attempt >= max_attempts:
            return self._end(
                task_id, attempt, TaskState.FAILED, f"gave up after {attempt} attempts: {message}"
            )
        delay = self.backoff(attempt)
        due = utcnow() + timedelta(seconds=delay)
        with self.engine.begin() as conn:
            requeued = conn.execute(
                update(Task)
                .where(still_claimed(task_id, attempt))
                .values(
                    state=TaskState.QUEUED.value,
                    next_attempt_at=due,
                    sent_at=due,
                    worker="",
                    deadline_at=None,
                    message=(
                        f"attempt {attempt} of {max_attempts} failed: {message};"
                        f" trying again in {delay:g} s"
                    )[:MESSAGE_MAX],
                )
            ).rowcount
        if requeued:
            self._send(task_id, due)
            return TaskState.QUEUED.value
        return "lost"

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: retry_delay doubled each time, capped."""
        return float(
            min(
                self.settings.retry_delay * (2 ** max(attempt - 1, 0)),
                self.settings.retry_delay_max,
            )
        )

    def _end(self, task_id: int, attempt: int, state: TaskState, message: str) -> str:
        with self.engine.begin() as conn:
            conn.execute(
                update(Task)
                .where(still_claimed(task_id, attempt))
                .values(state=state.value, message=message[:MESSAGE_MAX], finished_at=utcnow())
            )
        return state.value

    # -- the embedded worker's view of the queue --


class _LostClaim(Exception):
    """The task is no longer this attempt's (the sweep took it back)."""


class _NoHandler(Exception):
    """No handler registered for the task's kind in this process."""
