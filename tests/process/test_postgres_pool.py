"""PostgreSQL scale-out through real parts: two pools as separate process trees (standing in for two hosts)
on one schema, a fan-out whose children finish on both, a server restart under a draining pool, LISTEN
wake-up, and the claim and last-child races at the store level. Pools come from tests/support/poolkit.py; each
pool records its task runs in its own run log, so runs are counted outside the tasks table."""

from __future__ import annotations

import collections
import multiprocessing
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from poolkit import PoolProcess, runs, wait_for
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

import taskq
from taskq import wakeup
from taskq.model import Status
from taskq.store import Store

POSTGRES_URL = os.environ.get("TASKQ_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="TASKQ_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
)

SPAWN = multiprocessing.get_context("spawn")


class PrivateSchema:
    """A schema of our own on the test server; connections through `url` see only it."""

    def __init__(self, **settings: str) -> None:
        assert POSTGRES_URL
        self.name = f"taskq_test_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(POSTGRES_URL, pool_pre_ping=True)
        with self.admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.name}"'))
        options = " ".join([f"-csearch_path={self.name}", *(f"-c{key}={value}" for key, value in settings.items())])
        self.url = make_url(POSTGRES_URL).update_query_dict({"options": options}).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self.admin.dispose()


def start_pool(directory: Path, url: str, workers: int, lease: str = "30s") -> PoolProcess:
    """A pool in a directory of its own (its run log is directory/runs.log)."""
    directory.mkdir()
    settings = directory / "settings.yaml"
    settings.write_text(f"lease: {lease}\nshutdown_grace: 10s\nretention: forever\n")
    return PoolProcess(directory, url, "--workers", str(workers), "--import", "postgres_pool_tasks", settings=settings)


def settled(store: Store) -> dict[str, int] | None:
    """The stats once no task is pending, running or waiting; None before."""
    stats = store.stats()
    active = stats["pending"] + stats["running"] + stats["waiting_for_children"]
    return None if active else stats


@pytest.fixture(scope="module")
def two_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[PoolProcess]]]:
    """Two pools of two workers each on one fresh schema, started once for the tests that share them."""
    directory = tmp_path_factory.mktemp("two_pools")
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    pools = [start_pool(directory / f"pool-{n}", schema.url, workers=2) for n in (1, 2)]
    try:
        for pool in pools:
            pool.wait_ready(2, timeout=30)
        yield store, pools
    finally:
        for pool in pools:
            pool.stop()
        store.dispose()
        schema.drop()
    for pool in pools:
        assert pool.process.returncode == 0, pool.log()[-3000:]


def test_two_pools_drain_5000_tasks_each_run_exactly_once(two_pools: tuple[Store, list[PoolProcess]]) -> None:
    store, pools = two_pools
    store.enqueue_many([{"name": "t.record", "args": [number]} for number in range(5000)])
    stats = wait_for(lambda: settled(store), 90, interval=0.25, what="5,000 tasks to drain")
    assert stats["completed"] == 5000 and stats["failed"] == 0, stats
    per_pool = [runs(pool.runlog, "run") for pool in pools]
    counts = collections.Counter(int(number) for ran in per_pool for number in ran)
    assert set(counts) == set(range(5000)), "some tasks never ran"
    assert [number for number, count in counts.items() if count > 1] == [], "tasks ran twice"
    assert all(per_pool), "both pools should have run tasks"


def test_fan_out_across_two_pools_runs_its_continuation_once(two_pools: tuple[Store, list[PoolProcess]]) -> None:
    store, pools = two_pools
    parent = store.enqueue("pgtest.fan_out", [300, 0.002]).id
    wait_for(lambda: settled(store), 60, interval=0.25, what="the fan-out and its continuation to finish")
    assert store.require(parent).status is Status.COMPLETED
    children = [runs(pool.runlog, "child") for pool in pools]
    assert all(children), "children should have finished on both pools"
    assert sorted(int(number) for ran in children for number in ran) == list(range(300))
    assert [int(key) for pool in pools for key in runs(pool.runlog, "gather")] == [parent]
    continuations = store.list(name="pgtest.gather")
    assert [(task.args, task.status) for task in continuations] == [([parent], Status.COMPLETED)]


def _restart_command() -> list[str] | None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    host = make_url(POSTGRES_URL or "").host
    if len(versions) != 1 or host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"]


def server_accepts_connections() -> bool:
    url = make_url(POSTGRES_URL or "")
    probe = ["pg_isready", "-q", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    return subprocess.run(probe, check=False).returncode == 0


def test_pool_survives_a_postgresql_restart_and_finishes_every_task(tmp_path: Path) -> None:
    restart = _restart_command()
    if restart is None:
        pytest.skip("restarting PostgreSQL needs root, pg_ctlcluster and a single local cluster")
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    pool = start_pool(tmp_path / "pool", schema.url, workers=2, lease="4s")
    total = 1500
    try:
        pool.wait_ready(2, timeout=30)
        store.enqueue_many([{"name": "t.slow", "args": [number, 0.004]} for number in range(total)])
        wait_for(lambda: store.stats()["completed"] >= 100, 30, what="the pool to be draining")
        assert store.stats()["completed"] < total - 500, "the pool drained too fast to be restarted mid-way"
        subprocess.run(restart, check=True, timeout=60, capture_output=True)
        wait_for(server_accepts_connections, 30, interval=0.2, what="pg_isready after the restart")
        stats = wait_for(lambda: settled(store), 45, interval=0.25, what="every task to reach a terminal state")
        assert pool.process.poll() is None, "the pool exited:\n" + pool.log()[-3000:]
    finally:
        pool.stop()
        store.dispose()
        schema.drop()
    assert stats["completed"] == total, stats
    assert {int(number) for number in runs(pool.runlog, "done")} == set(range(total))
    assert pool.process.returncode == 0, pool.log()[-3000:]
    log = pool.log()
    assert "listen_lost" in log, "the pool should have noticed the restart"
    crashes = [line for line in log.splitlines() if "worker_exited" in line and " ERROR " in line]
    assert crashes == [], "workers should ride out a restart, not die and be respawned"


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
        signal_source.wait(0.1)  # reconnects (a wake-up from another schema's tests is harmless)

        def listening_again() -> bool:
            with schema.admin.connect() as connection:
                return connection.execute(text(f"SELECT count(*) {listeners}"), {"tag": tag}).scalar_one() == 1

        wait_for(listening_again, 5, what="the listener to reconnect")
        store.enqueue("taskq.echo")
        assert signal_source.wait(5.0), "the reconnected listener should hear new enqueues"
    finally:
        signal_source.close()
        store.dispose()
        schema.drop()


# -- the store's races, between real processes -------------------------------------------------------


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
