"""The SQLite wake-up transport on a real database file: a commit wakes an idle pool, reads do not."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from taskq import wakeup


def _watchdog(database: Path) -> wakeup.WakeSignal:
    return wakeup.SqliteWatchdog(database)


def _inotify(database: Path) -> wakeup.WakeSignal:
    source = wakeup.SqliteInotify.open(database)
    if source is None:
        pytest.skip("no inotify on this system")
    return source


def test_sqlite_wakes_through_inotify_where_it_has_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'taskq.db'}")
    source = wakeup.wake_signal(engine)
    try:
        expected = wakeup.SqliteInotify if wakeup.SqliteInotify.open(tmp_path / "x.db") else wakeup.SqliteWatchdog
        assert isinstance(source, expected)
    finally:
        source.close()
        engine.dispose()


@pytest.mark.parametrize("transport", [_inotify, _watchdog], ids=["inotify", "watchdog"])
def test_a_commit_wakes_the_pool_and_reads_do_not(
    tmp_path: Path, transport: Callable[[Path], wakeup.WakeSignal]
) -> None:
    database = tmp_path / "taskq.db"
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    source = transport(database.resolve())
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
        (tmp_path / "pool.log").write_text("a line\n")
        assert not source.wait(0.3), "another file of the directory should not wake the pool"
    finally:
        source.close()
        connection.close()
