"""The Huey application the Huey peer enqueues into and its consumer runs (SqliteHuey, process workers)."""

from __future__ import annotations

import os
import sqlite3
import time

from huey import Huey
from huey.storage import SqliteStorage


class NormalSyncSqliteStorage(SqliteStorage):
    """SqliteHuey with synchronous=NORMAL, the durability taskq runs with (Huey's default is FULL), so the
    comparison is between queue designs, not fsync policies."""

    def _create_connection(self) -> sqlite3.Connection:
        connection = super()._create_connection()
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


huey = Huey("bench", storage_class=NormalSyncSqliteStorage, filename=os.environ.get("BENCH_HUEY_DB", "huey.db"))


@huey.task()
def noop() -> int:
    return 1  # a result, so Huey stores it: completions are counted from Huey's result table


@huey.task()
def stamp() -> float:
    return time.time()
