"""``/api/v1/tasks``: list the tasks the caller may view, read one, cancel one."""

from __future__ import annotations

from typing import Any

from pyramid.view import view_config

from ...models import Task
from ...permissions import Permission
from ...request import FcRequest
from ...resources import TaskContext
from ...services.tasks import ITaskService, TaskService, visible_tasks
from .. import Page
from ..tasks import target_url, task_query

_TIMES = (
    "created_at",
    "started_at",
    "heartbeat_at",
    "deadline_at",
    "next_attempt_at",
    "finished_at",
)


def task_json(task: Task, request: FcRequest, tasks: TaskService) -> dict[str, Any]:
    """A task as the API shows it: state, progress, who, when, message."""
    data: dict[str, Any] = {
        "id": task.id,
        "kind": task.kind,
        "state": task.state,
        "progress": task.progress,
        "message": task.message,
        "target": {
            "type": task.target_type,
            "id": task.target_id,
            "name": tasks.target_name(task),
            "url": target_url(task, request, api=True),
        },
        "user": task.user.username if task.user is not None else None,
        "args": task.args,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "worker": task.worker or None,
        "cancel_requested": task.cancel_requested,
        "url": request.route_url("api_task", task_id=task.id),
    }
    for key in _TIMES:
        data[key] = getattr(task, key)
    return data


@view_config(
    route_name="api_tasks", request_method="GET", renderer="json", permission=Permission.VIEW
)
def list_tasks(request: FcRequest) -> dict[str, Any]:
    """Tasks the caller may view, newest first; filters ``state``, ``kind``,
    ``target_type``, ``target``, ``mine=1``."""
    tasks: TaskService = request.find_service(ITaskService)
    query = task_query(request)
    rows, total = tasks.search(query, visible_tasks(request.identity))
    page = Page(rows, total, query.page, query.per_page, request)
    return {
        "items": [task_json(t, request, tasks) for t in rows],
        "next": page.next_url,
        "total": total,
    }


@view_config(
    route_name="api_task", request_method="GET", renderer="json", permission=Permission.VIEW
)
def get_task(context: TaskContext, request: FcRequest) -> dict[str, Any]:
    """One task, with whether the caller may cancel it."""
    data = task_json(context.task, request, request.find_service(ITaskService))
    data["may_cancel"] = bool(request.has_permission(Permission.TASK_CANCEL, context))
    return data


@view_config(
    route_name="api_task_cancel",
    request_method="POST",
    renderer="json",
    permission=Permission.TASK_CANCEL,
)
def cancel(context: TaskContext, request: FcRequest) -> dict[str, Any]:
    """Cancel a queued task, or ask a running one to stop (202); 409 if it has ended."""
    task = request.find_service(ITaskService).cancel(context.task)
    request.response.status = 200 if task.state == "canceled" else 202
    return task_json(task, request, request.find_service(ITaskService))
