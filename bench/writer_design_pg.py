"""`python -m bench.writer_design_pg`: bench.writer_design's question on PostgreSQL: one connection per host
claiming and completing for every worker, or (today) each worker its own connection and writer?

Drains 10,000 no-op tasks on taskq's migrated schema (a private PostgreSQL schema, emptied and refilled
before each drain, then ANALYZEd as bench.peers does) with 1, 2 and 4 worker processes in these shapes:

- `worker`:  each worker process its own connection and writer (today's shape): `Store.finish_and_claim`
  records its last batch and claims the next (32 tasks) in one transaction, through Core.
- `ownraw`:  `worker`, each worker running the host writer's two statements (below) for itself straight
  through psycopg: today's shape without Core, to tell the driver path's gain from the one writer's.
- `ownmany`: `ownraw` recording outcomes with taskq's own completion statement once per row (psycopg's
  executemany, pipelined), as Core does: to tell the one-statement completion's gain from the driver path's.
- `host`:    one process and one connection (this one) claims for every worker and records every outcome:
  per round, one `UPDATE tasks ... FROM unnest(...)` for all the outcomes that came back since the last
  round, one claim of as many tasks as the workers asked for (taskq's own claim statement:
  `FOR UPDATE SKIP LOCKED ... LIMIT n`), one COMMIT; both run straight through psycopg (prepared after
  five runs, like Core's). Tasks are claimed in the host writer's name (one statement for all), then
  split between workers, which get Task objects and return Completions over pipes, two batches in flight.
- `hostraw`: `host`, the claimed rows shipped as psycopg returned them and turned into Tasks by each
  worker (psycopg has already decoded JSON and times in the writer: only `Task.from_row` moves).

and `raw`: the host writer's two statements in one process, batches of 32, no workers, no Task objects.
A shape named `shape@n` (e.g. `--shapes ownraw,ownraw@64,host`) runs with batches of n.

`unnest` of one array per column is the fixed-text form of `UPDATE ... FROM (VALUES (...), (...))`: one
statement whatever the number of rows, so the server plans it once.

CPU per task counts clients and server: the workers' CPU from the clock's start to their last transaction
(own writers) or their whole life (fed workers, which open nothing), the host writer's or raw loop's own,
and every server backend of the drain's connections (found by application_name, read from /proc: the
server runs on this box's cores). The serial part is what only one process at a time can do: the host
writer's CPU plus its backend's (they take turns on one connection); own writers share no lock on
PostgreSQL (SKIP LOCKED), so they have none. The quiet-box ceiling is bench.writer_design's.

    PYTHONPATH=$PWD python -m bench.writer_design_pg [--tasks 10000] [--runs 6] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from datetime import timedelta
from typing import Any, cast

import psycopg
from psycopg.types.json import Json
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import taskq
from bench import dbs
from bench.claim_limits import TICK_SECONDS, CpuClock
from bench.writer_design import (
    LEASE_SECONDS,
    Rounds,
    Sample,
    Step,
    _cpu_seconds,
    _fill,
    abba,
    configs_of,
    drain_own_writers,
    feed_workers,
    parser,
    print_table,
    set_work,
)
from taskq.clock import utc_now
from taskq.model import Completion, Task
from taskq.store.claim import _claim_statement, _in_claim_order
from taskq.store.outcomes import _COMPLETE_PLAIN, _plain_completion_row

APPLICATION_NAME = f"taskq-bench-writer-{os.getpid()}"
HOST = "host-writer"
OWN_WRITERS = ("worker", "ownraw", "ownmany")
RESTART_ATTEMPTS = 3

# The owner guard and completed values of taskq's own plain completion (outcomes._COMPLETE_PLAIN), for
# every row of one round at once.
COMPLETE = """
UPDATE tasks SET status = 'completed',
    attempts = CASE WHEN tasks.started_at IS NULL THEN tasks.attempts + 1 ELSE tasks.attempts END,
    started_at = coalesce(tasks.started_at, v.started), result = v.result, progress = 100,
    finished_at = v.finished, lease_until = NULL, cancel_requested = false
FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(results)s::json[], %(started)s::timestamptz[],
            %(finished)s::timestamptz[]) AS v(id, attempt, result, started, finished)
WHERE tasks.id = v.id AND tasks.status = 'running' AND tasks.worker_id = %(worker_id)s
    AND tasks.attempts BETWEEN v.attempt - 1 AND v.attempt
"""


def tasks_from_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> list[Task]:
    return _in_claim_order([dict(zip(columns, row, strict=True)) for row in rows])


class HostWriter:
    """One psycopg connection that records the outcomes of every worker and claims for all of them: one
    transaction, two statements, per round."""

    def __init__(self, store: taskq.Store, worker_id: str = HOST, per_row: bool = False) -> None:
        self.worker_id = worker_id
        self.per_row = per_row  # taskq's own completion statement, once per row (executemany), not `COMPLETE`
        self.pooled = store.engine.raw_connection()
        connection = self.pooled.dbapi_connection
        assert connection is not None
        self.connection = cast("psycopg.Connection[Any]", connection)
        statement: Any = _claim_statement(False)
        compiled = statement.compile(dialect=store.engine.dialect)
        self.claim_sql = str(compiled)
        self.claim_constants = dict(compiled.params)
        self.columns = [column.key for column in statement._returning]
        complete = _COMPLETE_PLAIN.compile(dialect=store.engine.dialect)
        self.complete_sql, self.complete_constants = str(complete), dict(complete.params)

    def group_commit(self, rounds: Rounds, decode: bool = True) -> list[tuple[list[int], list[Any]]]:
        now = utc_now()
        done = [c for _, completions, _ in rounds for c in completions]
        wanted = sum(limit for _, _, limit in rounds)
        connection = self.connection
        if done and self.per_row:
            rows = [{**self.complete_constants, **_plain_completion_row(self.worker_id, c)} for c in done]
            for row in rows:
                row["result"] = None if row["result"] is None else Json(row["result"])
            with connection.cursor() as cursor:
                cursor.executemany(self.complete_sql, rows)
                updated = cursor.rowcount
            if updated != len(done):
                raise RuntimeError(f"recorded {updated} of {len(done)} outcomes")
        elif done:
            params = {
                "ids": [c.task_id for c in done],
                "attempts": [c.attempt for c in done],
                "results": [None if c.result is None else Json(c.result) for c in done],
                "started": [c.started_at or c.finished_at for c in done],
                "finished": [c.finished_at for c in done],
                "worker_id": self.worker_id,
            }
            updated = connection.execute(COMPLETE, params).rowcount
            if updated != len(done):
                raise RuntimeError(f"recorded {updated} of {len(done)} outcomes")
        claimed: list[Any] = []
        if wanted:
            claim = {
                **self.claim_constants,
                "now": now,
                "limit": wanted,
                "worker_id": self.worker_id,
                "lease_until": now + timedelta(seconds=LEASE_SECONDS),
            }
            claimed = connection.execute(self.claim_sql, claim).fetchall()
        connection.commit()
        if decode:
            claimed = tasks_from_rows(self.columns, claimed)
        out, taken = [], 0
        for _, completions, limit in rounds:
            out.append(([c.task_id for c in completions], claimed[taken : taken + limit]))
            taken += limit
        return out

    def close(self) -> None:
        self.pooled.close()


def _own_step(store: taskq.Store, worker_id: str, per_row: bool = False) -> Step:
    """`ownraw`: a worker that is its own writer through the host writer's statements (`ownmany`: with
    taskq's per-row completion statement instead of `COMPLETE`)."""
    writer = HostWriter(store, worker_id, per_row)

    def step(finished: list[Completion], batch: int) -> list[Task]:
        [(_, claimed)] = writer.group_commit([(worker_id, finished, batch)])
        return claimed

    return step


def drain_raw(writer: HostWriter, batch: int) -> float:
    started = time.perf_counter()
    finished: list[Completion] = []
    while True:
        [(_, rows)] = writer.group_commit([("raw", finished, batch)], decode=False)
        if not rows:
            break
        now = utc_now()
        finished = [Completion(row[0], row[8], None, now, has_follow_up=False, started_at=now) for row in rows]
    return time.perf_counter() - started


class Drains:
    """The drains of one run, in one schema; `url` names its connections so their backends can be found."""

    def __init__(self, schema: dbs.PgSchema, args: argparse.Namespace) -> None:
        self.schema, self.args = schema, args
        query = {"application_name": APPLICATION_NAME}
        if args.plan_cache_mode:
            options = make_url(schema.url).query.get("options", "")
            query["options"] = f"{options} -cplan_cache_mode={args.plan_cache_mode}".strip()
        self.url = make_url(schema.url).update_query_dict(query).render_as_string(False)
        self.clock = CpuClock(schema.url, APPLICATION_NAME)
        self.admin = taskq.open_store(schema.url)

    def _refill(self) -> None:
        self.admin.write(lambda conn: conn.exec_driver_sql("TRUNCATE tasks RESTART IDENTITY CASCADE"))
        _fill(self.schema.url, self.args.tasks)
        with self.admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE tasks")

    def _completed(self) -> int:
        query = "SELECT count(*) FROM tasks WHERE status = 'completed'"
        return int(self.admin.read(lambda conn: conn.exec_driver_sql(query).scalar_one()))

    def measure(self, name: str, workers: int) -> Sample:
        """`_measure`, again from a refilled queue when the server restarted under it (other sessions' tests
        restart the shared server): that drain's figures mean nothing, the error nothing about the shapes."""
        for attempt in range(RESTART_ATTEMPTS):
            started_at = self._server_start()
            try:
                return self._measure(name, workers)
            except Exception as error:
                if attempt + 1 == RESTART_ATTEMPTS or self._server_start() == started_at:
                    raise
                print(f"{name} x{workers}: the server restarted ({type(error).__name__}); again", file=sys.stderr)
        raise AssertionError("unreachable")

    def _server_start(self) -> object:
        """When the server started; None while it does not answer (waits for it up to a minute first)."""
        deadline = time.monotonic() + 60.0
        while True:
            try:
                return self.admin.read(lambda conn: conn.exec_driver_sql("SELECT pg_postmaster_start_time()").scalar())
            except DBAPIError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(1.0)

    def _measure(self, name: str, workers: int) -> Sample:
        """(tasks/s, CPU µs per task of clients and server, of it serial, of it the server's). A shape
        named `shape@n` runs with batches of n instead of --batch."""
        args = self.args
        name, _, size = name.partition("@")
        batch = int(size) if size else args.batch
        self._refill()
        ticks: list[dict[int, int]] = []
        if name in OWN_WRITERS:  # their CPU from the clock's start on (connecting and closing left out)
            elapsed, _, clients = drain_own_writers(
                None,
                self.url,
                workers,
                batch,
                flock=False,
                while_connected=lambda: ticks.append(self._ticks()),
                make_step=None if name == "worker" else functools.partial(_own_step, per_row=name == "ownmany"),
            )
            serial = 0.0
        else:
            store = taskq.open_store(self.url, upgrade=False)
            writer = HostWriter(store)
            writer.group_commit([])  # connected, and the statements' texts built, before the clock
            ticks.append(self._ticks())
            mine, total = _cpu_seconds()
            if name == "raw":
                elapsed = drain_raw(writer, batch)
            else:
                decode = name == "host"
                decoder = None if decode else functools.partial(tasks_from_rows, writer.columns)
                group_commit = functools.partial(writer.group_commit, decode=decode)
                elapsed = feed_workers(group_commit, decoder, workers, batch)
            mine_after, total_after = _cpu_seconds()
            ticks.append(self._ticks())
            writer.close()
            store.dispose()
            clients, serial = total_after - total, mine_after - mine
        server = sum(after - ticks[0].get(pid, 0) for pid, after in ticks[1].items()) * TICK_SECONDS
        if name not in OWN_WRITERS:
            serial += server  # the writer's backend: the only one
        done = self._completed()
        if done != args.tasks:
            raise RuntimeError(f"{name} x{workers}: {done} of {args.tasks} tasks completed")
        per_task = 1e6 / args.tasks
        return args.tasks / elapsed, (clients + server) * per_task, serial * per_task, server * per_task

    def _ticks(self) -> dict[int, int]:
        return self.clock.backend_ticks()

    def close(self) -> None:
        self.admin.dispose()
        self.clock.dispose()


def _processes(name: str, workers: int) -> int:
    """Processes that can be busy at once: own writers and their backends; or the workers, the host
    writer and its backend (which take turns)."""
    return 2 * workers if name.partition("@")[0] in OWN_WRITERS else workers + 1


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__.split("\n\n")[0], "worker,ownmany,ownraw,host,hostraw")
    options.set_defaults(runs=6)
    options.add_argument("--plan-cache-mode", default="", help="PostgreSQL's, for the drains' connections")
    args = options.parse_args(argv)
    problem = dbs.postgres_available()
    if problem:
        sys.exit(f"writer_design_pg: {problem}")
    set_work(args.work_us)
    with dbs.pg_schema("writer") as schema:
        drains = Drains(schema, args)
        try:
            runs = abba(configs_of(args), args.runs, drains.measure)
        finally:
            drains.close()
    print_table(runs, args, "raw", _processes)


if __name__ == "__main__":
    main()
