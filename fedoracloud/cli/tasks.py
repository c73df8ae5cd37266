"""``fedoracloud task``: list tasks, show one or cancel one."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .context import Context, add_action, add_command


def _task_line(task: Any) -> str:
    who = task.user.username if task.user is not None else "system"
    when = task.created_at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{task.id:>7}  {task.state:<9}  {task.progress:>3}%  {task.kind:<16}  "
        f"{task.target_type} {task.target_id:<6}  {who:<12}  {when}  {task.message[:60]}"
    )


def cmd_task(ctx: Context, args: argparse.Namespace) -> None:
    """List tasks, show one, or cancel one."""
    from sqlalchemy import true

    from ..services.tasks import TaskQuery, TaskService

    with ctx.session() as dbsession:
        tasks = TaskService(ctx.service_context(dbsession), settings=ctx.task_settings())
        if args.task_command == "list":
            query = TaskQuery(state=args.state or "", kind=args.kind or "", per_page=args.limit)
            rows, total = tasks.search(query, true())
            for task in rows:
                print(_task_line(task))
            if total > len(rows):
                print(f"({len(rows)} of {total} shown; --limit shows more)")
            return
        task = tasks.get(args.task)
        if args.task_command == "cancel":
            tasks.cancel(task)
            print(_task_line(task))
            return
        data = {
            "id": task.id,
            "kind": task.kind,
            "target": {"type": task.target_type, "id": task.target_id},
            "target_name": tasks.target_name(task),
            "state": task.state,
            "progress": task.progress,
            "message": task.message,
            "user": task.user.username if task.user is not None else None,
            "attempts": task.attempts,
            "max_attempts": task.max_attempts,
            "worker": task.worker or None,
            "cancel_requested": task.cancel_requested,
            "args": task.args,
        }
        for key in (
            "created_at",
            "started_at",
            "heartbeat_at",
            "deadline_at",
            "next_attempt_at",
            "finished_at",
        ):
            value = getattr(task, key)
            data[key] = value.isoformat() if value is not None else None
        print(json.dumps(data, indent=2))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``task list|show|cancel``."""
    task = add_command(sub, "task", cmd_task, "list tasks, show one or cancel one")
    actions = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    task_list = add_action(actions, "list", "newest first")
    task_list.add_argument(
        "--state", choices=["queued", "running", "finished", "failed", "canceled"]
    )
    task_list.add_argument("--kind", help="only this kind, e.g. vm.start")
    task_list.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    for name, what in (("show", "one task, as JSON"), ("cancel", "cancel a task")):
        add_action(actions, name, what).add_argument("task", type=int, help="the task id")
