"""What every subcommand shares: the ini's settings, the database, the one-line errors.

This module imports only the standard library at load time: ``fedoracloud --help`` and
the argument parsing of every command never pay for SQLAlchemy, Pyramid or libvirt; a
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import configparser
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..services.context import ServiceContext
    from ..services.tasks import TaskSettings
    from ..settings import Settings

EXIT_CONFIG = 2
EXIT_FAILED = 1

#: a subcommand: runs with the context and its parsed arguments
Command = Callable[["Context", argparse.Namespace], None]


class CliError(Exception):
    """Stop the command with this one-line message."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Command,
    help_text: str,
) -> argparse.ArgumentParser:
    """Register subcommand NAME, run by FUNC, with one help line for both --help views."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def add_action(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    """Register action NAME of a command group (``pool list``, ``host show``…)."""
    return sub.add_parser(name, help=help_text, description=help_text)


# -- configuration and database ------------------------------------------------------------


def load_settings(ini: str) -> tuple[dict[str, Any], Settings]:
    """The ini's [app:main] settings, raw and validated; CliError naming what is wrong."""
    from ..settings import ConfigError, Settings, read_app_settings

    if not os.path.exists(ini):
        raise CliError(f"configuration file {ini} does not exist (give one with -c)", EXIT_CONFIG)
    try:
        raw: dict[str, Any] = read_app_settings(ini)
    except (configparser.Error, LookupError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"cannot read {ini}: {first}", EXIT_CONFIG) from exc
    try:
        return raw, Settings.from_dict(raw)
    except ConfigError as exc:
        raise CliError(f"{ini}: {exc}", EXIT_CONFIG) from exc


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


class Context:
    """What a subcommand needs: settings, the engine, and a transaction-scoped session."""

    def __init__(self, ini: str) -> None:
        from sqlalchemy.engine import make_url

        from ..models import get_engine, get_session_factory
        from ..settings import resolve_env

        self.ini = os.path.abspath(ini)
        raw, self.settings = load_settings(ini)
        self.raw_settings = resolve_env(raw)
        if self.settings.database_url.startswith("sqlite:///"):
            db_dir = os.path.dirname(make_url(self.settings.database_url).database or "")
            if db_dir:
                os.makedirs(db_dir, exist_ok=True)
        try:
            self.engine = get_engine(self.raw_settings)
        except Exception as exc:
            raise CliError(f"setting sqlalchemy.url: {exc}", EXIT_CONFIG) from exc
        self.session_factory = get_session_factory(self.engine)

    def check_database(self) -> None:
        """CliError naming the (password-less) database URL if it cannot be reached."""
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise CliError(
                f"cannot reach the database of setting sqlalchemy.url "
                f"({_redacted(self.settings.database_url)}): {reason}"
            ) from exc

    def task_settings(self) -> TaskSettings:
        """The task queue's settings (``fedoracloud.broker_url``, ``fedoracloud.tasks.*``)."""
        from ..services.tasks import TaskSettings
        from ..settings import ConfigError

        try:
            return TaskSettings.from_settings(self.raw_settings)
        except ConfigError as exc:
            raise CliError(f"{self.ini}: {exc}", EXIT_CONFIG) from exc

    def service_context(self, dbsession: Session) -> ServiceContext:
        """What a command's services work with: the session, the ini's settings, acting for
        the system."""
        from ..services.context import ServiceContext

        return ServiceContext(dbsession, self.settings)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end, aborted on error."""
        import transaction

        from ..models import get_tm_session

        self.check_database()
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            yield get_tm_session(self.session_factory, manager, writes=True)
