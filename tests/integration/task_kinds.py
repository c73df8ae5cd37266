"""Task kinds for the queue tests, loaded by the worker through ``fedoracloud.tasks.modules``.

``test.effect`` records each run that commits in the ``task_effects`` table (which the test
makes): a task that finished exactly once has exactly one row there."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from fedoracloud.models import Task
from fedoracloud.services.tasks import RetryableError, register


def record_effect(task: Task, dbsession: Session) -> str:
    """Take a little while (so that a worker can be killed mid-task), then record the run."""
    time.sleep(float(task.args.get("sleep", 0.05)))
    dbsession.execute(
        text("INSERT INTO task_effects (task_id, attempt) VALUES (:task, :attempt)"),
        {"task": task.id, "attempt": task.attempts},
    )
    return f"effect recorded on attempt {task.attempts}"


def flaky_once(task: Task, dbsession: Session) -> str:
    """Fail the first attempt with a connection-class error, then record the run."""
    if task.attempts == 1:
        raise RetryableError("node01.example.org: connection refused")
    return record_effect(task, dbsession)


def broken(task: Task, dbsession: Session) -> str:
    """A logic error: fails at once."""
    raise ValueError("the domain XML names an unknown network 'bogus'")


register("test.effect", record_effect, timeout=30)
register("test.flaky_once", flaky_once, timeout=30)
register("test.broken", broken, timeout=30)
