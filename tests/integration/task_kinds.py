"""Task kinds for the queue tests, loaded by the worker through ``fedoracloud.tasks.modules``.

``test.effect`` records each run that commits in the ``task_effects`` table (which the test
makes): a task that finished exactly once has exactly one row there."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from fedoracloud.models import Task
from fedoracloud.services.tasks import register


def record_effect(task: Task, dbsession: Session) -> str:
    """Take a little while (so that a worker can be killed mid-task), then record the run."""
    time.sleep(float(task.args.get("sleep", 0.05)))
    dbsession.execute(
        text("INSERT INTO task_effects (task_id, attempt) VALUES (:task, :attempt)"),
        {"task": task.id, "attempt": task.attempts},
    )
    return f"effect recorded on attempt {task.attempts}"


register("test.effect", record_effect, timeout=30)
