"""Alembic environment: the database URL comes from the app's ini (or the caller's config)."""

from alembic import context
from fedoracloud.models import Base, get_engine
from fedoracloud.models.meta import UTCDateTime
from fedoracloud.settings import resolve_env

config = context.config
target_metadata = Base.metadata


def _settings() -> dict:
    # fedoracloud.cli passes the app's settings in config.attributes; plain `alembic -c INI`
    # reads the [app:main] section of the same ini
    settings = config.attributes.get("settings")
    if settings is None:
        from pyramid.paster import get_appsettings, setup_logging

        setup_logging(config.config_file_name)
        settings = get_appsettings(config.config_file_name)
    return resolve_env(dict(settings))


def render_item(type_, obj, autogen_context):
    """Migrations spell our UTC timestamp as the plain column type it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=_settings()["sqlalchemy.url"],
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(_settings())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
