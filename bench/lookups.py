"""`python -m bench.lookups [--rows N] [--only sqlite,postgres]`: the dashboard's reads at a million rows.

Fills a fresh taskq database (SQLite file, or a private PostgreSQL schema dropped afterwards) with N
finished tasks by INSERT .. SELECT (not through the queue: a million enqueues would take minutes and
measure nothing new), lets the StatsRollup duty catch up, then times each read the dashboard, the
Streamlit helper and /metrics make, as p50 / p95 over many calls. Last, enqueue and claim+complete are
timed with and without the one index this work adds to `tasks` (ix_tasks_dedup_key), interleaved, to
show what it costs the hot paths. Prints a Markdown table (as appended to bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

import taskq
from bench import dbs
from taskq.clock import utc_now
from taskq.maintenance import StatsRollup
from taskq.model import Status, TaskFilter
from taskq.store import Store

NAMES = 5  # bench.job0 .. bench.job4
QUEUES = ("default", "mail", "reports")
DEDUP_EVERY = 10  # every 10th row carries a dedup key job:<i>
SPREAD_DAYS = 7  # finished_at spread evenly over the week before the last minute
ACTIVE_ROWS = 1_000  # pending rows beside the finished ones
CALLS = 200  # per read figure
HOT_PATH_TASKS = 3_000  # per enqueue / claim+complete sample on SQLite; a third of it on PostgreSQL
HOT_PATH_RUNS = 7
CREATE_DEDUP_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_tasks_dedup_key ON tasks (dedup_key, id) WHERE dedup_key IS NOT NULL"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fill_sqlite(store: Store, rows: int) -> None:
    """Rows as taskq writes them: UtcDateTime's 'YYYY-MM-DD HH:MM:SS.ffffff' text, JSON as text."""
    span = SPREAD_DAYS * 86400.0 / rows  # seconds between two finished_at
    statement = f"""
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}),
    t(i, done) AS (SELECT i, julianday('now') - {SPREAD_DAYS} - 60 / 86400.0 + i * {span} / 86400.0 FROM n)
    INSERT INTO tasks (name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
                       progress, error, cancel_requested, children_total, children_completed, children_failed,
                       children_cancelled, error_log, created_at, started_at, finished_at)
    SELECT 'bench.job' || (i % {NAMES}),
           CASE i % 3 WHEN 0 THEN 'default' WHEN 1 THEN 'mail' ELSE 'reports' END,
           '[' || i || ']', '{{}}',
           CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 97 THEN 'failed' ELSE 'cancelled' END,
           0, strftime('%Y-%m-%d %H:%M:%f', done - 2 / 86400.0) || '000', 1, 0,
           CASE WHEN i % {DEDUP_EVERY} = 0 THEN 'job:' || i END, 100,
           CASE WHEN i % 100 BETWEEN 90 AND 96 THEN 'Traceback (most recent call last):' || char(10) ||
                'ValueError: row ' || i END,
           0, 0, 0, 0, 0, '[]',
           strftime('%Y-%m-%d %H:%M:%f', done - 2 / 86400.0) || '000',
           strftime('%Y-%m-%d %H:%M:%f', done - (i % 50) / 10.0 / 86400.0) || '000',
           strftime('%Y-%m-%d %H:%M:%f', done) || '000'
    FROM t
    """
    with store.engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql(statement)
        conn.commit()
        conn.exec_driver_sql("ANALYZE")


def fill_postgres(store: Store, rows: int) -> None:
    statement = f"""
    INSERT INTO tasks (name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
                       progress, error, cancel_requested, children_total, children_completed, children_failed,
                       children_cancelled, error_log, created_at, started_at, finished_at)
    SELECT 'bench.job' || (i % {NAMES}),
           CASE i % 3 WHEN 0 THEN 'default' WHEN 1 THEN 'mail' ELSE 'reports' END,
           ('[' || i || ']')::json, '{{}}'::json,
           CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 97 THEN 'failed' ELSE 'cancelled' END,
           0, done - interval '2 seconds', 1, 0,
           CASE WHEN i % {DEDUP_EVERY} = 0 THEN 'job:' || i END, 100,
           CASE WHEN i % 100 BETWEEN 90 AND 96 THEN 'Traceback (most recent call last):' || chr(10) ||
                'ValueError: row ' || i END,
           false, 0, 0, 0, 0, '[]'::json,
           done - interval '2 seconds', done - (i % 50) * interval '100 milliseconds', done
    FROM (SELECT i, now() - interval '{SPREAD_DAYS} days' - interval '1 minute'
                    + i * interval '{SPREAD_DAYS * 86400.0 / rows} seconds' AS done
          FROM generate_series(1, {rows}) AS i) AS t
    """
    with store.engine.connect() as conn:
        conn.execute(text(statement))
        conn.commit()
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE tasks"))


def timings(call: Callable[[], Any], calls: int = CALLS) -> tuple[float, float]:
    """(p50, p95) in milliseconds over `calls` calls, after one warm-up call."""
    call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def reads(store: Store, rows: int) -> list[tuple[str, float, float]]:
    rng = random.Random(13)
    now = utc_now()
    keys = [f"job:{rng.randrange(DEDUP_EVERY, rows, DEDUP_EVERY)}" for _ in range(CALLS + 1)]
    key_iter = iter(keys)
    deep = rows // 2
    failed = TaskFilter(status=Status.FAILED)
    named = TaskFilter(name_contains="job3", status=Status.FAILED)
    mail = TaskFilter(queue="mail", status=Status.FAILED)
    errors = TaskFilter(error_contains="ValueError")
    figures = [
        ("stats()", store.stats),
        ("latest task by dedup key (finished)", lambda: store.latest_by_dedup_key(next(key_iter))),
        ("list page: newest 50", lambda: store.page(TaskFilter(), limit=50)),
        ("list page: failed, newest 50", lambda: store.page(failed, limit=50)),
        ("list page: failed, oldest 50 (after_id=0)", lambda: store.page(failed, after_id=0, limit=50)),
        ("list page: failed, 50 older than the middle row", lambda: store.page(failed, before_id=deep, limit=50)),
        ("list page: name = bench.job3, 50", lambda: store.page(TaskFilter(name="bench.job3"), limit=50)),
        ("list page: name contains 'job3', failed, 50", lambda: store.page(named, limit=50)),
        ("list page: queue = mail, failed, 50", lambda: store.page(mail, limit=50)),
        ("list page: error contains 'ValueError', 50 (scan)", lambda: store.page(errors, limit=50)),
        ("queue depths", lambda: store.queue_depths(now=now)),
        ("counts by queue and status (/metrics)", store.counts_by_queue),
        ("chart rollups, last day", lambda: store.chart_window(since=now - timedelta(days=1))),
        ("schedule overview (no schedules)", store.schedule_overview),
    ]  # fmt: skip
    return [(label, *timings(call)) for label, call in figures]


def hot_paths(store: Store) -> list[tuple[str, float, float, float]]:
    """Enqueue (with a dedup key: the only rows the new index holds; and without) and claim+complete,
    tasks/s, with the index dropped ('before') and present ('after'). Runs alternate before/after and
    each pair gives a ratio (after / before), so drift of the shared machine cancels out; the index
    change is checkpointed first so its own writes are not charged to the next samples."""

    count = HOT_PATH_TASKS if store.engine.dialect.name == "sqlite" else HOT_PATH_TASKS // 3

    def enqueue_keyed() -> float:
        started = time.perf_counter()
        for _ in range(count):
            store.enqueue("bench.job0", dedup_key=f"hot:{random.random()}")
        return count / (time.perf_counter() - started)

    def enqueue_plain() -> float:
        started = time.perf_counter()
        for _ in range(count):
            store.enqueue("bench.job0")
        return count / (time.perf_counter() - started)

    def claim_complete() -> float:
        done = 0
        started = time.perf_counter()
        while (task := store.claim("bench-worker")) is not None:
            store.complete(task.id, None, worker_id="bench-worker", attempt=task.attempts)
            done += 1
        return done / (time.perf_counter() - started)

    sqlite = store.engine.dialect.name == "sqlite"

    def index(present: bool) -> None:
        with store.engine.connect() as conn:
            conn.execute(text(CREATE_DEDUP_INDEX if present else "DROP INDEX IF EXISTS ix_tasks_dedup_key"))
            conn.commit()
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if sqlite else "CHECKPOINT")

    figures = {"enqueue, dedup key": enqueue_keyed, "enqueue, no key": enqueue_plain, "claim+complete": claim_complete}
    samples: dict[tuple[str, bool], list[float]] = {}
    for run_index in range(HOT_PATH_RUNS):
        # ABBA order: whichever runs second in a pair (a bigger table, a warmer cache) alternates.
        for present in (False, True) if run_index % 2 == 0 else (True, False):
            index(present)
            for label, run in figures.items():
                samples.setdefault((label, present), []).append(run())
    result = []
    for label in figures:
        before, after = samples[(label, False)], samples[(label, True)]
        ratios = [a / b for a, b in zip(after, before, strict=True)]
        result.append((label, statistics.median(before), statistics.median(after), statistics.median(ratios)))
    return result


def measure(dialect: str, url: str, rows: int, *, hot: bool = True) -> None:
    store = taskq.open_store(url)
    try:
        started = time.perf_counter()
        (fill_sqlite if dialect == "sqlite" else fill_postgres)(store, rows)
        log(f"{dialect}: {rows:,} finished rows in {time.perf_counter() - started:.1f} s")
        store.enqueue_many(
            [taskq.TaskRequest("bench.job1", queue="mail", run_after=3600.0) for _ in range(ACTIVE_ROWS)]
        )
        duty = StatsRollup(store, budget_seconds=3600)
        started = time.perf_counter()
        counts = duty.run_once(utc_now())
        catch_up = time.perf_counter() - started
        log(f"{dialect}: rollup catch-up {counts} in {catch_up:.1f} s")
        assert counts["rolled_up"] == rows, counts
        print(f"\n### {dialect}: {rows:,} finished rows + {ACTIVE_ROWS:,} pending\n")
        print(f"Rollup catch-up from nothing: {catch_up:.1f} s for {rows:,} rows (once; then a few rows a tick).\n")
        print("| read | p50 ms | p95 ms |\n|---|---:|---:|")
        for label, p50, p95 in reads(store, rows):
            print(f"| {label} | {p50:.2f} | {p95:.2f} |", flush=True)
        if not hot:
            return
        print(
            f"\n| hot path ({HOT_PATH_RUNS} pairs of samples, ABBA) | without ix_tasks_dedup_key"
            " tasks/s | with it tasks/s | with / without (median of pairs) |\n|---|---:|---:|---:|"
        )
        for label, before, after, ratio in hot_paths(store):
            print(f"| {label} | {before:,.0f} | {after:,.0f} | {ratio:.3f} |", flush=True)
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--no-hot-paths", action="store_true", help="the reads only")
    options = parser.parse_args()
    wanted = options.only.split(",")
    if "sqlite" in wanted:
        with tempfile.TemporaryDirectory() as directory:
            _path, url = dbs.sqlite_taskq_db(Path(directory))
            measure("sqlite", url, options.rows, hot=not options.no_hot_paths)
    if "postgres" in wanted:
        problem = dbs.postgres_available()
        if problem:
            log(f"postgres skipped: {problem}")
        else:
            with dbs.pg_schema("lookups") as schema:
                measure("postgres", schema.url, options.rows, hot=not options.no_hot_paths)


if __name__ == "__main__":
    main()
