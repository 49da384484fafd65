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


def test_issue_21_limits_and_one_batch_figures_are_positive(tmp_path: Path) -> None:
    path, url = dbs.sqlite_taskq_db(tmp_path, "group.db")
    assert ceilings.sqlite_group_commit(path, 70, batch=8) > 0  # 70: the last batch is a partial one
    path, url = dbs.sqlite_taskq_db(tmp_path, "many.db")
    assert ceilings.sqlite_insert_one_batch(path, 50) > 0
    assert taskq_store.enqueue_many_once(url, 50) > 0


def test_pool_start_to_first_task_is_measured_from_the_rows_own_clock(tmp_path: Path) -> None:
    from bench.peers.taskq_peer import TaskqPeer
    from bench.startup import first_task_ms

    peer = TaskqPeer("sqlite")
    peer.setup(tmp_path)
    try:
        assert 0 < first_task_ms(peer, tmp_path) < 120_000
    finally:
        peer.teardown()


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


def test_targets_table_judges_medians_and_names_what_was_not_measured() -> None:
    from bench.targets import ISSUE_11, targets_table

    results = Results()
    results.meta["sizes"] = {"drain": 2_000}
    for taskq_rate, huey_rate in ((9_000.0, 4_000.0), (8_000.0, 4_000.0), (10_000.0, 4_000.0)):
        results.add("pool.drain_2", "taskq drain", "tasks/s", taskq_rate)
        results.add("peer.huey.drain_2", "Huey drain", "tasks/s", huey_rate)
        results.add("pool.pss_total", "PSS", "MB", 120.0)
    results.ratio("compare.drain_vs_huey", "taskq / Huey", "pool.drain_2", "peer.huey.drain_2")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in targets_table(results).splitlines()[2:]}
    assert len(rows) == len(ISSUE_11)
    drain = next(line for what, line in rows.items() if what.startswith("drain 10,000"))
    assert "2.25x (2.00-2.50, n=3): 9,000/s vs 4,000/s" in drain
    assert drain.endswith("| met (at drain=2,000) |")
    pss = next(line for what, line in rows.items() if "PSS" in what)
    assert pss.endswith("| **not met** |")
    enqueue = next(line for what, line in rows.items() if what.startswith("single enqueue"))
    assert "not measured: its group was not run" in enqueue


def test_issue_21_targets_table_has_a_row_per_target() -> None:
    from bench.targets import ISSUE_21, targets_table

    results = Results()
    for taskq_rate, raw_rate in ((9_000.0, 30_000.0), (8_000.0, 32_000.0), (10_000.0, 31_000.0)):
        results.add("pool.drain_2", "taskq drain", "tasks/s", taskq_rate)
        results.add("sqlite.raw.group_commit", "limit", "tasks/s", raw_rate)
        results.add("pool.first_task_ms", "first task", "ms", 250.0)
    results.ratio("pool.ratio.drain_vs_group_commit", "taskq / limit", "pool.drain_2", "sqlite.raw.group_commit")
    lines = targets_table(results, ISSUE_21).splitlines()[2:]
    assert len(lines) == len(ISSUE_21)
    assert any("first task" in line and line.endswith("| met |") for line in lines)
    assert any("(the limit)" in line and "0.30x" in line and line.endswith("| - |") for line in lines)
    procrastinate = next(line for line in lines if "procrastinate" in line)
    assert procrastinate.endswith("| not measured: its group was not run |")


def test_issue_21_judges_the_postgres_drain_against_4x_procrastinate() -> None:
    from bench.targets import ISSUE_21, targets_table

    results = Results()
    for taskq_rate, peer_rate in ((1_600.0, 400.0), (1_700.0, 400.0), (1_500.0, 400.0)):  # 4.0x, 4.25x, 3.75x
        results.add("peer.taskq_pg.drain_2", "taskq/pg drain", "tasks/s", taskq_rate)
        results.add("peer.procrastinate.drain_2", "procrastinate drain", "tasks/s", peer_rate)
    results.ratio("compare.pg_drain_vs_procrastinate", "ratio", "peer.taskq_pg.drain_2", "peer.procrastinate.drain_2")
    line = next(line for line in targets_table(results, ISSUE_21).splitlines() if "procrastinate" in line)
    assert "4.00x (3.75-4.25, n=3): 1,600/s vs 400/s" in line and line.endswith("| met |")


def test_calibrated_cpu_task_is_about_the_asked_length() -> None:
    import time

    from bench.tasks import burn, calibrate_burn

    iterations = calibrate_burn(milliseconds=2.0, probe=50_000, tries=3)
    started = time.process_time()
    burn(iterations * 10)
    assert 0.005 < time.process_time() - started < 0.08  # ~20 ms of CPU, with room for a noisy machine


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


def test_scaling_curve_prints_its_tables_and_draws_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib: pip install -r bench/requirements.txt")
    from bench import scaling

    png = tmp_path / "curve.png"
    arguments = ["--only", "sqlite", "--kinds", "noop,sleep", "--workers", "1,2", "--noops", "20", "--sleeps", "10"]
    assert scaling.main([*arguments, "--finished-rows", "100", "--png", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "| sqlite | noop |" in printed and "| sqlite | sleep |" in printed
    assert "| sqlite | 100 |" in printed  # claim latency at the filled size
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drain_profile_sorts_worker_samples_into_its_buckets(capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    if shutil.which("py-spy") is None:
        pytest.skip("py-spy is not installed: pip install -r bench/requirements.txt")
    from bench import profile_drain

    assert profile_drain.main(["--tasks", "3000", "--workers", "1", "--seconds", "1"]) == 0
    printed = capsys.readouterr().out
    assert "| where a worker's wall time goes | share |" in printed
    assert "COMMIT" in printed or "other SQL" in printed  # the drain was sampled while it wrote
    assert set(profile_drain.leaf_buckets().values()) >= {"COMMIT", "BEGIN IMMEDIATE"}


def test_writer_design_drains_every_task_in_every_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import writer_design

    # _measure raises unless every task ended completed, so each shape's drain is checked exactly.
    writer_design.main(["--tasks", "300", "--runs", "1", "--workers", "1,2"])
    table_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0:2] for line in table_lines[1:]] == [
        ["| raw", "1"],
        *[[f"| {shape}", n] for shape in ("worker", "host", "hostraw", "flock") for n in ("1", "2")],
    ]


def test_writer_design_pg_drains_every_task_and_counts_the_server(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = dbs.postgres_available()
    if reason:
        pytest.skip(reason)
    from bench import writer_design_pg

    # Drains.measure raises unless every task ended completed, so each shape's drain is checked exactly.
    writer_design_pg.main(["--tasks", "300", "--runs", "1", "--workers", "1,2"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    shapes = ("worker", "ownmany", "ownraw", "host", "hostraw")
    assert [row[0:2] for row in rows] == [["| raw", "1"], *[[f"| {shape}", n] for shape in shapes for n in ("1", "2")]]
    cpu, server = ([float(row[column].replace(",", "")) for row in rows] for column in (5, 6))
    assert all(0 <= part < whole for part, whole in zip(server, cpu, strict=True))
    assert sum(server) > 0  # the backends were found (their CPU is read in clock ticks of 10 ms)
