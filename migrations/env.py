"""Alembic environment. taskq passes its own open connection in `config.attributes["connection"]`;
plain `alembic` runs resolve the URL from `-x url=...`, then `sqlalchemy.url` in alembic.ini (unset in the
one taskq ships), then TASKQ_DATABASE_URL, then the default."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from taskq.settings import DATABASE, environment_value

config = context.config


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or environment_value(DATABASE)
    )


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
