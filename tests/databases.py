"""Scratch databases for the tests, empty or already migrated.

``scratch_database(kind, directory, prefix)`` makes a database of its own for a test, a
module or a run and removes it afterwards: a file under ``directory`` on SQLite, a database
on the running PostgreSQL (``FEDORACLOUD_TEST_PG_URL``) otherwise.  With ``migrated=True``
it starts at Alembic's head without running the migrations again: the schema is migrated
once into a template (one per version of ``alembic/``, kept between runs) and copied:
``CREATE DATABASE … TEMPLATE fc_template_<hash>`` on PostgreSQL, a file copy on SQLite.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic.config import Config

from alembic import command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BASE_URL = os.environ.get(
    "FEDORACLOUD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def alembic_config(settings: dict[str, Any]) -> Config:
    """Alembic's config for the app settings ``settings`` (their ``sqlalchemy.url``)."""
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(ROOT, "alembic"))
    cfg.attributes["settings"] = settings
    return cfg


def migrate(url: str) -> None:
    """Bring the database at ``url`` to Alembic's head."""
    command.upgrade(alembic_config({"sqlalchemy.url": url}), "head")


def schema_hash() -> str:
    """A short hash of everything the migrated schema depends on (``alembic/``)."""
    digest = hashlib.sha256()
    directory = os.path.join(ROOT, "alembic")
    paths = [os.path.join(directory, "env.py")]
    versions = os.path.join(directory, "versions")
    paths += sorted(
        os.path.join(versions, name) for name in os.listdir(versions) if name.endswith(".py")
    )
    for path in paths:
        digest.update(os.path.relpath(path, directory).encode())
        with open(path, "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:16]


def pg_url(name: str) -> str:
    """The URL of database ``name`` on the test PostgreSQL."""
    return sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(False)


def _pg_template(admin: sa.Connection) -> str:
    """The migrated template database for this schema, made if missing (one maker at a time:
    an advisory lock, so parallel workers and runs wait for the first)."""
    name = f"fc_template_{schema_hash()}"
    admin.execute(sa.text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": name})
    try:
        exists = admin.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            building = f"{name}_new"
            admin.execute(sa.text(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)'))
            admin.execute(sa.text(f'CREATE DATABASE "{building}"'))
            migrate(pg_url(building))
            admin.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
    finally:
        admin.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
    return name


def _sqlite_template() -> str:
    """The migrated SQLite template file for this schema, made if missing."""
    path = os.path.join(tempfile.gettempdir(), f"fc-template-{schema_hash()}-{os.getuid()}.sqlite")
    if not os.path.exists(path):
        building = f"{path}.{os.getpid()}.{secrets.token_hex(3)}"
        migrate(f"sqlite:///{building}")
        os.replace(building, path)  # atomic: a parallel maker's copy is just as good
    return path


@contextlib.contextmanager
def scratch_database(
    kind: str, directory: str, prefix: str = "fc_scratch", *, migrated: bool = False
) -> Iterator[str]:
    """A database of its own (``kind`` is ``sqlite`` or ``postgresql``), empty or at
    Alembic's head, removed when the block ends; yields its URL."""
    if kind == "sqlite":
        path = os.path.join(directory, f"{prefix}_{secrets.token_hex(3)}.sqlite")
        if migrated:
            with (
                contextlib.closing(sqlite3.connect(_sqlite_template())) as source,
                contextlib.closing(sqlite3.connect(path)) as target,
            ):
                source.backup(target)
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in (path, f"{path}-wal", f"{path}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)
        return
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            template = f' TEMPLATE "{_pg_template(conn)}"' if migrated else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
        yield pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
