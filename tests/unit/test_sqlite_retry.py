"""On SQLite (the demo) a request whose transaction lost a write race ("database is
locked", at once in WAL mode) is marked retryable, so pyramid_retry runs it again."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from pyramid_retry import IRetryableError

from fedoracloud.models import get_engine


def test_a_lost_write_race_is_retryable_and_other_errors_are_not(tmp_path: Any) -> None:
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'race.sqlite'}"})
    raw = engine.raw_connection()  # outside a transaction, as SQLite requires
    raw.cursor().execute("PRAGMA journal_mode=WAL")
    raw.close()
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
        conn.commit()
    slow, fast = engine.connect(), engine.connect()
    try:
        slow.begin()
        slow.execute(sa.text("SELECT count(*) FROM t")).scalar()  # a read snapshot
        with fast.begin():
            fast.execute(sa.text("INSERT INTO t VALUES (1)"))  # another writer commits
        with pytest.raises(sa.exc.OperationalError, match="database is locked") as raised:
            slow.execute(sa.text("INSERT INTO t VALUES (2)"))
        assert IRetryableError.providedBy(raised.value)
        slow.rollback()
        with pytest.raises(sa.exc.OperationalError) as other:
            slow.execute(sa.text("SELECT * FROM no_such_table"))
        assert not IRetryableError.providedBy(other.value)
    finally:
        slow.close()
        fast.close()
        engine.dispose()
