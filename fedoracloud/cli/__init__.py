"""The ``fedoracloud`` command: set up the database, load the demo, serve, manage pools,
hosts and users.  ``-c INI`` picks the configuration (default ``development.ini``)."""

from __future__ import annotations

import argparse
import sys

from . import (
    ca,
    console_proxy,
    db,
    enrollment,
    events,
    hosts,
    pools,
    puppet,
    serve,
    tasks,
    users,
    vms,
    worker,
)
from .context import EXIT_FAILED, CliError, Context

__all__ = ["CliError", "Context", "build_parser", "main"]

#: the command groups, in the order ``fedoracloud --help`` lists them
COMMAND_GROUPS = (
    db,
    serve,
    pools,
    hosts,
    ca,
    enrollment,
    puppet,
    users,
    worker,
    tasks,
    vms,
    events,
    console_proxy,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: ``-c INI`` and each command group's subcommands."""
    parser = argparse.ArgumentParser(prog="fedoracloud", description=__doc__)
    parser.add_argument(
        "-c",
        "--config",
        default="development.ini",
        metavar="INI",
        help="the configuration file (default: development.ini)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def _failure(exc: Exception) -> str | None:
    """The one-line message for an error a command may end with (None: a bug, re-raised)."""
    from sqlalchemy.exc import OperationalError

    from ..services import ServiceError
    from ..virt.connection import VirtError

    if isinstance(exc, ServiceError):
        return exc.message
    if isinstance(exc, VirtError):
        return f"libvirt: {exc}"
    if isinstance(exc, OperationalError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"database: {reason}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fedoracloud``."""
    args = build_parser().parse_args(argv)
    try:
        ctx = Context(args.config)
        args.func(ctx, args)
    except CliError as exc:
        print(f"fedoracloud: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("fedoracloud"):
            raise
        print(
            f"fedoracloud: error: {exc.name} is not installed; this command needs the web"
            " stack (pip install 'fedoracloud[web]')",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:
        message = _failure(exc)
        if message is None:
            raise
        print(f"fedoracloud: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    return 0
