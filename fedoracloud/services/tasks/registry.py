"""The registry of task kinds: which function runs a task of each kind, and its limits."""

from __future__ import annotations

import importlib
import pkgutil
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ... import services
from ...models import Task
from .progress import progress

Handler = Callable[[Task, Session], "str | None"]

_KIND = re.compile(r"^[a-z][a-z0-9_.\-]{0,31}$")


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
