"""The task queue against the real RabbitMQ: 200 tasks through a real ``fedoracloud
worker`` that is killed with SIGKILL half-way and started again — every task finishes
exactly once and none is left stuck; and a task made while RabbitMQ is unreachable stays
queued until the sweep sends it.

Each test uses a queue name of its own (no vhost needed), deleted afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from kombu import Connection

from fedoracloud.models import Task, get_engine, get_session_factory, get_tm_session
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.tasks import TaskService, TaskSettings, install_dispatcher
from fedoracloud.worker import CeleryDispatcher

from ..databases import ROOT, scratch_database
from . import task_kinds  # noqa: F401 - registers test.effect here too

pytestmark = pytest.mark.integration

BROKER = os.environ.get("FEDORACLOUD_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
FEDORACLOUD = os.path.join(os.path.dirname(sys.executable), "fedoracloud")


@pytest.fixture
def queue_name() -> Iterator[str]:
    """A RabbitMQ queue for this test alone, deleted afterwards."""
    name = f"fedoracloud-test-{secrets.token_hex(4)}"
    yield name
    with Connection(BROKER, connect_timeout=5) as conn:
        channel = conn.channel()
        for delete in (channel.queue_delete, channel.exchange_delete):
            with contextlib.suppress(Exception):  # it may never have been declared
                delete(name)


@pytest.fixture
def database(db_kind: str, tmp_path: Any) -> Iterator[str]:
    """A migrated database for the worker, with the ``task_effects`` table the test kind
    writes to."""
    with scratch_database(db_kind, str(tmp_path), "fc_rabbit", migrated=True) as url:
        engine = get_engine({"sqlalchemy.url": url})
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE task_effects (task_id INTEGER, attempt INTEGER)"))
        engine.dispose()
        yield url


def write_ini(tmp_path: Any, database: str, queue_name: str, broker: str = BROKER) -> str:
    ini = tmp_path / "worker.ini"
    ini.write_text(
        "[app:main]\n"
        "use = egg:fedoracloud\n"
        f"sqlalchemy.url = {database}\n"
        "fedoracloud.session_secret = queue-test-secret-xxxxxxxx\n"
        "fedoracloud.auth.backend = htpasswd\n"
        f"fedoracloud.htpasswd.file = {tmp_path / 'htpasswd'}\n"
        f"fedoracloud.instance_dir = {tmp_path}\n"
        f"fedoracloud.broker_url = {broker}\n"
        f"fedoracloud.tasks.queue = {queue_name}\n"
        "fedoracloud.tasks.modules = tests.integration.task_kinds\n"
        "fedoracloud.tasks.heartbeat = 0.5\n"
        "fedoracloud.tasks.sweep_interval = 0.5\n"
        "fedoracloud.tasks.resend_after = 3\n"
        "fedoracloud.tasks.retry_delay = 0.5\n"
    )
    return str(ini)


def start_worker(ini: str, log: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(
        [FEDORACLOUD, "-c", ini, "worker", "--concurrency", "4", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


def states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Task.state, sa.func.count()).group_by(Task.state)).all())


def wait_for(condition: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def enqueue(
    factory: Any, settings: TaskSettings, count: int, kind: str = "test.effect", **args: Any
) -> list[int]:
    """Create tasks in one transaction, as one request would; ids go out after commit."""
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        dbsession = get_tm_session(factory, manager)
        service = TaskService(ServiceContext.for_session(dbsession), settings=settings)
        return [service.create(kind, "site", 0, args).id for _ in range(count)]


def test_200_tasks_survive_a_killed_worker_and_each_runs_exactly_once(
    tmp_path, database, queue_name
):
    ini = write_ini(tmp_path, database, queue_name)
    settings = TaskSettings(broker_url=BROKER, queue=queue_name)
    previous = install_dispatcher(CeleryDispatcher(settings))
    engine = get_engine({"sqlalchemy.url": database})
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    workers: list[subprocess.Popen[bytes]] = []
    try:
        ids = enqueue(get_session_factory(engine), settings, 200, sleep=0.05)
        workers.append(start_worker(ini, log))
        wait_for(lambda: states(engine).get("finished", 0) >= 50, 60, "50 tasks to finish")
        workers[0].send_signal(signal.SIGKILL)  # mid-way, with tasks in its hands
        workers[0].wait(10)
        killed_at = states(engine)
        assert 50 <= killed_at.get("finished", 0) < 200, killed_at

        workers.append(start_worker(ini, log))
        wait_for(lambda: states(engine).get("finished", 0) == 200, 90, "all 200 tasks to finish")
        with engine.connect() as conn:
            runs = dict(
                conn.execute(
                    sa.text("SELECT task_id, COUNT(*) FROM task_effects GROUP BY task_id")
                ).all()
            )
            retried = conn.scalar(sa.select(sa.func.count()).where(Task.attempts > 1))
        assert sorted(runs) == sorted(ids)  # every task ran …
        assert set(runs.values()) == {1}  # … exactly once
        assert states(engine) == {"finished": 200}  # none stuck queued or running
        # the tasks the killed worker held were taken back by the sweep and run again
        assert retried >= killed_at.get("running", 0), (retried, killed_at)
        print(f"killed with {killed_at}; {retried} task(s) taken back and run again")
    finally:
        for worker in workers:
            stop(worker)
        log.close()
        install_dispatcher(previous)
        engine.dispose()
        print((tmp_path / "worker.log").read_text()[-3000:])


def test_a_task_made_while_rabbitmq_is_down_is_sent_by_the_sweep(tmp_path, database, queue_name):
    unreachable = TaskSettings(broker_url="amqp://guest:guest@127.0.0.1:1//", queue=queue_name)
    previous = install_dispatcher(CeleryDispatcher(unreachable))
    engine = get_engine({"sqlalchemy.url": database})
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = None
    try:
        started = time.monotonic()
        [task_id] = enqueue(get_session_factory(engine), unreachable, 1, sleep=0)
        assert time.monotonic() - started < 10  # the request is not held up for long
        assert states(engine) == {"queued": 1}  # committed, waiting; nothing lost

        worker = start_worker(write_ini(tmp_path, database, queue_name), log)
        wait_for(lambda: states(engine) == {"finished": 1}, 30, "the sweep to send the task")
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT COUNT(*) FROM task_effects")) == 1
            assert conn.scalar(sa.select(Task.attempts).where(Task.id == task_id)) == 1
    finally:
        if worker is not None:
            stop(worker)
        log.close()
        install_dispatcher(previous)
        engine.dispose()


def test_connection_errors_retry_through_the_broker_and_logic_errors_fail_at_once(
    tmp_path, database, queue_name
):
    settings = TaskSettings(broker_url=BROKER, queue=queue_name)
    previous = install_dispatcher(CeleryDispatcher(settings))
    engine = get_engine({"sqlalchemy.url": database})
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = None
    try:
        factory = get_session_factory(engine)
        flaky = enqueue(factory, settings, 5, "test.flaky_once", sleep=0)
        [broken] = enqueue(factory, settings, 1, "test.broken")
        worker = start_worker(write_ini(tmp_path, database, queue_name), log)
        wait_for(lambda: states(engine) == {"finished": 5, "failed": 1}, 30, "the tasks to end")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(Task.id, Task.attempts, Task.message).where(Task.id.in_(flaky))
            ).all()
            assert {attempts for _, attempts, _ in rows} == {2}  # retried once, via RabbitMQ
            assert {message for _, _, message in rows} == {"effect recorded on attempt 2"}
            assert conn.scalar(sa.text("SELECT COUNT(*) FROM task_effects")) == 5
            failed = conn.execute(
                sa.select(Task.attempts, Task.message).where(Task.id == broken)
            ).one()
        assert failed == (1, "the domain XML names an unknown network 'bogus'")
    finally:
        if worker is not None:
            stop(worker)
        log.close()
        install_dispatcher(previous)
        engine.dispose()
