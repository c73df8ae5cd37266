"""``fedoracloud task list|show|cancel``, ``fedoracloud worker``'s refusals, and the demo's
shape: ``fedoracloud serve`` with no broker runs the tasks itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import transaction

from fedoracloud.models import Task, get_engine, get_session_factory, get_tm_session
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.tasks import NullDispatcher, TaskService, install_dispatcher

from .test_cli import fc, write_ini

pytestmark = pytest.mark.integration

FC = [sys.executable, "-W", "ignore", "-m", "fedoracloud.cli"]


@pytest.fixture
def ini(tmp_path: Path, empty_database: str) -> Path:
    path = write_ini(tmp_path, empty_database)
    assert fc(path, "initdb").returncode == 0
    return path


def make_tasks(url: str, count: int, **args: object) -> list[int]:
    """Queued tasks, committed (nobody is told: as if their messages were lost)."""
    engine = get_engine({"sqlalchemy.url": url})
    previous = install_dispatcher(NullDispatcher())
    manager = transaction.TransactionManager(explicit=True)
    try:
        with manager:
            dbsession = get_tm_session(get_session_factory(engine), manager)
            service = TaskService(ServiceContext.for_session(dbsession))
            return [service.create("noop", "site", 0, dict(args)).id for _ in range(count)]
    finally:
        install_dispatcher(previous)
        engine.dispose()


def test_task_list_show_and_cancel(ini, empty_database):
    first, second = make_tasks(empty_database, 2)
    listing = fc(ini, "task", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == [second, first]  # newest first
    assert "queued" in lines[0] and "noop" in lines[0] and "system" in lines[0]

    shown = fc(ini, "task", "show", str(first))
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["id"] == first and data["state"] == "queued" and data["kind"] == "noop"
    assert data["target_name"] == "the site" and data["user"] is None

    canceled = fc(ini, "task", "cancel", str(first))
    assert canceled.returncode == 0, canceled.stderr
    assert "canceled" in canceled.stdout
    again = fc(ini, "task", "cancel", str(first))
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"fedoracloud: error: task {first} has already canceled; nothing to cancel"
    )
    assert fc(ini, "task", "list", "--state", "canceled").stdout.split()[0] == str(first)
    missing = fc(ini, "task", "show", "999999")
    assert (
        missing.returncode == 1 and missing.stderr.strip() == "fedoracloud: error: no task 999999"
    )
    too_many = fc(ini, "task", "list", "--limit", "100000")
    assert too_many.returncode == 1 and "per_page must be between 1 and 500" in too_many.stderr


def test_worker_without_a_broker_says_serve_runs_the_tasks(ini):
    result = fc(ini, "worker")
    assert result.returncode == 1
    assert "fedoracloud.broker_url is empty" in result.stderr
    assert "'fedoracloud serve' runs the tasks" in result.stderr


def test_worker_concurrency_is_checked(tmp_path, empty_database):
    ini = write_ini(tmp_path, empty_database, **{"fedoracloud.broker_url": "amqp://x@y//"})
    result = fc(ini, "worker", "--concurrency", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "fedoracloud: error: --concurrency must be between 1 and 64, got 0"
    )


def test_a_malformed_broker_url_is_named(tmp_path, empty_database):
    ini = write_ini(tmp_path, empty_database, **{"fedoracloud.broker_url": "rabbit-on-mq01"})
    result = fc(ini, "worker")
    assert result.returncode == 2
    assert "setting fedoracloud.broker_url: expected amqp://" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_without_a_broker_runs_queued_tasks_itself(ini, empty_database, tmp_path):
    ids = make_tasks(empty_database, 3)
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    serve = subprocess.Popen(
        [*FC, "-c", str(ini), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    engine = get_engine({"sqlalchemy.url": empty_database})
    try:
        end = time.monotonic() + 120  # the server starts, then works through the queue
        done: list[str] = []
        while time.monotonic() < end:
            with engine.connect() as conn:
                done = list(conn.scalars(Task.__table__.select().with_only_columns(Task.state)))
            if done == ["finished"] * len(ids):
                break
            time.sleep(0.2)
        assert done == ["finished"] * len(ids), (tmp_path / "serve.log").read_text()[-2000:]
        # and a task made while it serves is picked up too (by the 2 s poll)
        [late] = make_tasks(empty_database, 1)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with engine.connect() as conn:
                state = conn.scalar(
                    Task.__table__.select().with_only_columns(Task.state).where(Task.id == late)
                )
            if state == "finished":
                break
            time.sleep(0.1)
        assert state == "finished"
    finally:
        serve.terminate()
        serve.wait(10)
        log.close()
        engine.dispose()
