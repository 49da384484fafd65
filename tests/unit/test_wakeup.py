"""The SQLite wake-up transport on a real database file: a commit wakes an idle pool, reads do not."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine

from taskq import wakeup


def test_a_commit_wakes_the_pool_and_reads_do_not(tmp_path: Path) -> None:
    database = tmp_path / "taskq.db"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    engine = create_engine(f"sqlite:///{database}")
    source = wakeup.wake_signal(engine)
    try:
        time.sleep(0.1)  # the observer's watch is in place (it starts on its own thread)
        while source.wait(0.1):  # what the set-up wrote
            pass
        connection.execute("INSERT INTO t VALUES (1)")
        assert source.wait(5.0), "a commit should wake the pool"
        while source.wait(0.1):  # every event of that one commit
            pass
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert not source.wait(0.3), "a read should not wake the pool"
    finally:
        source.close()
        connection.close()
        engine.dispose()
