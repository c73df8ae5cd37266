"""Tasks: the queue that loses nothing (docs/architecture.md §3).

Every action that touches libvirt, Cobbler or storage is a ``Task`` row written in the
request's transaction (``TaskService.create``); its id goes to the worker only after that
transaction commits (a zope ``transaction`` after-commit hook), never before the row exists.

A worker runs a task with ``TaskRunner.run(task_id)``: it claims the row atomically
(``UPDATE … WHERE state='queued'``), so a duplicate message never runs it twice, calls the
handler registered for the task's kind, and finishes or fails it with a message.  Passing
trouble (``RetryableError``, ``OSError``, a libvirt connection error) is retried with
exponential backoff up to ``max_attempts``; any other error fails the task at once.  The
periodic ``TaskRunner.sweep`` re-sends queued tasks whose message vanished and retries (or
fails, visibly) tasks left ``running`` by a worker that died.

Other services register what each kind does::

    from fedoracloud.services.tasks import register

    def start_vm(task: Task, dbsession: Session) -> str:
        ...                                  # idempotent: it may run again after a crash
        progress(task, 50, "domain defined")  # optional; raises TaskCanceled if asked
        return "started on node01"           # the task's message

    register("vm.start", start_vm, timeout=120)

Handlers run in one transaction that commits together with the task's ``finished`` state;
an exception rolls their changes back.
"""

from .dispatch import (
    Dispatcher,
    NullDispatcher,
    current_dispatcher,
    install_dispatcher,
    send_after_commit,
)
from .errors import MESSAGE_MAX, RetryableError, TaskCanceled, error_message, is_retryable
from .progress import check_canceled, progress
from .registry import TaskKind, kind_for, load_task_kinds, noop, register, registered_kinds
from .runner import TaskRunner
from .service import (
    ARGS_MAX_BYTES,
    FINAL_STATES,
    IDEMPOTENCY_KEY_MAX,
    TASK_SORT_COLUMNS,
    ITaskService,
    TaskQuery,
    TaskService,
    idempotency_digest,
    visible_tasks,
)
from .settings import TaskSettings
from .sweep import SWEEP_LOCK, SweepResult, TaskSweeper, still_claimed, worker_name

__all__ = [
    "ARGS_MAX_BYTES",
    "FINAL_STATES",
    "IDEMPOTENCY_KEY_MAX",
    "MESSAGE_MAX",
    "SWEEP_LOCK",
    "TASK_SORT_COLUMNS",
    "Dispatcher",
    "ITaskService",
    "NullDispatcher",
    "RetryableError",
    "SweepResult",
    "TaskCanceled",
    "TaskKind",
    "TaskQuery",
    "TaskRunner",
    "TaskService",
    "TaskSettings",
    "TaskSweeper",
    "check_canceled",
    "current_dispatcher",
    "error_message",
    "idempotency_digest",
    "install_dispatcher",
    "is_retryable",
    "kind_for",
    "load_task_kinds",
    "noop",
    "progress",
    "register",
    "registered_kinds",
    "send_after_commit",
    "still_claimed",
    "visible_tasks",
    "worker_name",
]
