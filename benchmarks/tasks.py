"""The task queue through the real RabbitMQ: tasks per second with one worker.

``python -m benchmarks.tasks`` makes a scratch PostgreSQL database (``fc_bench_tasks``) and a
RabbitMQ queue of its own, and measures, with ``noop`` tasks (the work itself is nothing, so
the figures are the queue's own cost: the row, the publish, the claim, the finish):

* ``task_enqueue``: ``TaskService.create()`` plus the commit and the after-commit publish,
  one task per transaction as a request makes one (ms per task, p50/p95);
* ``task_throughput``: ``--tasks`` tasks queued and published first, then one
  ``fedoracloud worker`` process started; tasks per second from the first claim to the
  last finish (the worker's start-up is not counted), with ``--concurrency`` 1 and 4;
* ``task_latency``: a worker already running, tasks created one per transaction every
  20 ms; ms from the commit of the row to the task's ``finished`` (p50/p95).

Figures are merged into ``benchmarks/results.json`` by (name, dataset).  Benchmarks report;
they do not assert.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import sqlalchemy as sa
import transaction
from kombu import Connection

from alembic import command
from fedoracloud.models import Task, get_engine, get_session_factory, get_tm_session
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.tasks import TaskService, TaskSettings, install_dispatcher
from fedoracloud.worker import CeleryDispatcher

from .dataset import alembic_config, create_database, database_url, drop_database
from .run import RESULTS, merge_results, percentile

DB_NAME = "fc_bench_tasks"
BROKER = os.environ.get("FEDORACLOUD_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
FEDORACLOUD = os.path.join(os.path.dirname(sys.executable), "fedoracloud")


def write_ini(directory: str, url: str, queue: str) -> str:
    """An ini for the worker: the scratch database, the broker, the queue."""
    path = os.path.join(directory, "bench.ini")
    with open(path, "w", encoding="utf-8") as out:
        out.write(
            "[app:main]\nuse = egg:fedoracloud\n"
            f"sqlalchemy.url = {url}\n"
            "fedoracloud.session_secret = bench-secret-xxxxxxxxxxxxxxxx\n"
            f"fedoracloud.htpasswd.file = {directory}/htpasswd\n"
            f"fedoracloud.instance_dir = {directory}\n"
            f"fedoracloud.broker_url = {BROKER}\n"
            f"fedoracloud.tasks.queue = {queue}\n"
        )
    return path


class Bench:
    """The database, the dispatcher and the worker processes of one run."""

    def __init__(self, url: str, queue: str, directory: str) -> None:
        self.engine = get_engine({"sqlalchemy.url": url})
        self.factory = get_session_factory(self.engine)
        self.settings = TaskSettings(broker_url=BROKER, queue=queue)
        install_dispatcher(CeleryDispatcher(self.settings))
        self.ini = write_ini(directory, url, queue)
        self.log = open(os.path.join(directory, "worker.log"), "ab")  # noqa: SIM115

    def create(self, count: int = 1) -> list[int]:
        """Tasks made and committed in one transaction; published after the commit."""
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            dbsession = get_tm_session(self.factory, manager)
            service = TaskService(ServiceContext.for_session(dbsession), settings=self.settings)
            return [service.create("noop", "site", 0).id for _ in range(count)]

    def worker(self, concurrency: int) -> subprocess.Popen[bytes]:
        """A ``fedoracloud worker`` process."""
        return subprocess.Popen(
            [
                FEDORACLOUD,
                "-c",
                self.ini,
                "worker",
                "--loglevel=WARNING",
                f"--concurrency={concurrency}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def finished(self, ids: list[int]) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.scalar(
                    sa.select(sa.func.count()).where(Task.id.in_(ids), Task.state == "finished")
                )
                or 0
            )

    def wait(self, ids: list[int], timeout: float = 600) -> None:
        end = time.monotonic() + timeout
        while self.finished(ids) < len(ids):
            if time.monotonic() > end:
                raise RuntimeError(f"tasks not finished after {timeout} s")
            time.sleep(0.1)

    def close(self) -> None:
        self.log.close()
        self.engine.dispose()


def stop(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown, as an admin would stop a worker."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def enqueue(bench: Bench, n: int) -> dict[str, Any]:
    """ms per create + commit + publish, one task per transaction."""
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        bench.create(1)
        samples.append((time.perf_counter() - started) * 1000)
    return summary("task_enqueue", "rabbitmq, one task per transaction", samples, "ms")


def throughput(bench: Bench, n: int, concurrency: int) -> dict[str, Any]:
    """Tasks per second through one worker, from the first claim to the last finish."""
    ids = bench.create(n)
    worker = bench.worker(concurrency)
    try:
        bench.wait(ids)
    finally:
        stop(worker)
    with bench.engine.connect() as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(Task.started_at), sa.func.max(Task.finished_at)).where(
                Task.id.in_(ids)
            )
        ).one()
    seconds = (last - first).total_seconds()
    return {
        "name": "task_throughput",
        "dataset": f"rabbitmq, 1 worker, concurrency {concurrency}",
        "value": round(n / seconds, 1),
        "unit": "tasks/s",
        "n": n,
        "seconds": round(seconds, 3),
        "target": "noop tasks queued first, then one 'fedoracloud worker'",
    }


def latency(bench: Bench, n: int) -> dict[str, Any]:
    """ms from a task's commit to its finish, with a worker waiting."""
    worker = bench.worker(1)
    try:
        bench.wait(bench.create(1), timeout=60)  # the worker is up
        committed: dict[int, float] = {}
        for _ in range(n):
            [task_id] = bench.create(1)
            committed[task_id] = time.time()
            time.sleep(0.02)
        bench.wait(list(committed))
    finally:
        stop(worker)
    with bench.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Task.id, Task.finished_at).where(Task.id.in_(list(committed)))
        ).all()
    samples = [(finished.timestamp() - committed[task_id]) * 1000 for task_id, finished in rows]
    return summary("task_latency", "rabbitmq, 1 worker, commit to finished", samples, "ms")


def summary(name: str, dataset: str, samples: list[float], unit: str) -> dict[str, Any]:
    """A results.json entry of p50/p95."""
    return {
        "name": name,
        "dataset": dataset,
        "p50": round(percentile(samples, 50), 3),
        "p95": round(percentile(samples, 95), 3),
        "unit": unit,
        "n": len(samples),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements, print them, merge results.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tasks", description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks for the throughput runs")
    parser.add_argument("--samples", type=int, default=300, help="samples for the latencies")
    parser.add_argument("--results", default=RESULTS, help="the JSON file to merge into")
    args = parser.parse_args(argv)
    queue = f"fedoracloud-bench-{secrets.token_hex(4)}"
    create_database(DB_NAME)
    url = database_url(DB_NAME)
    command.upgrade(alembic_config(url), "head")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        bench = Bench(url, queue, directory)
        try:
            results.append(enqueue(bench, args.samples))
            # the enqueue samples were published; a first worker drains them
            results.append(throughput(bench, args.tasks, 1))
            results.append(throughput(bench, args.tasks, 4))
            results.append(latency(bench, args.samples))
        finally:
            bench.close()
            drop_database(DB_NAME)
            with Connection(BROKER, connect_timeout=5) as conn, contextlib.suppress(Exception):
                conn.channel().queue_delete(queue)
                conn.channel().exchange_delete(queue)
    for entry in results:
        if "value" in entry:
            print(f"{entry['name']:<16} {entry['dataset']:<40} {entry['value']:>9} {entry['unit']}")
        else:
            print(
                f"{entry['name']:<16} {entry['dataset']:<40} p50 {entry['p50']:>8.2f}"
                f"  p95 {entry['p95']:>8.2f} {entry['unit']}"
            )
    merge_results(args.results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
