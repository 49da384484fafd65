"""The benchmark's ceiling and store functions still run (tiny sizes): the suite cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskq
from bench import ceilings, dbs, lookups, taskq_store
from bench.results import Results, table
from taskq.clock import utc_now
from taskq.maintenance import StatsRollup
from taskq.model import Status, TaskFilter
from taskq.store import Store


def test_sqlite_ceilings_and_store_rates_are_positive(tmp_path: Path) -> None:
    path, url = dbs.sqlite_taskq_db(tmp_path)
    assert ceilings.sqlite_insert_single(path, 20) > 0
    assert ceilings.sqlite_insert_batches(path, 2, batch_size=10) > 0
    assert taskq_store.enqueue_single(url, 20) > 0
    assert taskq_store.enqueue_batches(url, 2, batch_size=10) > 0

    path, url = dbs.sqlite_taskq_db(tmp_path, "claims.db")
    assert "ix_tasks_claim" in ceilings.sqlite_claim_plan(path)
    assert ceilings.sqlite_claim_complete(path, 20) > 0
    assert taskq_store.claim_complete(url, 20) > 0


def test_postgres_ceilings_run_in_a_schema_that_is_dropped(postgres_url: str) -> None:
    reason = dbs.postgres_available()
    if reason:
        pytest.skip(reason)
    with dbs.pg_schema() as schema:
        assert ceilings.pg_insert_single(schema, 10) > 0
        assert ceilings.pg_insert_batches(schema, 2, batch_size=10) > 0
    with dbs.pg_schema() as schema:
        assert ceilings.pg_claim_complete(schema, 10) > 0
    import psycopg

    with psycopg.connect(dbs.plain_conninfo()) as connection:
        left = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema.name,)).fetchone()
    assert left is None


def test_ratios_pair_samples_and_table_marks_skips() -> None:
    results = Results()
    for taskq_rate, raw_rate in ((10.0, 40.0), (30.0, 60.0), (5.0, 50.0)):
        results.add("taskq", "taskq", "tasks/s", taskq_rate)
        results.add("raw", "raw", "tasks/s", raw_rate)
    results.ratio("ratio", "taskq / raw", "taskq", "raw")
    results.skip("peer", "some peer", "not installed")
    assert results.figures["ratio"].samples == [0.25, 0.5, 0.1]
    assert results.figures["ratio"].median == 0.25
    text = table(results, printer=lambda _line: None)
    assert "SKIPPED: not installed" in text


def test_lookups_bench_rows_read_back_as_taskq_rows(database_url: str) -> None:
    """bench.lookups writes its million rows with SQL of its own: they must be rows taskq reads, counts
    and rolls up like its own, or its figures measure something else."""
    store: Store = taskq.open_store(database_url)
    sqlite = store.engine.dialect.name == "sqlite"
    try:
        (lookups.fill_sqlite if sqlite else lookups.fill_postgres)(store, 1_000)
        assert store.stats() == {**store.stats(), "completed": 900, "failed": 70, "cancelled": 30}
        assert StatsRollup(store).run_once(utc_now())["rolled_up"] == 1_000
        assert store.stats()["completed"] == 900
        found = store.latest_by_dedup_key("job:500")
        assert found is not None and found.args == [500] and found.finished_at is not None
        [failed] = store.page(TaskFilter(status=Status.FAILED, error_contains="row 991"), limit=5).tasks
        assert failed.args == [991]
        if sqlite:
            with store.engine.connect() as conn:
                plan = conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE dedup_key = 'job:500' AND dedup_key IS NOT NULL"
                    " ORDER BY id DESC LIMIT 1"
                ).all()
            assert "ix_tasks_dedup_key" in " ".join(str(row[-1]) for row in plan)
    finally:
        store.dispose()
