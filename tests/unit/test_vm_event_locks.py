"""Exactly one event listener per host in the cluster: PostgreSQL advisory locks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fedoracloud.services.vm_events import HostLocks


def test_one_holder_per_host(dbengine: Any, db_kind: str) -> None:
    first, second = HostLocks(dbengine), HostLocks(dbengine)
    try:
        assert first.acquire(4242)
        assert first.acquire(4242)  # holding it already
        if db_kind == "postgresql":
            assert not second.acquire(4242)  # another process: not while the first holds it
            assert second.acquire(4243)  # another host is free
            first.release(4242)
            assert second.acquire(4242)
        else:
            pytest.skip("SQLite is the single-process demo: every lock is granted")
    finally:
        first.close()
        second.close()


def test_a_dead_holder_lets_go(dbengine: Any, db_kind: str) -> None:
    if db_kind != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    first, second = HostLocks(dbengine), HostLocks(dbengine)
    try:
        assert first.acquire(4244)
        first._connection().invalidate()  # the process died: its connection is gone
        first._conn = None
        # the server ends the dead session's backend, and its locks, on its own time
        deadline = time.monotonic() + 10
        while not second.acquire(4244):
            assert time.monotonic() < deadline, "the dead holder's lock was never released"
            time.sleep(0.05)
    finally:
        first.close()
        second.close()
