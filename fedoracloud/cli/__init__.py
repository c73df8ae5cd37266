"""The ``fedoracloud`` command: set up the database, load the demo, serve, manage pools,
hosts and users.  ``-c INI`` picks the configuration (default ``development.ini``)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

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

#: the exit status of a command whose reader went away (``| head``): 128 + SIGPIPE
EXIT_PIPE_CLOSED = 141

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
    """The one-line message for an error a command may end with (None: a bug, re-raised).
    An error class whose module the command never imported cannot be the one raised, so
    only loaded modules are looked at (a failed ``enc`` does not import libvirt to say so)."""
    services = sys.modules.get("fedoracloud.services")
    if services is not None and isinstance(exc, services.ServiceError):
        return str(exc.message)
    virt = sys.modules.get("fedoracloud.virt.connection")
    if virt is not None and isinstance(exc, virt.VirtError):
        return f"libvirt: {exc}"
    database = sys.modules.get("sqlalchemy.exc")
    if database is not None and isinstance(exc, database.OperationalError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"database: {reason}"
    return None


def _reader_gone() -> int:
    """Stdout's reader has gone (``fedoracloud host list | head``): what is left of the
    output goes nowhere, and the command ends quietly, without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # stdout is no file (a caller's buffer): nothing is left to flush
    finally:
        os.close(devnull)
    return EXIT_PIPE_CLOSED


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fedoracloud``."""
    # Pyramid imports pkg_resources, whose deprecation warning is no news to an operator
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    args = build_parser().parse_args(argv)
    try:
        ctx = Context(args.config)
        args.func(ctx, args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
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
