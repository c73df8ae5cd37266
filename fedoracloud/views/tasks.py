"""The task pages: the list of tasks the user may view, one task, and cancelling it.

A task is visible to whoever may view its target (a VM, a host, a pool) and to the person
who asked for it; anything else is a 404.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from ..models import Task, TaskState
from ..permissions import Permission
from ..request import FcRequest
from ..resources import ID_MAX, TaskContext
from ..services import InvalidInput, ServiceError
from ..services.tasks import FINAL_STATES, ITaskService, TaskQuery, TaskService, visible_tasks
from . import Page, page_number, refused


def task_query(request: FcRequest) -> TaskQuery:
    """The list's filters from the query string (``state``, ``kind``, ``target_type``,
    ``target``, ``mine=1``, ``page``, ``sort``: a column, ``-`` first for descending)."""
    sort = request.GET.get("sort", "-id")
    raw_target = request.GET.get("target", "").strip()
    if raw_target and not (
        raw_target.isdecimal() and len(raw_target) < 11 and int(raw_target) <= ID_MAX
    ):
        raise InvalidInput("target must be an id (a whole number)", {"field": "target"})
    return TaskQuery(
        state=request.GET.get("state", "").strip(),
        kind=request.GET.get("kind", "").strip(),
        target_type=request.GET.get("target_type", "").strip(),
        target_id=int(raw_target) if raw_target else None,
        mine=request.GET.get("mine", "") in ("1", "true", "yes", "on"),
        page=page_number(request),
        per_page=request.fc_settings.page_size,
        sort=sort.removeprefix("-"),
        descending=sort.startswith("-"),
    ).validate()


def target_url(task: Task, request: FcRequest, api: bool = False) -> str | None:
    """The page (or API URL) of a task's target, if it has one."""
    route = {"vm": "vm", "host": "host", "pool": "pool", "storage_pool": "storage_pool"}.get(
        task.target_type
    )
    if route is None:
        return None
    key = f"{task.target_type}_id"
    try:
        return str(request.route_url(f"api_{route}" if api else route, **{key: task.target_id}))
    except KeyError:  # no such route (yet)
        return None


@view_config(route_name="tasks", renderer="tasks/list.jinja2", permission=Permission.VIEW)
def task_list(request: FcRequest) -> dict[str, Any]:
    """One page of the tasks the user may view, newest first."""
    tasks: TaskService = request.find_service(ITaskService)
    query = task_query(request)
    rows, total = tasks.search(query, visible_tasks(request.identity))
    return {
        "page": Page(rows, total, query.page, query.per_page, request),
        "query": query,
        "states": [s.value for s in TaskState],
        "names": {t.id: tasks.target_name(t) for t in rows},
        "target_url": target_url,
        # the list follows its unfinished tasks (htmx polling) until they all end
        "live": any(t.state not in FINAL_STATES for t in rows),
    }


@view_config(route_name="task", renderer="tasks/show.jinja2", permission=Permission.VIEW)
def task_show(context: TaskContext, request: FcRequest) -> dict[str, Any]:
    """One task: state, progress, who, when, message; a Cancel button while it may."""
    task = context.task
    return {
        "task": task,
        "target_name": request.find_service(ITaskService).target_name(task),
        "target_url": target_url(task, request),
        "may_cancel": task.state not in FINAL_STATES
        and bool(request.has_permission(Permission.TASK_CANCEL, context)),
        "final": task.state in FINAL_STATES,
    }


@view_config(
    route_name="task_cancel",
    request_method="POST",
    permission=Permission.TASK_CANCEL,
    require_csrf=True,
)
def task_cancel(context: TaskContext, request: FcRequest) -> Any:
    """The Cancel button."""
    try:
        task = request.find_service(ITaskService).cancel(context.task)
    except ServiceError as exc:
        refused(request, exc)
    else:
        request.session.flash(
            f"Task {task.id} canceled."
            if task.state == TaskState.CANCELED
            else f"Task {task.id} was asked to stop; it stops at its next check.",
            "success",
        )
    return HTTPSeeOther(request.route_url("task", task_id=context.task.id))
