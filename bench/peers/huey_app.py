"""The Huey application the Huey peer enqueues into and its consumer runs (SqliteHuey, process workers)."""

from __future__ import annotations

import os
import sqlite3
import time

from huey import Huey
from huey.storage import SqliteStorage

SYNCHRONOUS_NORMAL = 1  # what `PRAGMA synchronous` reads back for NORMAL (FULL is 2)


def storage_pragmas(connection: sqlite3.Connection) -> dict[str, object]:
    return {
        "journal_mode": connection.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": connection.execute("PRAGMA synchronous").fetchone()[0],
    }


class NormalSyncSqliteStorage(SqliteStorage):
    """SqliteHuey with WAL (Huey's default journal_mode) and synchronous=NORMAL, the durability taskq
    runs with (Huey's default is FULL), so the comparison is between queue designs, not fsync policies.
    Every connection, in the benchmark and in each consumer process, checks both or refuses to run."""

    def _create_connection(self) -> sqlite3.Connection:
        connection = super()._create_connection()
        connection.execute("PRAGMA synchronous=NORMAL")
        pragmas = storage_pragmas(connection)
        if str(pragmas["journal_mode"]).lower() != "wal" or pragmas["synchronous"] != SYNCHRONOUS_NORMAL:
            raise RuntimeError(f"Huey's SQLite connection runs with {pragmas}, not WAL and synchronous=NORMAL")
        return connection


huey = Huey("bench", storage_class=NormalSyncSqliteStorage, filename=os.environ.get("BENCH_HUEY_DB", "huey.db"))


@huey.task()
def noop() -> int:
    return 1  # a result, so Huey stores it: completions are counted from Huey's result table


@huey.task()
def stamp() -> float:
    return time.time()
