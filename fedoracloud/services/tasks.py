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

from __future__ import annotations

import contextvars
import hashlib
import importlib
import json
import logging
import os
import pkgutil
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import transaction
from sqlalchemy import ColumnElement, and_, func, or_, select, text, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from zope.interface import Interface

from ..models import (
    Host,
    Pool,
    StoragePool,
    StorageServer,
    StorageVolume,
    Task,
    TaskState,
    User,
    Vm,
)
from ..models.meta import utcnow
from . import Conflict, InvalidInput, NotFound, ServiceError

log = logging.getLogger(__name__)

Handler = Callable[[Task, Session], "str | None"]

#: states a task never leaves
FINAL_STATES = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELED})
#: a PostgreSQL advisory lock key: one sweep at a time in the whole cluster
SWEEP_LOCK = 0x46435357  # "FCSW"
_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,31}$")
_TARGET_TYPE = re.compile(r"^[a-z][a-z_]{0,15}$")
ARGS_MAX_BYTES = 64 * 1024
IDEMPOTENCY_KEY_MAX = 200
MESSAGE_MAX = 4000


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSettings:
    """The queue's settings (``fedoracloud.broker_url`` and ``fedoracloud.tasks.*``)."""

    #: amqp://… for Celery on RabbitMQ; empty or ``embedded``: ``serve`` runs tasks itself
    broker_url: str = ""
    queue: str = "fedoracloud"
    max_attempts: int = 5
    #: first retry after this many seconds, doubling each time, at most retry_delay_max
    retry_delay: float = 5.0
    retry_delay_max: float = 300.0
    #: a queued task whose message was sent this long ago is sent again by the sweep
    resend_after: int = 60
    sweep_interval: float = 10.0
    #: a worker marks its running tasks alive this often; three misses mean it died
    heartbeat: float = 10.0
    #: how long one attempt may run, unless its kind or its creator says otherwise
    timeout: int = 600
    #: extra modules that register task kinds (besides every fedoracloud.services module)
    modules: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: the web process runs the tasks."""
        return self.broker_url in ("", "embedded")

    @classmethod
    def from_settings(cls, raw: dict[str, Any]) -> TaskSettings:
        """Read the ``fedoracloud.broker_url`` and ``fedoracloud.tasks.*`` settings (raw ini
        values, or ``Settings.extra``); ConfigError names the first bad one."""
        from ..settings import ConfigError

        def number(key: str, default: float, minimum: float) -> float:
            value = raw.get(key)
            if value is None or str(value).strip() == "":
                return default
            try:
                result = float(str(value).strip())
            except ValueError:
                raise ConfigError(f"setting {key}: expected a number, got {value!r}") from None
            if not minimum <= result < 10**7:
                raise ConfigError(f"setting {key}: must be at least {minimum}, got {value!r}")
            return result

        broker = str(raw.get("fedoracloud.broker_url", "") or "").strip()
        if broker not in ("", "embedded") and "://" not in broker:
            raise ConfigError(
                "setting fedoracloud.broker_url: expected amqp://USER:PASSWORD@HOST:5672/VHOST,"
                f" or empty for the embedded worker; got {broker[:80]!r}"
            )
        queue = str(raw.get("fedoracloud.tasks.queue", "") or "fedoracloud").strip()
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,200}", queue):
            raise ConfigError(f"setting fedoracloud.tasks.queue: not a queue name: {queue!r}")
        modules = tuple(str(raw.get("fedoracloud.tasks.modules", "") or "").split())
        return cls(
            broker_url=broker,
            queue=queue,
            max_attempts=int(number("fedoracloud.tasks.max_attempts", 5, 1)),
            retry_delay=number("fedoracloud.tasks.retry_delay", 5.0, 0),
            retry_delay_max=number("fedoracloud.tasks.retry_delay_max", 300.0, 0),
            resend_after=int(number("fedoracloud.tasks.resend_after", 60, 1)),
            sweep_interval=number("fedoracloud.tasks.sweep_interval", 10.0, 0.1),
            heartbeat=number("fedoracloud.tasks.heartbeat", 10.0, 0.1),
            timeout=int(number("fedoracloud.tasks.timeout", 600, 1)),
            modules=modules,
        )


# -- errors ---------------------------------------------------------------------------------


class RetryableError(Exception):
    """Passing trouble (a host or a storage server unreachable): try again later."""


class TaskCanceled(Exception):
    """Someone canceled the running task; raised by ``progress()``/``check_canceled()``."""


def is_retryable(exc: BaseException) -> bool:
    """Whether an error is connection-class (retry with backoff) rather than a logic error
    (fail at once): RetryableError, OSError, the database's OperationalError, a libvirt
    error about the connection, or any exception with ``retryable = True``; the
    ``__cause__`` chain is looked at too."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        flag = getattr(current, "retryable", None)
        if isinstance(flag, bool):
            return flag
        if isinstance(current, RetryableError | OSError | OperationalError):
            return True  # OperationalError: the database is down, restarting or locked
        if _libvirt_connection_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _libvirt_connection_error(exc: BaseException) -> bool:
    try:
        import libvirt
    except ImportError:  # pragma: no cover - libvirt-python is a dependency
        return False
    if not isinstance(exc, libvirt.libvirtError):
        return False
    codes = {
        getattr(libvirt, name, -1)
        for name in (
            "VIR_ERR_NO_CONNECT",
            "VIR_ERR_SYSTEM_ERROR",
            "VIR_ERR_RPC",
            "VIR_ERR_OPERATION_TIMEOUT",
            "VIR_ERR_AGENT_UNRESPONSIVE",
            "VIR_ERR_OPERATION_ABORTED",
        )
    }
    return exc.get_error_code() in codes


def error_message(exc: BaseException) -> str:
    """What a user reads on a failed task: a service's refusal as it is, anything else as
    its text (or its type when it has none)."""
    text_ = exc.message if isinstance(exc, ServiceError) else str(exc).strip()
    return (text_ or type(exc).__name__)[:MESSAGE_MAX]


# -- the registry of task kinds ---------------------------------------------------------------


@dataclass(frozen=True)
class TaskKind:
    """What a kind of task does, and its limits."""

    name: str
    handler: Handler
    timeout: int | None = None
    max_attempts: int | None = None
    title: str = ""


_KINDS: dict[str, TaskKind] = {}
_KINDS_LOADED = threading.Lock()
_loaded_modules: set[str] = set()


def register(
    kind: str,
    handler: Handler,
    *,
    timeout: int | None = None,
    max_attempts: int | None = None,
    title: str = "",
) -> None:
    """Say which function runs tasks of ``kind`` (``"vm.start"``).  The handler gets the
    task row and a session, returns the task's message (or None) or raises; it must be
    idempotent.  ``timeout`` (seconds) bounds one attempt; ``max_attempts`` bounds retries.
    Registering the same kind again replaces the handler (module reloads, tests)."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"not a task kind name: {kind!r}")
    _KINDS[kind] = TaskKind(kind, handler, timeout, max_attempts, title or kind)


def registered_kinds() -> dict[str, TaskKind]:
    """Every kind registered so far, by name."""
    return dict(_KINDS)


def load_task_kinds(extra_modules: tuple[str, ...] = ()) -> dict[str, TaskKind]:
    """Import every ``fedoracloud.services`` module (each may ``register()`` kinds at import)
    and the extra modules named in ``fedoracloud.tasks.modules``; the kinds, by name."""
    from .. import services

    names = [f"{services.__name__}.{m.name}" for m in pkgutil.iter_modules(services.__path__)]
    with _KINDS_LOADED:
        for name in [*names, *extra_modules]:
            if name not in _loaded_modules:
                importlib.import_module(name)
                _loaded_modules.add(name)
    return registered_kinds()


def kind_for(name: str) -> TaskKind:
    """The registered kind, loading the services' kinds if needed; KeyError if unknown."""
    if name not in _KINDS:
        load_task_kinds()
    return _KINDS[name]


def noop(task: Task, dbsession: Session) -> str:
    """The ``noop`` kind: does nothing (checks that workers run tasks; benchmarks).
    ``args.sleep`` (seconds, at most 60) makes it take a while, reporting progress."""
    seconds = float(task.args.get("sleep", 0) or 0)
    steps = max(1, min(int(seconds * 4), 240))
    if seconds > 0:
        for step in range(steps):
            time.sleep(min(seconds, 60) / steps)
            progress(task, int(100 * (step + 1) / steps))
    return "nothing to do"


register("noop", noop, title="No-op (checks the workers)")


# -- sending ids to the worker after commit -----------------------------------------------------


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


# -- the service ------------------------------------------------------------------------------


class ITaskService(Interface):
    """Marker for pyramid-services: ``request.find_service(ITaskService)``."""


#: the task list's sortable columns (the id breaks ties)
TASK_SORT_COLUMNS: dict[str, Any] = {
    "id": Task.id,
    "kind": Task.kind,
    "state": Task.state,
    "progress": Task.progress,
    "created": Task.created_at,
}


def _task_order(query: TaskQuery) -> list[Any]:
    column = TASK_SORT_COLUMNS[query.sort]
    tie = Task.id.desc() if query.descending else Task.id.asc()
    first = column.desc() if query.descending else column.asc()
    return [first] if query.sort == "id" else [first, tie]


@dataclass
class TaskQuery:
    """Filters and paging of the task list."""

    state: str = ""
    kind: str = ""
    target_type: str = ""
    target_id: int | None = None
    mine: bool = False
    page: int = 1
    per_page: int = 25
    #: a key of TASK_SORT_COLUMNS; newest first by default
    sort: str = "id"
    descending: bool = True

    def validate(self) -> TaskQuery:
        """Refuse nonsense with a message (InvalidInput)."""
        if self.sort not in TASK_SORT_COLUMNS:
            raise InvalidInput(
                f"cannot sort tasks by {self.sort[:32]!r}; by one of "
                + ", ".join(TASK_SORT_COLUMNS),
                {"field": "sort"},
            )
        if self.state and self.state not in {s.value for s in TaskState}:
            raise InvalidInput(
                f"unknown state {self.state[:40]!r}; one of "
                + ", ".join(s.value for s in TaskState),
                {"field": "state"},
            )
        if self.kind and not _KIND.fullmatch(self.kind):
            raise InvalidInput(f"not a task kind: {self.kind[:40]!r}", {"field": "kind"})
        if self.target_type and not _TARGET_TYPE.fullmatch(self.target_type):
            raise InvalidInput(
                f"not a target type: {self.target_type[:40]!r}", {"field": "target_type"}
            )
        if self.page < 1:
            raise InvalidInput("page must be a whole number from 1", {"field": "page"})
        if not 1 <= self.per_page <= 500:
            raise InvalidInput("per_page must be between 1 and 500", {"field": "per_page"})
        return self


def idempotency_digest(user_id: int | None, key: str) -> str:
    """How an idempotency key is stored: per user, hashed to 64 hex characters."""
    return hashlib.sha256(f"{user_id or 0}:{key}".encode()).hexdigest()


class TaskService:
    """Create, find, list and cancel tasks; usable from a view, the CLI or a worker."""

    def __init__(
        self,
        dbsession: Session,
        actor: Any = None,
        remote_addr: str = "",
        *,
        settings: TaskSettings | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.dbsession = dbsession
        self.actor = actor
        self.remote_addr = remote_addr
        self.settings = settings or TaskSettings()
        self.dispatcher = dispatcher

    def _actor_user(self) -> User | None:
        return getattr(self.actor, "user", None)

    def create(
        self,
        kind: str,
        target_type: str,
        target_id: int,
        args: dict[str, Any] | None = None,
        *,
        user: User | None = None,
        idempotency_key: str | None = None,
        timeout: int | None = None,
        max_attempts: int | None = None,
    ) -> Task:
        """Write a queued task in the current transaction and send its id to the worker
        after commit.  With an ``idempotency_key`` (per user), asking again returns the
        task made the first time (Conflict if that key was used for another action).
        ``target_type`` is ``vm``, ``host``, ``pool`` or ``site`` (target_id 0)."""
        try:
            spec = kind_for(kind)
        except KeyError:
            raise InvalidInput(f"unknown task kind {kind[:40]!r}", {"field": "kind"}) from None
        if not _TARGET_TYPE.fullmatch(target_type or ""):
            raise InvalidInput(f"not a target type: {target_type!r}", {"field": "target_type"})
        if not isinstance(target_id, int) or isinstance(target_id, bool) or target_id < 0:
            raise InvalidInput("the target id must be a whole number", {"field": "target_id"})
        args = dict(args or {})
        try:
            encoded = json.dumps(args)
        except (TypeError, ValueError):
            raise InvalidInput("task arguments must be plain JSON values") from None
        if len(encoded) > ARGS_MAX_BYTES:
            raise InvalidInput(f"task arguments are larger than {ARGS_MAX_BYTES} bytes")
        user = user if user is not None else self._actor_user()
        digest = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX or not (
                idempotency_key.isprintable()
            ):
                raise InvalidInput(
                    f"an idempotency key is 1 to {IDEMPOTENCY_KEY_MAX} printable characters",
                    {"field": "idempotency_key"},
                )
            digest = idempotency_digest(user.id if user else None, idempotency_key)
            existing = self._by_digest(digest)
            if existing is not None:
                return self._same_task(existing, kind, target_type, target_id)
        now = utcnow()
        task = Task(
            kind=kind,
            target_type=target_type,
            target_id=target_id,
            args=args,
            user_id=user.id if user is not None else None,
            state=TaskState.QUEUED.value,
            message="waiting for a worker",
            progress=0,
            attempts=0,
            idempotency_key=digest,
            timeout_seconds=int(timeout or spec.timeout or self.settings.timeout),
            max_attempts=int(max_attempts or spec.max_attempts or self.settings.max_attempts),
            sent_at=now,
            created_at=now,
        )
        if digest is None:
            self.dbsession.add(task)
            self.dbsession.flush()
        else:
            # two requests with one key at once: the loser reads the winner's task
            try:
                with self.dbsession.begin_nested():
                    self.dbsession.add(task)
                    self.dbsession.flush()
            except IntegrityError:
                existing = self._by_digest(digest)
                if existing is None:
                    raise
                return self._same_task(existing, kind, target_type, target_id)
        send_after_commit(self.dbsession, task.id, self.dispatcher)
        return task

    def for_idempotency_key(self, idempotency_key: str) -> Task | None:
        """The task this user made earlier with this key, or None.  On PostgreSQL the key
        is locked until the transaction ends, so two requests carrying one key at once run
        one after the other and the second finds the first's task (what it made besides,
        a VM row say, is then not made twice)."""
        if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX or not (
            idempotency_key.isprintable()
        ):
            raise InvalidInput(
                f"an idempotency key is 1 to {IDEMPOTENCY_KEY_MAX} printable characters",
                {"field": "idempotency_key"},
            )
        user = self._actor_user()
        digest = idempotency_digest(user.id if user else None, idempotency_key)
        if self.dbsession.get_bind().dialect.name == "postgresql":
            self.dbsession.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(digest[:15], 16)}
            )
        return self._by_digest(digest)

    def _by_digest(self, digest: str) -> Task | None:
        return self.dbsession.scalars(select(Task).where(Task.idempotency_key == digest)).first()

    @staticmethod
    def _same_task(existing: Task, kind: str, target_type: str, target_id: int) -> Task:
        if (existing.kind, existing.target_type, existing.target_id) != (
            kind,
            target_type,
            target_id,
        ):
            raise Conflict(
                f"this idempotency key was already used for task {existing.id}"
                f" ({existing.kind} on {existing.target_type} {existing.target_id})",
                {"task": existing.id},
            )
        return existing

    def get(self, task_id: int) -> Task:
        """One task, or NotFound."""
        task = self.dbsession.get(Task, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        return task

    def search(self, query: TaskQuery, visible: ColumnElement[bool]) -> tuple[list[Task], int]:
        """A page of tasks matching the query among the visible ones, newest first."""
        query.validate()
        conditions: list[ColumnElement[bool]] = [visible]
        if query.state:
            conditions.append(Task.state == query.state)
        if query.kind:
            conditions.append(Task.kind == query.kind)
        if query.target_type:
            conditions.append(Task.target_type == query.target_type)
        if query.target_id is not None:
            conditions.append(Task.target_id == query.target_id)
        if query.mine:
            user = self._actor_user()
            conditions.append(Task.user_id == (user.id if user is not None else -1))
        where = and_(*conditions)
        total = int(self.dbsession.scalar(select(func.count(Task.id)).where(where)) or 0)
        rows = self.dbsession.scalars(
            select(Task)
            .where(where)
            .options(selectinload(Task.user))
            .order_by(*_task_order(query))
            .limit(query.per_page)
            .offset((query.page - 1) * query.per_page)
        ).all()
        return list(rows), total

    def target_pool(self, task: Task) -> Pool | None:
        """The pool that governs a task: its VM's, its host's, or the pool itself; None for
        site-level tasks (and targets that are gone)."""
        if task.target_type == "vm":
            vm = self.dbsession.get(Vm, task.target_id)
            return vm.pool if vm is not None else None
        if task.target_type == "host":
            host = self.dbsession.get(Host, task.target_id)
            return host.pool if host is not None else None
        if task.target_type == "pool":
            return self.dbsession.get(Pool, task.target_id)
        if task.target_type == "vm_request":  # a VM request's provisioning: its VM pool
            from ..models import VmRequest

            vm_request = self.dbsession.get(VmRequest, task.target_id)
            return vm_request.pool if vm_request is not None else None
        return None

    def target_name(self, task: Task) -> str:
        """A readable name for the task's target (``vm web01``), or its type and id."""
        name: str | None = None
        if task.target_type == "vm":
            name = self.dbsession.scalar(select(Vm.name).where(Vm.id == task.target_id))
        elif task.target_type == "host":
            name = self.dbsession.scalar(select(Host.hostname).where(Host.id == task.target_id))
        elif task.target_type == "pool":
            name = self.dbsession.scalar(select(Pool.name).where(Pool.id == task.target_id))
        elif task.target_type == "site":
            return "the site"
        elif task.target_type in _STORAGE_NAMES:
            model, column, label = _STORAGE_NAMES[task.target_type]
            name = self.dbsession.scalar(select(column).where(model.id == task.target_id))
            return f"{label} {name if name is not None else f'#{task.target_id}'}"
        return f"{task.target_type} {name if name is not None else f'#{task.target_id}'}"

    def cancel(self, task: Task) -> Task:
        """Cancel a queued task at once; ask a running one to stop (its handler checks);
        Conflict for a task that already ended."""
        if task.state == TaskState.QUEUED:
            changed = self.dbsession.execute(
                update(Task)
                .where(Task.id == task.id, Task.state == TaskState.QUEUED.value)
                .values(
                    state=TaskState.CANCELED.value,
                    message=self._canceled_by("canceled before it ran"),
                    finished_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            self.dbsession.refresh(task)
            if changed:
                self._audit(task, "task.cancel")
                return task
        if task.state == TaskState.RUNNING:
            if not task.cancel_requested:
                task.cancel_requested = True
                task.message = self._canceled_by("cancel asked; waiting for the worker to stop")
                self.dbsession.flush()
                self._audit(task, "task.cancel")
            return task
        raise Conflict(f"task {task.id} has already {task.state}; nothing to cancel")

    def _canceled_by(self, what: str) -> str:
        user = self._actor_user()
        return f"{what} (by {user.username})" if user is not None else what

    def _audit(self, task: Task, action: str) -> None:
        from .audit import record

        pool = self.target_pool(task)
        record(
            self.dbsession,
            self.actor,
            action,
            "task",
            task.id,
            pool_id=pool.id if pool is not None else None,
            after={"state": task.state, "kind": task.kind},
            remote_addr=self.remote_addr,
        )


#: how the storage tasks' targets are named (services/storage.py makes those tasks)
_STORAGE_NAMES: dict[str, tuple[Any, Any, str]] = {
    "storage_pool": (StoragePool, StoragePool.name, "storage pool"),
    "storage_volume": (StorageVolume, StorageVolume.name, "volume"),
    "storage_server": (StorageServer, StorageServer.hostname, "storage server"),
}


def visible_tasks(identity: Any) -> ColumnElement[bool]:
    """A SQL condition on Task: the tasks a person may view — those on a VM, host or pool
    some grant of theirs reaches, and their own (all of them for super admins)."""
    if identity is None:
        return Task.id < 0
    if identity.is_super_admin:
        return true()
    pools = identity.visible_pools()
    return or_(
        Task.user_id == identity.user.id,
        and_(
            Task.target_type == "vm",
            Task.target_id.in_(select(Vm.id).join(Pool, Vm.pool_id == Pool.id).where(pools)),
        ),
        and_(
            Task.target_type == "host",
            Task.target_id.in_(select(Host.id).join(Pool, Host.pool_id == Pool.id).where(pools)),
        ),
        and_(Task.target_type == "pool", Task.target_id.in_(select(Pool.id).where(pools))),
    )


# -- progress and cancellation, from inside a handler ------------------------------------------


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


# -- running tasks ------------------------------------------------------------------------------


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


class TaskRunner:
    """Claims and runs tasks, and sweeps the queue; the same code for a Celery worker and
    for the worker embedded in ``fedoracloud serve``."""

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
        from ..models import get_tm_session

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


class _LostClaim(Exception):
    """The task is no longer this attempt's (the sweep took it back)."""


class _NoHandler(Exception):
    """No handler registered for the task's kind in this process."""
