"""Sending task ids to the workers, once the transaction that made the task commits."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import transaction
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Hands a task id to the workers (Celery on RabbitMQ, or the embedded worker)."""

    def send(self, task_id: int, eta: datetime | None = None) -> None:
        """Send the id; may raise if the broker is unreachable (the sweep sends it later)."""


class NullDispatcher:
    """Sends nothing: a worker's sweep or the embedded worker finds the queued rows."""

    def send(self, task_id: int, eta: datetime | None = None) -> None:
        """Do nothing."""


_dispatcher: Dispatcher = NullDispatcher()


def install_dispatcher(dispatcher: Dispatcher) -> Dispatcher:
    """Make ``dispatcher`` the process's way to send task ids; returns the previous one."""
    global _dispatcher
    previous, _dispatcher = _dispatcher, dispatcher
    return previous


def current_dispatcher() -> Dispatcher:
    """The process's dispatcher (set by the app, the CLI or a worker)."""
    return _dispatcher


def _send_now(dispatcher: Dispatcher, task_id: int, eta: datetime | None) -> bool:
    try:
        dispatcher.send(task_id, eta)
    except Exception as exc:  # the broker is down: the row stays queued, the sweep re-sends
        log.warning("task %s stays queued, the sweep will send it: %s", task_id, exc)
        return False
    return True


def _after_commit_hook(committed: bool, dispatcher: Dispatcher, task_id: int) -> None:
    if committed:
        _send_now(dispatcher, task_id, None)


def send_after_commit(
    dbsession: Session, task_id: int, dispatcher: Dispatcher | None = None
) -> None:
    """Send a task id once the session's transaction commits (nothing if it aborts)."""
    dispatcher = dispatcher or current_dispatcher()
    manager = dbsession.info.get("transaction_manager")
    request = dbsession.info.get("request")
    if manager is None and request is not None:
        manager = getattr(request, "tm", None)
    if manager is not None:
        try:
            txn = manager.get()
        except transaction.interfaces.NoTransaction:
            txn = None
        if txn is not None:
            txn.addAfterCommitHook(_after_commit_hook, args=(dispatcher, task_id))
            return
    # a plain session: SQLAlchemy's own commit events
    pending: list[int] | None = dbsession.info.get("fc_tasks_to_send")
    if pending is None:
        pending = dbsession.info["fc_tasks_to_send"] = []
        from sqlalchemy import event

        def after_commit(session: Session) -> None:
            ids = list(session.info.get("fc_tasks_to_send", []))
            session.info["fc_tasks_to_send"] = []
            for task_id_ in ids:
                _send_now(dispatcher, task_id_, None)

        def after_rollback(session: Session) -> None:
            session.info["fc_tasks_to_send"] = []

        event.listen(dbsession, "after_commit", after_commit)
        event.listen(dbsession, "after_soft_rollback", lambda s, t: after_rollback(s))
    pending.append(task_id)
