"""The task service: create, find, list and cancel tasks."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from zope.interface import Interface

from ...models import (
    Host,
    Pool,
    StoragePool,
    StorageServer,
    StorageVolume,
    Task,
    TaskState,
    User,
    Vm,
    VmRequest,
)
from ...models.meta import utcnow
from .. import Conflict, InvalidInput, NotFound
from ..audit import record
from ..context import Service, ServiceContext
from .dispatch import Dispatcher, send_after_commit
from .registry import _KIND, kind_for
from .settings import TaskSettings

#: states a task never leaves
FINAL_STATES = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELED})
_TARGET_TYPE = re.compile(r"^[a-z][a-z_]{0,15}$")
ARGS_MAX_BYTES = 64 * 1024
IDEMPOTENCY_KEY_MAX = 200


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


class TaskService(Service):
    """Create, find, list and cancel tasks; usable from a view, the CLI or a worker."""

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        settings: TaskSettings | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        super().__init__(ctx)
        self.settings = settings or TaskSettings.from_settings(ctx.settings.extra)
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


#: how the storage tasks' targets are named (the services.storage package makes those tasks)
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
