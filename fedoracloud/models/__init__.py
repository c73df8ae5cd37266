"""The data model, the engine and the request's transaction-managed session."""

from __future__ import annotations

import random
import time
from typing import Any

import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, engine_from_config
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from ..settings import read_app_settings, resolve_env
from .audit import AuditEvent
from .cobbler import CobblerProfile, PoolProfile
from .console import ConsoleToken
from .enrollment import EnrollAttempt, Enrollment, EnrollmentToken
from .grant import RoleGrant
from .host import Host, HostCpu, HostNic, HostState
from .meta import Base
from .network import IpAddress, IpPool, Network
from .pool import Pool, PoolKind, Quota, SmartPoolItem
from .storage import StoragePool, StorageServer, StorageVolume
from .task import Task, TaskState
from .throttle import AuthFailure
from .user import AccessRequest, ApiToken, GroupMembership, LoginSession, RequestState, User
from .vm import Vm, VmDisk, VmNic, VmRequest, VmRequestState, VmState

__all__ = [
    "AccessRequest",
    "ApiToken",
    "AuditEvent",
    "AuthFailure",
    "Base",
    "CobblerProfile",
    "ConsoleToken",
    "EnrollAttempt",
    "Enrollment",
    "EnrollmentToken",
    "GroupMembership",
    "Host",
    "HostCpu",
    "HostNic",
    "HostState",
    "IpAddress",
    "IpPool",
    "LoginSession",
    "Network",
    "Pool",
    "PoolKind",
    "PoolProfile",
    "Quota",
    "RequestState",
    "RoleGrant",
    "SmartPoolItem",
    "StoragePool",
    "StorageServer",
    "StorageVolume",
    "Task",
    "TaskState",
    "User",
    "Vm",
    "VmDisk",
    "VmNic",
    "VmRequest",
    "VmRequestState",
    "VmState",
]

configure_mappers()


def _sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # let SQLAlchemy, not pysqlite, issue BEGIN, so savepoints work (SQLAlchemy's recipe)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


#: the execution option that says how a SQLite transaction begins.  A transaction that has
#: read and then writes while another holds the write lock fails at once ("database is
#: locked", busy_timeout or not); one that takes the lock up front (IMMEDIATE) waits for
#: it (busy_timeout) instead.  Sessions of ``get_tm_session(..., writes=True)`` do: the
#: requests that change things and the CLI's commands.  The others (GET and HEAD
#: requests, the worker's and the event listener's, which may hold a transaction across
#: a slow libvirt call) begin DEFERRED, so that they do not hold the lock for nothing.
SQLITE_BEGIN = "sqlite_begin"


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_locked_is_retryable(context: Any) -> None:
    # A read-only request that wrote after all (a session's last_seen_at, a token's
    # last_used_at) may find the write lock taken: it is run again from the start by
    # pyramid_retry, as a PostgreSQL serialization failure is, with the lock up front.
    if "database is locked" in str(context.original_exception):
        from pyramid_retry import mark_error_retryable

        if context.sqlalchemy_exception is not None:
            mark_error_retryable(context.sqlalchemy_exception)


def get_engine(settings: dict[str, Any], prefix: str = "sqlalchemy.") -> Engine:
    """Make the engine from the ini's ``sqlalchemy.*`` settings."""
    engine = engine_from_config(settings, prefix, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "handle_error", _sqlite_locked_is_retryable)
    return engine


def engine_from_ini(ini: str) -> Engine:
    """The engine of an ini file's ``[app:main]`` ``sqlalchemy.*`` settings (``env:NAME``
    values resolved), for processes that run outside the app (the console proxy)."""
    return get_engine(resolve_env(read_app_settings(ini)))


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to the engine."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _pause_before_retry(event: Any) -> None:
    # back off before running a request again, with jitter, so that requests that failed
    # together (a serialization failure, a lock) do not collide again at once
    attempt = event.environ.get("retry.attempt", 0)
    time.sleep(random.uniform(0.5, 1.5) * 0.02 * 2**attempt)  # noqa: S311 - not a secret


def get_tm_session(
    session_factory: sessionmaker[Session],
    transaction_manager: Any,
    request: Any = None,
    *,
    writes: bool = False,
) -> Session:
    """A session joined to a transaction manager (pyramid_tm's, or a script's own).  With
    ``writes``, its transactions on SQLite take the write lock when they begin, so that
    one that reads and then writes never fails on another's lock (see SQLITE_BEGIN)."""
    # the manager is kept so that work can wait for its commit (tasks are sent after it)
    dbsession = session_factory(
        info={"request": request, "transaction_manager": transaction_manager}
    )
    bind = session_factory.kw.get("bind")
    if writes and isinstance(bind, Engine):
        dbsession.bind = bind.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config: Any) -> None:
    """Give every request ``request.dbsession``, committed or aborted by pyramid_tm."""
    from pyramid_retry import IBeforeRetry  # here: the CLI imports the models without Pyramid

    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    # pyramid_tm would look the user up outside the exception views (to note them on the
    # transaction): a database that is down must reach the 503 view, not escape as a 500
    settings["tm.annotate_user"] = False
    # a request that failed on a retryable database error (a serialization failure, SQLite's
    # "database is locked") runs again from the start, after a pause, up to five times in all
    settings.setdefault("retry.attempts", 5)
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    config.add_subscriber(_pause_before_retry, IBeforeRetry)

    engine = get_engine(settings)
    session_factory = get_session_factory(engine)
    config.registry["dbsession_factory"] = session_factory
    config.registry["dbengine"] = engine

    def dbsession(request: Any) -> Session:
        # a test (or a script) may hand its own session in through the environ
        session = request.environ.get("app.dbsession")
        if session is None:
            # a read that wrote after all (last_seen_at) and failed runs again with the lock
            writes = request.method not in ("GET", "HEAD") or bool(
                request.environ.get("retry.attempt")
            )
            session = get_tm_session(session_factory, request.tm, request=request, writes=writes)
        return session

    config.add_request_method(dbsession, reify=True)
