"""Alembic environment. taskq passes its own open connection in `config.attributes["connection"]`;
plain `alembic` runs resolve the URL from `-x url=...`, then `sqlalchemy.url` in alembic.ini (unset in the
one taskq ships), then taskq's own settings: TASKQ_DATABASE_URL, else ./settings.yaml, else sqlite:///taskq.db.

`target_metadata` is taskq's schema, so `alembic check` (and `revision --autogenerate`) compare the database
with taskq/schema.py."""

from __future__ import annotations

from typing import Any

from alembic import context

from taskq.engine import create_database_engine
from taskq.schema import DIALECTS, declare_partial_indexes, metadata
from taskq.settings import load_settings

config = context.config
# Every dialect's `<dialect>_where`, as the migrations write them, whichever database this run is on.
for _dialect in DIALECTS:
    declare_partial_indexes(_dialect)


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or load_settings().database
    )


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only taskq's tables are compared: a database or schema it shares may hold other applications' tables."""
    return not (type_ == "table" and reflected and compare_to is None)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # taskq's engine: postgres:// mapped to psycopg 3, a new SQLite file created private, errors without passwords.
    engine = create_database_engine(_url())
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
