"""The physical limit: the same work as taskq's hot paths, with the bare drivers and nothing in between.

Each function builds its own fresh table (taskq's migrated schema, so the same indexes are maintained)
and returns a rate per second.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.dbs import INSERT_COLUMNS, SQLITE_TIME_FORMAT, PgSchema, task_row, utc_now_naive

BATCH_SIZE = 1000
_PLACEHOLDERS_SQLITE = ", ".join("?" * 21)
_PLACEHOLDERS_PG = ", ".join(["%s"] * 21)

# The minimal claim: the highest-priority ready task, in the order of taskq's partial claim index.
SQLITE_CLAIM = """
UPDATE tasks SET status = 'running', started_at = ?, attempts = attempts + 1, worker_id = ?, lease_until = ?
WHERE id = (SELECT id FROM tasks WHERE status = 'pending' AND run_after <= ?
            ORDER BY priority DESC, run_after, id LIMIT 1) AND status = 'pending'
RETURNING id, name, args, kwargs
"""
SQLITE_COMPLETE = """
UPDATE tasks SET status = 'completed', result = 'null', progress = 100, finished_at = ?, lease_until = NULL
WHERE id = ? AND status = 'running' AND worker_id = ?
"""
PG_CLAIM = """
WITH candidate AS (
    SELECT id FROM tasks WHERE status = 'pending' AND run_after <= %(now)s
    ORDER BY priority DESC, run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE tasks SET status = 'running', started_at = %(now)s, attempts = attempts + 1, worker_id = %(worker)s,
    lease_until = %(lease)s
FROM candidate WHERE tasks.id = candidate.id
RETURNING tasks.id, tasks.name, tasks.args, tasks.kwargs
"""
PG_COMPLETE = """
UPDATE tasks SET status = 'completed', result = 'null', progress = 100, finished_at = %s, lease_until = NULL
WHERE id = %s AND status = 'running' AND worker_id = %s
"""


def sqlite_connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def _now_text() -> str:
    return utc_now_naive().strftime(SQLITE_TIME_FORMAT)


def sqlite_insert_single(path: Path, count: int) -> float:
    """Transactions/s of BEGIN IMMEDIATE; INSERT ... RETURNING id; COMMIT (what one enqueue does)."""
    connection = sqlite_connect(path)
    statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_SQLITE}) RETURNING id"
    started = time.perf_counter()
    for _ in range(count):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(statement, task_row(_now_text())).fetchone()
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def sqlite_insert_batches(path: Path, batches: int, batch_size: int = BATCH_SIZE) -> float:
    """Rows/s of one transaction per batch with executemany."""
    connection = sqlite_connect(path)
    statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_SQLITE})"
    started = time.perf_counter()
    for _ in range(batches):
        now = _now_text()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(statement, [task_row(now) for _ in range(batch_size)])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return batches * batch_size / elapsed


def sqlite_fill(path: Path, count: int, status: str = "pending") -> None:
    """Insert `count` rows fast (finished rows get finished_at too, as the pruner's index expects)."""
    connection = sqlite_connect(path)
    now = _now_text()
    row = task_row(now, status)
    connection.execute("BEGIN IMMEDIATE")
    if status == "pending":
        statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_SQLITE})"
        connection.executemany(statement, (row for _ in range(count)))
    else:
        statement = (
            f"INSERT INTO tasks ({INSERT_COLUMNS}, finished_at, progress_message) VALUES "
            f"({_PLACEHOLDERS_SQLITE}, ?, NULL)"
        )
        connection.executemany(statement, ((*row, now) for _ in range(count)))
    connection.execute("COMMIT")
    connection.close()


def sqlite_claim_plan(path: Path) -> str:
    connection = sqlite_connect(path)
    now = _now_text()
    plan = connection.execute("EXPLAIN QUERY PLAN " + SQLITE_CLAIM, (now, "w", now, now)).fetchall()
    connection.close()
    return "; ".join(str(row[-1]) for row in plan)


def sqlite_claim_complete(path: Path, count: int) -> float:
    """Cycles/s of claim (one transaction) then complete (another), as a worker must: the claim commits
    before the task runs. The queue holds `count` pending rows first."""
    sqlite_fill(path, count)
    connection = sqlite_connect(path)
    done = 0
    started = time.perf_counter()
    while True:
        now = utc_now_naive()
        now_text = now.strftime(SQLITE_TIME_FORMAT)
        lease = (now + timedelta(seconds=30)).strftime(SQLITE_TIME_FORMAT)
        connection.execute("BEGIN IMMEDIATE")
        row = connection.execute(SQLITE_CLAIM, (now_text, "bench-worker", lease, now_text)).fetchone()
        connection.execute("COMMIT")
        if row is None:
            break
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(SQLITE_COMPLETE, (_now_text(), row[0], "bench-worker"))
        connection.execute("COMMIT")
        done += 1
    elapsed = time.perf_counter() - started
    connection.close()
    if done != count:
        raise RuntimeError(f"claimed {done} of {count} tasks")
    return done / elapsed


# -- PostgreSQL --------------------------------------------------------------------------------------


def _pg_connect(schema: PgSchema) -> Any:  # psycopg is optional: imported only when used
    import psycopg

    return psycopg.connect(schema.conninfo)


def pg_insert_single(schema: PgSchema, count: int) -> float:
    connection = _pg_connect(schema)
    statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_PG}) RETURNING id"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for _ in range(count):
            cursor.execute(statement, task_row(utc_now_naive()))
            cursor.fetchone()
            connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def pg_insert_batches(schema: PgSchema, batches: int, batch_size: int = BATCH_SIZE) -> float:
    connection = _pg_connect(schema)
    statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_PG})"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for _ in range(batches):
            now = utc_now_naive()
            cursor.executemany(statement, [task_row(now) for _ in range(batch_size)])
            connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return batches * batch_size / elapsed


def pg_fill(schema: PgSchema, count: int) -> None:
    connection = _pg_connect(schema)
    now = utc_now_naive()
    with connection.cursor() as cursor, cursor.copy(f"COPY tasks ({INSERT_COLUMNS}) FROM STDIN") as copy:
        row = task_row(now)
        for _ in range(count):
            copy.write_row(row)
    connection.commit()
    connection.execute("ANALYZE tasks")
    connection.commit()
    connection.close()


def pg_claim_complete(schema: PgSchema, count: int) -> float:
    pg_fill(schema, count)
    connection = _pg_connect(schema)
    done = 0
    started = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            now = utc_now_naive()
            cursor.execute(PG_CLAIM, {"now": now, "worker": "bench-worker", "lease": now + timedelta(seconds=30)})
            row = cursor.fetchone()
            connection.commit()
            if row is None:
                break
            cursor.execute(PG_COMPLETE, (utc_now_naive(), row[0], "bench-worker"))
            connection.commit()
            done += 1
    elapsed = time.perf_counter() - started
    connection.close()
    if done != count:
        raise RuntimeError(f"claimed {done} of {count} tasks")
    return done / elapsed


# -- issue 21: the group-commit limit and one big batch ---------------------------------------------

GROUP_COMMIT_BATCH = 32  # tasks claimed and completed per write transaction, as a one-writer design would
SQLITE_CLAIM_BATCH = """
UPDATE tasks SET status = 'running', started_at = ?, attempts = attempts + 1, worker_id = ?, lease_until = ?
WHERE id IN (SELECT id FROM tasks WHERE status = 'pending' AND run_after <= ?
             ORDER BY priority DESC, run_after, id LIMIT ?) AND status = 'pending'
RETURNING id, name, args, kwargs
"""


def sqlite_group_commit(path: Path, count: int, batch: int = GROUP_COMMIT_BATCH) -> float:
    """Tasks/s of the limit issue 21 names: one process, each write transaction completes the previous
    batch and claims the next `batch` tasks (BEGIN IMMEDIATE; executemany complete; claim; COMMIT), no-op
    tasks run in between. What a single writer serving every worker could reach at best."""
    sqlite_fill(path, count)
    connection = sqlite_connect(path)
    done, held = 0, []
    started = time.perf_counter()
    while True:
        now = utc_now_naive()
        now_text = now.strftime(SQLITE_TIME_FORMAT)
        lease = (now + timedelta(seconds=30)).strftime(SQLITE_TIME_FORMAT)
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(SQLITE_COMPLETE, [(now_text, task_id, "bench-writer") for task_id in held])
        done += len(held)
        held = [
            row[0] for row in connection.execute(SQLITE_CLAIM_BATCH, (now_text, "bench-writer", lease, now_text, batch))
        ]
        connection.execute("COMMIT")
        if not held:
            break
    elapsed = time.perf_counter() - started
    connection.close()
    if done != count:
        raise RuntimeError(f"completed {done} of {count} tasks")
    return done / elapsed


def sqlite_insert_one_batch(path: Path, rows: int) -> float:
    """Rows/s of one transaction inserting `rows` rows with one executemany: what `enqueue_many` of
    `rows` requests is compared with."""
    connection = sqlite_connect(path)
    statement = f"INSERT INTO tasks ({INSERT_COLUMNS}) VALUES ({_PLACEHOLDERS_SQLITE})"
    started = time.perf_counter()
    now = _now_text()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(statement, [task_row(now) for _ in range(rows)])
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return rows / elapsed
