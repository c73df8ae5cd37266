"""``fedoracloud worker``: a task worker (Celery on the ini's broker)."""

from __future__ import annotations

import argparse

from .context import CliError, Context, add_command


def cmd_worker(ctx: Context, args: argparse.Namespace) -> None:
    """Run a Celery worker for the ini's broker, with heartbeats and the sweep."""
    from ..cobbler import configure as configure_cobbler
    from ..worker import run_worker

    settings = ctx.task_settings()
    if not 1 <= args.concurrency <= 64:
        raise CliError(f"--concurrency must be between 1 and 64, got {args.concurrency}")
    if settings.embedded:
        raise CliError(
            "setting fedoracloud.broker_url is empty: 'fedoracloud serve' runs the tasks"
            " itself (embedded); set amqp://... to run separate workers"
        )
    ctx.check_database()
    configure_cobbler(ctx.settings.cobbler)  # the provisioning tasks talk to Cobbler
    run_worker(
        ctx.session_factory,
        settings,
        concurrency=args.concurrency,
        sweep=not args.no_sweep,
        loglevel=args.loglevel,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``worker [--concurrency N] [--no-sweep] [--loglevel L]``."""
    worker = add_command(
        sub, "worker", cmd_worker, "run a task worker (Celery on the ini's broker)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, help="tasks run at once (threads; default 4)"
    )
    worker.add_argument(
        "--no-sweep",
        action="store_true",
        help="leave re-sending lost tasks and retrying stuck ones to other workers",
    )
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
