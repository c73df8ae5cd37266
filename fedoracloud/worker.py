"""The Celery app and its one task entry point, and the worker embedded in ``serve``.

Production (``fedoracloud.broker_url = amqp://…``): the web app publishes task ids to
RabbitMQ after commit; ``fedoracloud worker`` consumes them with late acknowledgement
(a worker killed mid-task leaves its message unacknowledged, so RabbitMQ delivers it
again) and a prefetch of one, and runs a sweep and heartbeats beside the consumer.
The demo (no broker): ``fedoracloud serve`` runs an embedded worker thread that claims
queued rows straight from the database with the same code.

The entry point is thin: ``fedoracloud.run_task(task_id)`` calls ``TaskRunner.run``.
"""

from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from .services.context import ServiceContext
from .services.tasks import (
    ITaskService,
    TaskRunner,
    TaskService,
    TaskSettings,
    install_dispatcher,
    load_task_kinds,
)

log = logging.getLogger(__name__)

#: the name under which task ids are published
RUN_TASK = "fedoracloud.run_task"


def make_celery(settings: TaskSettings) -> Any:
    """The Celery app for the configured broker: late acks, requeue on a lost worker,
    prefetch one, no result backend (the task row is the result)."""
    from celery import Celery

    app = Celery("fedoracloud", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=3,
        broker_connection_retry_on_startup=True,
        broker_heartbeat=10,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
    )
    return app


class CeleryDispatcher:
    """Publishes task ids to RabbitMQ (persistent messages on a durable queue)."""

    def __init__(self, settings: TaskSettings, app: Any = None) -> None:
        self.settings = settings
        self.app = app or make_celery(settings)

    def send(self, task_id: int, eta: datetime | None = None) -> None:
        """Publish one id; raises (kombu's OperationalError) if the broker is unreachable."""
        self.app.send_task(RUN_TASK, args=[task_id], queue=self.settings.queue, eta=eta, retry=True)


class EmbeddedDispatcher:
    """Wakes the embedded worker thread (the row itself is the message)."""

    def __init__(self) -> None:
        self.wake = threading.Event()

    def send(self, task_id: int, eta: datetime | None = None) -> None:
        """Wake the worker; a retry's due time is in the row."""
        self.wake.set()


def make_dispatcher(settings: TaskSettings) -> CeleryDispatcher | EmbeddedDispatcher:
    """The dispatcher for the configured broker (embedded when none is)."""
    return EmbeddedDispatcher() if settings.embedded else CeleryDispatcher(settings)


class Housekeeper(threading.Thread):
    """Beside a worker: heartbeats for its running tasks, and (with ``sweep``) the sweep,
    every ``sweep_interval`` seconds."""

    def __init__(self, runner: TaskRunner, sweep: bool = True, resend: bool = True) -> None:
        super().__init__(name="fedoracloud-housekeeper", daemon=True)
        self.runner = runner
        self.do_sweep = sweep
        self.resend = resend
        self.stopping = threading.Event()

    def run(self) -> None:
        settings = self.runner.settings
        interval = min(settings.heartbeat, settings.sweep_interval)
        last_sweep = 0.0
        clock = 0.0
        while not self.stopping.wait(interval):
            clock += interval
            try:
                self.runner.beat()
                if self.do_sweep and clock - last_sweep >= settings.sweep_interval:
                    last_sweep = clock
                    result = self.runner.sweep(resend=self.resend)
                    if result.resent or result.retried or result.failed:
                        log.info(
                            "sweep: re-sent %s, retrying %s, failed %s",
                            result.resent,
                            result.retried,
                            result.failed,
                        )
            except Exception:  # the database may be down for a while: keep trying
                log.exception("task housekeeping failed")

    def stop(self) -> None:
        """Stop after the current round."""
        self.stopping.set()


class EmbeddedWorker(threading.Thread):
    """The demo's worker: a thread in ``serve`` that claims queued rows from the database
    and runs them (the same claim/finish code as a Celery worker), plus the sweep for
    tasks a crashed ``serve`` left running."""

    def __init__(
        self, runner: TaskRunner, dispatcher: EmbeddedDispatcher, poll_interval: float = 2.0
    ) -> None:
        super().__init__(name="fedoracloud-embedded-worker", daemon=True)
        self.runner = runner
        self.dispatcher = dispatcher
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.housekeeper = Housekeeper(runner, sweep=True, resend=False)

    def run(self) -> None:
        self.housekeeper.start()
        while not self.stopping.is_set():
            self.dispatcher.wake.clear()
            try:
                ids = self.runner.due_tasks()
                for task_id in ids:
                    if self.stopping.is_set():
                        break
                    self.runner.run(task_id)
            except Exception:
                log.exception("embedded worker: a round failed")
                ids = []
            if not ids:
                self.dispatcher.wake.wait(self.poll_interval)

    def stop(self) -> None:
        """Stop after the task at hand."""
        self.stopping.set()
        self.dispatcher.wake.set()
        self.housekeeper.stop()


def use_wal(session_factory: sessionmaker[Session]) -> None:
    """On SQLite, switch the database file to write-ahead logging, so the worker thread
    reporting progress and the web threads do not block each other's reads (the mode is
    kept in the file)."""
    engine = session_factory.kw["bind"]
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction, as SQLite requires
        try:
            raw.cursor().execute("PRAGMA journal_mode=WAL")
        finally:
            raw.close()


def start_embedded_worker(
    session_factory: sessionmaker[Session],
    settings: TaskSettings,
    dispatcher: EmbeddedDispatcher | None = None,
) -> EmbeddedWorker:
    """Start the embedded worker, woken by ``dispatcher`` (the app's, or a new one made
    the process's)."""
    load_task_kinds(settings.modules)
    use_wal(session_factory)
    if dispatcher is None:
        dispatcher = EmbeddedDispatcher()
        install_dispatcher(dispatcher)
    worker = EmbeddedWorker(TaskRunner(session_factory, settings, dispatcher), dispatcher)
    worker.start()
    return worker


def run_worker(
    session_factory: sessionmaker[Session],
    settings: TaskSettings,
    concurrency: int = 4,
    sweep: bool = True,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker for the configured broker until it is stopped (SIGTERM: warm
    shutdown, letting running tasks finish), with heartbeats and the sweep beside it."""
    load_task_kinds(settings.modules)
    app = make_celery(settings)
    dispatcher = CeleryDispatcher(settings, app)
    install_dispatcher(dispatcher)
    runner = TaskRunner(session_factory, settings, dispatcher)

    @app.task(name=RUN_TASK, ignore_result=True)
    def run_task(task_id: int) -> str:
        """Run one task (the row says what); a duplicate message is skipped."""
        return runner.run(int(task_id))

    housekeeper = Housekeeper(runner, sweep=sweep)
    housekeeper.start()
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                f"--queues={settings.queue}",
                f"--hostname=fedoracloud-{socket.gethostname()}-{runner.name.rsplit(':', 1)[-1]}",
                "--without-mingle",
                "--without-gossip",
            ]
        )
    finally:
        housekeeper.stop()


def includeme(config: Any) -> None:
    """The web app's side: read the queue's settings, install the dispatcher (publish to
    RabbitMQ, or wake the embedded worker), register TaskService."""
    settings = TaskSettings.from_settings(config.registry["fc_settings"].extra)
    config.registry["task_settings"] = settings
    dispatcher = make_dispatcher(settings)
    config.registry["task_dispatcher"] = dispatcher
    install_dispatcher(dispatcher)

    def factory(context: Any, request: Any) -> TaskService:
        return TaskService(ServiceContext.from_request(request), settings=settings)

    config.register_service_factory(factory, ITaskService)
