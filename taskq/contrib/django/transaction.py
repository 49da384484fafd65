"""Enqueue through Django's own database connection, so the task commits or rolls back with the view.

taskq's store takes an open SQLAlchemy Connection (`Store.enqueue(..., connection=...)`) and writes the
row in that connection's transaction. Here that Connection wraps the DBAPI connection Django holds for
the alias (sqlite3 or psycopg): an engine whose `creator` lends it, through a proxy whose commit,
rollback and close do nothing, because those belong to Django's `atomic()`. SQLAlchemy would otherwise
roll back on returning the connection to its pool or closing its own transaction. The INSERT (and on
PostgreSQL the NOTIFY that wakes the pools, delivered only at COMMIT) are the store's statements,
compiled for the dialect as usual; nothing here writes SQL.

Why not compile the INSERT and run it on Django's cursor: the store's enqueue is more than one statement
(deduplication is INSERT ... ON CONFLICT then SELECT; NOTIFY on PostgreSQL) and its JSON and UTC
columns are converted by SQLAlchemy's bind processors, which a compiled string would bypass.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

# SQLAlchemy URL (driver) per Django vendor; taskq supports these two databases.
DIALECTS = {"sqlite": "sqlite+pysqlite://", "postgresql": "postgresql+psycopg://"}


class _Lent:
    """Django's DBAPI connection as SQLAlchemy sees it: statements pass through, the transaction's end
    and the connection's life stay Django's."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return self._raw.cursor(*args, **kwargs)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass

    def add_notice_handler(self, _handler: Any) -> None:
        # SQLAlchemy's psycopg dialect adds one on every connect: on Django's long-lived connection
        # that would be one more handler per enqueue.
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


_lent = threading.local()
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(vendor: str) -> Engine:
    with _engines_lock:
        engine = _engines.get(vendor)
        if engine is None:
            # NullPool: nothing is kept between enqueues (the next one may be on another Django connection).
            # use_native_hstore=False: psycopg's hstore lookup wants its own Connection class, not the proxy
            # (and taskq has no hstore column).
            options = {"use_native_hstore": False} if vendor == "postgresql" else {}
            engine = create_engine(DIALECTS[vendor], creator=lambda: _Lent(_lent.raw), poolclass=NullPool, **options)
            _engines[vendor] = engine
        return engine


@contextlib.contextmanager
def joined(alias: str) -> Iterator[Connection]:
    """A SQLAlchemy Connection on Django's connection for `alias`, inside its current transaction."""
    from django.db import connections

    django_connection = connections[alias]
    django_connection.ensure_connection()
    _lent.raw = django_connection.connection
    try:
        with _engine(django_connection.vendor).connect() as connection:
            yield connection
    finally:
        _lent.raw = None


def in_transaction(alias: str) -> bool:
    from django.db import connections

    return bool(connections[alias].in_atomic_block)
