"""The hottest statements on SQLite, run straight through the driver: an enqueue without dedup key (one
row alone, or a batch in one executemany), and the claims' (claim.py).

SQLAlchemy stays the schema and statement layer (the SQL is compiled from `tasks` once); only the
per-call machinery is skipped. Measured (bench/): a pooled checkout/checkin plus Core's parameter and
result processing cost more than the INSERT and COMMIT themselves, so one connection per thread is kept
out of the pool (detached: it never starves the pool of a web server with many threads) and values are
encoded here exactly as the column types encode them (JSON text; UTC times as fixed-width text).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, insert
from sqlalchemy.exc import DBAPIError

from taskq.clock import as_utc
from taskq.json_limits import bind_json, read_column
from taskq.schema import tasks

T = TypeVar("T")

# The columns an enqueue sets (enqueue.row_values); the others take their server defaults.
_REQUIRED_COLUMNS = ("name", "queue", "args", "kwargs", "priority", "run_after", "max_retries", "created_at")
_OPTIONAL_COLUMNS = ("dedup_key", "parent_id", "timeout", "continuation", "trace_context")  # NULL unless given
_TIME_COLUMNS = frozenset({"run_after", "created_at"})
_JSON_COLUMNS = frozenset({"args", "kwargs"})


def sqlite_time(value: datetime) -> str:
    """What UtcDateTime stores on SQLite: naive UTC, always with microseconds, so text order is time order."""
    if value.tzinfo is UTC:  # nearly always (utc_now): the same text less its fixed-width "+00:00"
        return value.isoformat(" ", "microseconds")[:26]
    return as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


# How many fork()s led to this process: a thread's connection made before the last one is not used (the
# parent's). Counted at fork rather than compared with os.getpid(), a system call, on every statement.
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


class _Compiled:
    """A Core statement compiled once for SQLite, bound positionally: its constants come from the
    statement itself, the caller's values by bind name, each encoded as its column type would."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.order = tuple(compiled.positiontup or ())
        self.constants = dict(compiled.params)
        columns: Any = getattr(statement, "_returning", None) or getattr(statement, "selected_columns", ())
        self.returning = [column.key for column in columns]

    def bind(self, values: dict[str, Any]) -> list[Any]:
        out = []
        for name in self.order:
            value = values[name] if name in values else self.constants[name]
            if isinstance(value, datetime):
                value = sqlite_time(value)
            elif name in _JSON_BINDS and value is not None:
                value = bind_json(value)
            out.append(value)
        return out


_JSON_BINDS = frozenset({"args", "kwargs", "result"})
_JSON_RESULT_COLUMNS = ("args", "kwargs", "result", "error_log")
_TIME_RESULT_COLUMNS = ("run_after", "lease_until", "created_at", "started_at", "finished_at")


def row_as_mapping(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """A raw tasks row as Core would have returned it (JSON decoded by the engine's decoder, which never
    raises, times as datetimes)."""
    values = dict(zip(names, row, strict=True))
    for name in _JSON_RESULT_COLUMNS:
        if values.get(name) is not None:
            values[name] = read_column(values[name])
    for name in _TIME_RESULT_COLUMNS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    return values


class _Columns:
    """One column list of the plain INSERT, compiled for SQLite, with where its times and JSON sit."""

    def __init__(self, columns: tuple[str, ...], dialect: Any) -> None:
        compiled = insert(tasks).values({name: bindparam(name) for name in columns}).compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = order = tuple(compiled.positiontup or ())
        assert set(order) == set(columns), order
        self.values = itemgetter(*order)
        self.times = [index for index, name in enumerate(order) if name in _TIME_COLUMNS]
        self.json = [index for index, name in enumerate(order) if name in _JSON_COLUMNS]


def _sets_optional(row: dict[str, Any]) -> bool:
    """Whether `row` gives any of _OPTIONAL_COLUMNS (written out: no loop on the single enqueue's path)."""
    return (
        row["dedup_key"] is not None
        or row["parent_id"] is not None
        or row["timeout"] is not None
        or row["continuation"] is not None
        or row["trace_context"] is not None
    )


class PlainInsert:
    """The INSERT of tasks without dedup key, compiled for SQLite, and rows (enqueue.row_values) as its
    positional parameters: JSON as the enqueue check encoded it, times as UtcDateTime stores them (the
    enqueue's `now`, which most rows share as created_at and run_after, encoded once).

    The columns that are NULL unless given (_OPTIONAL_COLUMNS) are left out of the statement when no row
    sets them, nearly always: the driver adapts each None it binds the slow way (an attribute lookup that
    fails, ~3,000 instructions), which cost a single enqueue 17,000 instructions (12 % of its statement).
    The driver binds only exact str: the check's EncodedJson goes in as str."""

    def __init__(self, dialect: Any) -> None:
        self._dialect = dialect
        self._plans: dict[tuple[str, ...], _Columns] = {}
        self._bare = self._plan(())
        assert self._bare.order == _REQUIRED_COLUMNS, self._bare.order  # the order `many` writes them in

    def _plan(self, optional: tuple[str, ...]) -> _Columns:
        plan = self._plans.get(optional)
        if plan is None:
            plan = self._plans[optional] = _Columns(_REQUIRED_COLUMNS + optional, self._dialect)
        return plan

    def one(self, row: dict[str, Any]) -> tuple[str, list[Any]]:
        """The statement and parameters of a single row (run_after is usually created_at: encoded once)."""
        if _sets_optional(row):
            plan = self._plan(tuple(name for name in _OPTIONAL_COLUMNS if row[name] is not None))
        else:
            plan = self._bare
        values = list(plan.values(row))
        first, second = plan.times
        when = values[first]
        values[first] = text = sqlite_time(when)
        values[second] = text if values[second] is when else sqlite_time(values[second])
        for index in plan.json:
            values[index] = str(values[index])
        return plan.sql, values

    def many(self, rows: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        """The statement and the parameters of each row, for one executemany."""
        optional: set[str] = set()
        for row in rows:
            if _sets_optional(row):
                optional.update(name for name in _OPTIONAL_COLUMNS if row[name] is not None)
        if not optional:
            return self._bare.sql, self._bare_params(rows)
        plan = self._plan(tuple(name for name in _OPTIONAL_COLUMNS if name in optional))
        times, json = plan.times, plan.json
        encoded: dict[datetime, str] = {}  # by value: most rows share the enqueue's now
        out = []
        for row in rows:
            values = list(plan.values(row))
            for index in times:
                when = values[index]
                text = encoded.get(when)
                if text is None:
                    text = encoded[when] = sqlite_time(when)
                values[index] = text
            for index in json:
                values[index] = str(values[index])
            out.append(tuple(values))
        return plan.sql, out

    @staticmethod
    def _bare_params(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """`many` of rows that set no optional column (nearly every batch), in _REQUIRED_COLUMNS' order
        and without the general loop: at 10,000 rows a batch it is a tenth of the enqueue's own work.
        Each time is encoded when it is not the object the row before had (most rows share one `now`)."""
        run_after: Any = None
        created: Any = None
        run_after_text = created_text = ""
        out = []
        for row in rows:
            if row["run_after"] is not run_after:
                run_after = row["run_after"]
                run_after_text = sqlite_time(run_after)
            if row["created_at"] is not created:
                created = row["created_at"]
                created_text = sqlite_time(created)
            out.append(
                (
                    row["name"],
                    row["queue"],
                    str(row["args"]),
                    str(row["kwargs"]),
                    row["priority"],
                    run_after_text,
                    row["max_retries"],
                    created_text,
                )
            )
        return out


class SqliteHotPath:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.plain_insert = PlainInsert(engine.dialect)
        self._local = threading.local()
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()

    def prepare(self, statement: Any) -> _Compiled:
        return _Compiled(statement, self.engine)

    def execute_many(self, connection: sqlite3.Connection, compiled: _Compiled, rows: list[dict[str, Any]]) -> int:
        return int(connection.executemany(compiled.sql, [compiled.bind(row) for row in rows]).rowcount)

    def fetch_all(self, connection: sqlite3.Connection, compiled: _Compiled, values: dict[str, Any]) -> list[Any]:
        rows = connection.execute(compiled.sql, compiled.bind(values)).fetchall()
        return [row_as_mapping(compiled.returning, row) for row in rows]

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "forks", None) != _forks:  # never use a connection across fork()
            pooled = self.engine.raw_connection()  # runs the engine's connect hook (pragmas)
            pooled.detach()
            # No busy handler here: SQLite's sleeps 1, 2, 5, 10 ms while another worker's transaction
            # holds the lock for a fraction of one; the store's retry waits in finer, jittered steps.
            raw = pooled.dbapi_connection
            assert raw is not None, "a connection just taken from the pool"
            raw.execute("PRAGMA busy_timeout=0")
            # One cursor kept for the single insert: conn.execute() makes and frees one per call.
            local.pooled, local.cursor, local.forks = pooled, raw.cursor(), _forks
            self._connections.add(pooled)
        return local.pooled.dbapi_connection

    def _cursor(self) -> sqlite3.Cursor:
        local = self._local
        if getattr(local, "forks", None) != _forks:
            self._connection()
        return local.cursor

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """One BEGIN IMMEDIATE transaction; driver errors surface as SQLAlchemy's, for the store's retry."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise DBAPIError.instance(None, None, error, sqlite3.Error) from error
        return result

    def insert(self, row: dict[str, Any]) -> int:
        """One statement in autocommit mode: SQLite makes it a transaction of its own, which takes the
        write lock as it starts (so no deferred-upgrade deadlock) and costs one call instead of three
        (BEGIN, INSERT, COMMIT). The id is the rowid the statement assigned."""
        sql, params = self.plain_insert.one(row)
        try:
            return int(self._cursor().execute(sql, params).lastrowid or 0)
        except sqlite3.Error as error:
            raise DBAPIError.instance(None, None, error, sqlite3.Error) from error

    def close(self) -> None:
        for pooled in list(self._connections):
            pooled.close()
        self._local = threading.local()
