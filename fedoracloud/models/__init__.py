"""The data model, the engine and the request's transaction-managed session."""

from __future__ import annotations

from typing import Any

import zope.sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, engine_from_config
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

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
from .user import AccessRequest, ApiToken, GroupMembership, LoginSession, RequestState, User
from .vm import Vm, VmDisk, VmNic, VmRequest, VmRequestState, VmState

__all__ = [
    "AccessRequest",
    "ApiToken",
    "AuditEvent",
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


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _sqlite_locked_is_retryable(context: Any) -> None:
    # In WAL mode a transaction that read before another one committed cannot write (SQLite
    # answers "database is locked" at once, busy_timeout or not): the demo's web requests,
    # its task worker and its event listener all write, so such a request is run again
    # from the start by pyramid_retry, as a PostgreSQL serialization failure is.
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


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to the engine."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(
    session_factory: sessionmaker[Session], transaction_manager: Any, request: Any = None
) -> Session:
    """A session joined to a transaction manager (pyramid_tm's, or a script's own)."""
    # the manager is kept so that work can wait for its commit (tasks are sent after it)
    dbsession = session_factory(
        info={"request": request, "transaction_manager": transaction_manager}
    )
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config: Any) -> None:
    """Give every request ``request.dbsession``, committed or aborted by pyramid_tm."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    # pyramid_tm would look the user up outside the exception views (to note them on the
    # transaction): a database that is down must reach the 503 view, not escape as a 500
    settings["tm.annotate_user"] = False
    # a request that failed on a retryable database error (a serialization failure, SQLite's
    # "database is locked") runs again from the start, up to three times in all
    settings.setdefault("retry.attempts", 3)
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    engine = get_engine(settings)
    session_factory = get_session_factory(engine)
    config.registry["dbsession_factory"] = session_factory
    config.registry["dbengine"] = engine

    def dbsession(request: Any) -> Session:
        # a test (or a script) may hand its own session in through the environ
        session = request.environ.get("app.dbsession")
        if session is None:
            session = get_tm_session(session_factory, request.tm, request=request)
        return session

    config.add_request_method(dbsession, reify=True)
