"""The only place where SQLite and PostgreSQL differ. Each difference is one method, decided once per engine."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import select
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Insert, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from taskq.schema import DEDUP_ACTIVE

NOTIFY_CHANNEL = "taskq_tasks"
SQLITE_CHANGE_POLL_SECONDS = 0.005  # where inotify is missing: a stat() every 5 ms

log = logging.getLogger("taskq.wake")


class WakeSignal(Protocol):
    """Tells an idle pool that the database may hold new work, without querying it in a loop."""

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True as soon as something may have changed."""
        ...

    def close(self) -> None: ...


class SqliteFileChange:
    """Every SQLite commit in WAL mode writes the -wal file. On Linux, inotify on the database's directory
    tells us at once and costs nothing while idle; elsewhere we stat() the files every few milliseconds
    (no connection, no lock, no query). Changes we cannot see (none known) are covered by the workers'
    fallback poll."""

    _INOTIFY_MASK = 0x2 | 0x8 | 0x80 | 0x100  # IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE

    def __init__(self, database: Path) -> None:
        self._paths = (Path(f"{database}-wal"), database)
        self._names = {path.name.encode() for path in self._paths}
        self._last = self._signature()
        self._inotify_fd = self._open_inotify(database.parent)

    def _open_inotify(self, directory: Path) -> int | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return None
            if libc.inotify_add_watch(fd, str(directory).encode(), self._INOTIFY_MASK) < 0:
                os.close(fd)
                return None
        except (OSError, AttributeError):
            return None
        return fd

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        signature = []
        for path in self._paths:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                signature.append((0, 0, 0))
            else:
                signature.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return tuple(signature)

    def wait(self, timeout: float) -> bool:
        if self._inotify_fd is not None:
            return self._wait_inotify(timeout)
        deadline = time.monotonic() + timeout
        while True:
            current = self._signature()
            if current != self._last:
                self._last = current
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(SQLITE_CHANGE_POLL_SECONDS, remaining))

    def _wait_inotify(self, timeout: float) -> bool:
        assert self._inotify_fd is not None
        ready, _, _ = select.select([self._inotify_fd], [], [], timeout)
        if not ready:
            return False
        changed = False
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._inotify_fd, 65536):
                offset = 0
                while offset < len(data):  # struct inotify_event: wd, mask, cookie, len, name[len]
                    name_length = int.from_bytes(data[offset + 12 : offset + 16], sys.byteorder)
                    name = data[offset + 16 : offset + 16 + name_length].rstrip(b"\0")
                    changed = changed or name in self._names
                    offset += 16 + name_length
        return changed

    def close(self) -> None:
        if self._inotify_fd is not None:
            os.close(self._inotify_fd)
            self._inotify_fd = None


class PostgresNotifications:
    """LISTEN on a dedicated autocommit connection; enqueue NOTIFYs inside its transaction, so a
    notification arrives only once the task is committed. Reconnects with backoff after a loss."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: Any = None
        self._retry_at = 0.0
        self._backoff = 0.5

    def _connect(self) -> Any:
        import psycopg

        # TCP keepalives: a host or network that vanishes without closing the socket would otherwise leave
        # us listening on a dead connection forever (workers would fall back to polling, silently).
        connection = psycopg.connect(
            self._url, autocommit=True, keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
        )
        connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return connection

    def wait(self, timeout: float) -> bool:
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                time.sleep(min(timeout, self._retry_at - time.monotonic()))
                return False
            try:
                self._connection = self._connect()
                self._backoff = 0.5
            except Exception as error:
                log.warning("listen_failed: %s (retrying in %.1f s)", error, self._backoff)
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, 10.0)
                return True  # we may have missed notifications: let workers look
        try:
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception as error:
            log.warning("listen_lost: %s", error)
            self.close()
            return True

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_ADVISORY_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


def _advisory_key(name: str) -> int:
    """A signed 64-bit advisory lock number for a name (a collision only serialises two caps together)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


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

    def wake_signal(self, engine: Engine) -> WakeSignal:
        """How an idle pool learns of new tasks on this database."""
        raise NotImplementedError


class SqliteDialect(Dialect):
    name = "sqlite"

    def begin_write(self, connection: Connection) -> None:
        # A deferred transaction that later upgrades to a writer fails with "database is locked"
        # regardless of the busy timeout; taking the write lock up front lets the busy handler wait.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def insert_unless_active(self, table: Table) -> Insert:
        return (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedup_key], index_where=DEDUP_ACTIVE)
            .returning(table.c.id)
        )

    def insert_if_absent(self, table: Table) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing()

    def is_transient(self, error: DBAPIError) -> bool:
        message = str(error.orig).lower()
        return "locked" in message or "busy" in message or super().is_transient(error)

    def lock_for_migration(self, connection: Connection) -> None:
        self.begin_write(connection)

    def wake_signal(self, engine: Engine) -> WakeSignal:
        return SqliteFileChange(Path(engine.url.database or "").resolve())


class PostgresDialect(Dialect):
    name = "postgresql"

    # SQLSTATEs worth retrying: serialization failure, deadlock, admin/crash shutdown, cannot connect now,
    # and the whole connection-exception class 08.
    _TRANSIENT_STATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})

    def insert_unless_active(self, table: Table) -> Insert:
        return (
            postgresql.insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.dedup_key], index_where=DEDUP_ACTIVE)
            .returning(table.c.id)
        )

    def insert_if_absent(self, table: Table) -> Insert:
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

    def wake_signal(self, engine: Engine) -> WakeSignal:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresNotifications(url)


def dialect_for(engine: Engine | Any) -> Dialect:
    name = engine.dialect.name
    if name == "sqlite":
        return SqliteDialect()
    if name == "postgresql":
        return PostgresDialect()
    raise ValueError(f"unsupported database dialect {name!r}: taskq supports sqlite and postgresql")
