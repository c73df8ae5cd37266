"""Alembic: one head; upgrade head on an empty database equals the models; downgrade works."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from fedoracloud.models import Base, get_engine

from ..conftest import alembic_config

pytestmark = pytest.mark.integration


def test_one_head():
    script = ScriptDirectory.from_config(alembic_config({}))
    assert len(script.get_heads()) == 1


def test_upgrade_head_equals_the_models_and_downgrade_base_works(empty_database):
    settings = {"sqlalchemy.url": empty_database}
    cfg = alembic_config(settings)
    command.upgrade(cfg, "head")
    engine = get_engine(settings)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            assert diff == [], diff
            tables = set(sa.inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        command.downgrade(cfg, "base")
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        command.upgrade(cfg, "head")  # and up again, from nothing
    finally:
        engine.dispose()
