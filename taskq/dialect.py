"""Where SQLite and PostgreSQL differ in SQL and transactions. Each difference is one method, decided once
per engine. How an idle pool hears of new tasks differs too; that transport is taskq/wakeup.py."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Integer, Table, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from taskq.schema import DEDUP_ACTIVE

NOTIFY_CHANNEL = "taskq_tasks"  # enqueues NOTIFY it; taskq/wakeup.py LISTENs on it


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_ADVISORY_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


def _advisory_key(name: str) -> int:
    """A signed 64-bit advisory lock number for a name (a collision only serialises two caps together)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class JsonBytes(FunctionElement[int]):
    """Bytes of a JSON column's UTF-8 text (the size lists show). Counting bytes, not characters, skips
    the UTF-8 decoding: on a 50 MB value it took 80-100 ms here against 175-240 ms for length() on either
    dialect. SQLite counts the value read as a BLOB; PostgreSQL takes its text's octet_length."""

    type = Integer()
    inherit_cache = True


@compiles(JsonBytes, "sqlite")
def _json_bytes_sqlite(element: JsonBytes, compiler: SQLCompiler, **kw: Any) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


@compiles(JsonBytes, "postgresql")
def _json_bytes_postgresql(element: JsonBytes, compiler: SQLCompiler, **kw: Any) -> str:
    return f"octet_length(CAST({compiler.process(element.clauses, **kw)} AS TEXT))"


class Dialect:
    name = "generic"

    def begin_write(self, connection: Connection) -> None:
        """Open a transaction that is allowed to write."""

    def insert_unless_active(self, table: Table) -> Insert:
        """INSERT that does nothing when an active task holds the same dedup key (the partial unique index)."""
        raise NotImplementedError

    def insert_if_absent(self, table: Table) -> Insert:
        """INSERT that does nothing when a row with the same primary key exists (even one not yet committed:
        the caller then waits for that transaction, so concurrent callers end up sharing one row)."""
        raise NotImplementedError

    def is_transient(self, error: DBAPIError) -> bool:
        """True for errors where running the same transaction again is the right answer."""
        return bool(error.connection_invalidated)

    def notify_new_tasks(self, connection: Connection) -> None:
        """Tell sleeping workers that tasks were added, effective at commit."""

    def lock_for_migration(self, connection: Connection) -> None:
        """Serialise concurrent schema upgrades from several processes."""

    def lock_claim_limits(self, connection: Connection, keys: Sequence[str], *, wait: bool) -> set[str]:
        """Serialise, until commit, the claims that count and fill the slots of these capped names/queues;
        returns the keys held (with `wait` False, those not held by another transaction right now).
        SQLite: the claim's BEGIN IMMEDIATE already serialises every writer, so each key is held."""
        return set(keys)

    def prefer_index_scans(self, connection: Connection) -> None:
        """For the rest of this transaction, read partial indexes entry by entry (see PostgreSQL's)."""


class SqliteDialect(Dialect):
    name = "sqlite"

    def begin_write(self, connection: Connection) -> None:
        # A deferred transaction that later upgrades to a writer fails with "database is locked"
        # regardless of the busy timeout; taking the write lock up front lets the busy handler wait.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def insert_unless_active(self, table: Table) -> Insert:
        from sqlalchemy.dialects import sqlite  # each dialect's module where it is used (see schema.DIALECTS)

        return (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedup_key], index_where=DEDUP_ACTIVE)
            .returning(table.c.id)
        )

    def insert_if_absent(self, table: Table) -> Insert:
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing()

    def is_transient(self, error: DBAPIError) -> bool:
        message = str(error.orig).lower()
        return "locked" in message or "busy" in message or super().is_transient(error)

    def lock_for_migration(self, connection: Connection) -> None:
        self.begin_write(connection)


class PostgresDialect(Dialect):
    name = "postgresql"

    # SQLSTATEs worth retrying: serialization failure, deadlock, admin/crash shutdown, cannot connect now,
    # and the whole connection-exception class 08.
    _TRANSIENT_STATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})

    def insert_unless_active(self, table: Table) -> Insert:
        from sqlalchemy.dialects import postgresql  # with all its drivers' modules: never on SQLite

        return (
            postgresql.insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedup_key], index_where=DEDUP_ACTIVE)
            .returning(table.c.id)
        )

    def insert_if_absent(self, table: Table) -> Insert:
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()

    def is_transient(self, error: DBAPIError) -> bool:
        state = getattr(error.orig, "sqlstate", None)
        if state is None:
            # psycopg reports failures to (re)connect without a SQLSTATE: "connection refused" and "the
            # database system is shutting down / starting up" while the server restarts. The engine
            # connected at start-up, so these are outages to wait out, not a wrong URL.
            return isinstance(error, OperationalError) or super().is_transient(error)
        return state in self._TRANSIENT_STATES or state.startswith("08") or super().is_transient(error)

    def notify_new_tasks(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")

    def lock_for_migration(self, connection: Connection) -> None:
        key = int.from_bytes(hashlib.sha1(b"taskq-migrations").digest()[:7], "big")
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def lock_claim_limits(self, connection: Connection, keys: Sequence[str], *, wait: bool) -> set[str]:
        # SKIP LOCKED keeps two claims off the same row, not two claims from both counting a free slot:
        # a transaction-scoped advisory lock per capped name/queue makes count-then-claim atomic, and
        # claims of uncapped tasks never take one. Waiting ones are taken in one global order (sorted
        # by key number) so two claimers cannot deadlock; the store only ever waits for its first set.
        numbers = {key: _advisory_key(f"taskq.claim_limit:{key}") for key in keys}
        held: set[str] = set()
        for key in sorted(keys, key=numbers.__getitem__):
            if wait:
                connection.execute(_ADVISORY_LOCK, {"key": numbers[key]})
                held.add(key)
            elif connection.execute(_ADVISORY_TRY_LOCK, {"key": numbers[key]}).scalar_one():
                held.add(key)
        return held

    def prefer_index_scans(self, connection: Connection) -> None:
        # A capped claim counts running rows over ix_tasks_lease, which also holds an entry for every row
        # that was running since the last vacuum. The planner picks a bitmap scan, which visits all of them
        # in the heap every time (2 ms at 60,000, measured); a plain index scan marks the dead ones killed
        # as it goes, so the next count skips them (0.02 ms). SET LOCAL ends with the transaction.
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")


def dialect_for(engine: Engine | Any) -> Dialect:
    name = engine.dialect.name
    if name == "sqlite":
        return SqliteDialect()
    if name == "postgresql":
        return PostgresDialect()
    raise ValueError(f"unsupported database dialect {name!r}: taskq supports sqlite and postgresql")
