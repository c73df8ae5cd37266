"""An event listener whose lock connection died (PostgreSQL restarted, the network cut)
knows it no longer holds its hosts: ``HostLocks.lost()`` names them, forgets them, and the
next ``acquire`` takes them again if nobody else did meanwhile (the fault suite restarts a
real PostgreSQL under a running ``fedoracloud events``: tests/integration/test_faults.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from fedoracloud.services.vm_events import HostLocks


def _kill_backend_of(locks: HostLocks, engine: Any) -> None:
    pid = locks._connection().execute(text("SELECT pg_backend_pid()")).scalar()
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_lock_lost_with_its_connection_is_known_and_taken_again(
    dbengine: Any, db_kind: str
) -> None:
    if db_kind != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    locks, other = HostLocks(dbengine), HostLocks(dbengine)
    try:
        assert locks.acquire(4301) and locks.acquire(4302)
        assert locks.lost() == set()  # alive: nothing lost
        _kill_backend_of(locks, dbengine)
        assert locks.lost() == {4301, 4302}
        assert locks.held == set() and locks.lost() == set()
        assert other.acquire(4302)  # another process took one meanwhile
        assert locks.acquire(4301)  # on a new connection
        assert not locks.acquire(4302)
    finally:
        locks.close()
        other.close()


def test_nothing_is_lost_without_locks_or_on_sqlite(dbengine: Any) -> None:
    locks = HostLocks(dbengine)
    try:
        assert locks.lost() == set()
        assert locks.acquire(4303)
        assert locks.lost() == set()
    finally:
        locks.close()
