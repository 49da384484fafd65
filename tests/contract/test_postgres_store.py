"""The store on PostgreSQL only, where the dialect itself is the point: LISTEN wake-up and its reconnect, the
claim's SKIP LOCKED and index walk, the last-child race between real processes (READ COMMITTED), and NUL
bytes in arguments. Each test has a private schema (support/databases.py). The two-pool tests:
tests/process/test_postgres_pool.py."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from typing import Any

import pytest
from databases import POSTGRES_SKIP_REASON, POSTGRES_URL, PrivateSchema
from poolkit import wait_for
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

import taskq
from taskq import wakeup
from taskq.model import InvalidTaskArguments, Status

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason=POSTGRES_SKIP_REASON)

SPAWN = multiprocessing.get_context("spawn")


def test_listen_hears_a_committed_enqueue_and_reconnects_after_losing_its_connection() -> None:
    tag = f"taskq-listen-{uuid.uuid4().hex[:8]}"
    schema = PrivateSchema()
    url = make_url(schema.url).update_query_dict({"application_name": tag}).render_as_string(hide_password=False)
    store = taskq.open_store(url)
    signal_source = wakeup.wake_signal(store.engine)
    try:
        signal_source.wait(0.01)  # connects and LISTENs
        listeners = "FROM pg_stat_activity WHERE application_name = :tag AND query LIKE 'LISTEN%'"
        store.enqueue("taskq.echo")
        assert signal_source.wait(5.0), "a committed enqueue should wake the listener"
        with schema.admin.begin() as connection:
            terminated = connection.execute(text(f"SELECT count(pg_terminate_backend(pid)) {listeners}"), {"tag": tag})
            assert terminated.scalar_one() == 1
        assert signal_source.wait(5.0), "a lost connection may have hidden notifications: report a wake-up"
        # The channel is shared by every schema on the server: a NOTIFY from other tests running at the same
        # time may answer either wait above before the loss is seen, so keep waiting as a worker does.
        def listening_again() -> bool:
            signal_source.wait(0.05)
            with schema.admin.connect() as connection:
                return connection.execute(text(f"SELECT count(*) {listeners}"), {"tag": tag}).scalar_one() == 1

        wait_for(listening_again, 5, what="the listener to reconnect")
        store.enqueue("taskq.echo")
        assert signal_source.wait(5.0), "the reconnected listener should hear new enqueues"
    finally:
        signal_source.close()
        store.dispose()
        schema.drop()


def test_claim_skips_a_locked_row_instead_of_waiting_for_it() -> None:
    """lock_timeout turns any wait on a row lock into an error: without SKIP LOCKED this claim would fail."""
    schema = PrivateSchema(lock_timeout="1000")
    store = taskq.open_store(schema.url)
    try:
        first = store.enqueue("taskq.echo", [1], priority=9).id
        second = store.enqueue("taskq.echo", [2]).id
        holder = create_engine(schema.url)
        with holder.connect() as connection:
            connection.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": first})
            started = time.monotonic()
            claimed = store.claim("claimer")
            waited = time.monotonic() - started
            connection.rollback()
        holder.dispose()
        assert claimed is not None and claimed.id == second
        assert waited < 0.5
        assert store.claim("claimer").id == first  # type: ignore[union-attr]
    finally:
        store.dispose()
        schema.drop()


def test_claim_walks_the_claim_index_without_sorting() -> None:
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FOR UPDATE SKIP LOCKED" in statement:
            statements.append((statement, parameters))

    try:
        store.enqueue_many([{"name": "taskq.echo", "args": [n], "queue": ("a", "b")[n % 4 == 0]} for n in range(5000)])
        with store.engine.connect() as connection:
            connection.execute(text("ANALYZE tasks"))
            connection.commit()
        event.listen(store.engine, "before_cursor_execute", capture)
        store.claim_batch("w", limit=1)
        store.claim_batch("w", ["b"], limit=8)
        event.remove(store.engine, "before_cursor_execute", capture)
        assert len(statements) == 2
        for statement, parameters in statements:
            with store.engine.connect() as connection:
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                cursor.execute("EXPLAIN " + statement, parameters)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                connection.rollback()
            assert "ix_tasks_claim" in plan and "Sort" not in plan and "LockRows" in plan, plan
    finally:
        store.dispose()
        schema.drop()


def _finish_children(url: str, worker: str, barrier: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    barrier.wait()
    finished = 0
    while (task := store.claim(worker)) is not None:
        if task.name == "pgtest.child":
            store.complete(task.id, task.args[0], worker_id=worker, attempt=task.attempts)
            finished += 1
    store.dispose()
    results.put(finished)


def test_last_child_completes_the_parent_exactly_once_under_concurrent_finishes() -> None:
    """Four processes finish 300 children of one parent at once (READ COMMITTED): the parent's row lock
    makes exactly one of them see the last count, so the continuation is enqueued once."""
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    try:
        parent = store.enqueue("pgtest.fan_out").id
        assert store.claim("spawner") is not None
        children = [taskq.TaskRequest("pgtest.child", [n, 0]) for n in range(300)]
        assert store.wait_for_children(parent, children, continuation="pgtest.gather", worker_id="spawner")
        processes, barrier, results = 4, SPAWN.Barrier(4), SPAWN.Queue()
        finishers = [
            SPAWN.Process(target=_finish_children, args=(schema.url, f"finisher-{n}", barrier, results))
            for n in range(processes)
        ]
        for finisher in finishers:
            finisher.start()
        finished = [results.get(timeout=120) for _ in finishers]
        for finisher in finishers:
            finisher.join(timeout=30)
            assert finisher.exitcode == 0
        assert sum(finished) == 300 and sum(1 for count in finished if count) > 1
        done = store.require(parent)
        assert done.status is Status.COMPLETED
        assert (done.children_total, done.children_completed) == (300, 300)
        assert [task.args for task in store.list(name="pgtest.gather")] == [[parent]]
    finally:
        store.dispose()
        schema.drop()


def test_postgres_nul_in_arguments_round_trips_or_is_refused_at_enqueue(postgres_url) -> None:
    store = taskq.open_store(postgres_url)
    try:
        try:
            task_id = store.enqueue("t", ["a\u0000b"]).id
        except InvalidTaskArguments as error:
            assert "\\u0000" in str(error) or "NUL" in str(error), f"the error should name the NUL: {error}"
            return
        assert store.require(task_id).args == ["a\u0000b"]
    finally:
        store.dispose()
