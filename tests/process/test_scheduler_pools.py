"""Periodic schedules through two real pools on one SQLite database, settings edited live: each slot runs
once, the cadence follows an edit without a restart, a removed entry stops. (The store's side, with time
as an input: tests/contract/test_scheduler.py.)"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from databases import sqlite_url
from poolkit import PoolProcess, wait_for

import taskq
from taskq.model import Status, Task
from taskq.store import Store


def schedule_rows(store: Store, name: str) -> list[Task]:
    """Every task row a schedule has made, oldest first."""
    return sorted((t for t in store.list(limit=10_000) if t.dedup_key == f"schedule:{name}"), key=lambda t: t.id)


def _write_settings(path: Path, schedule: dict[str, Any]) -> None:
    """Write then rename, as editors do: the pool never reads a half-written file."""
    staging = path.with_suffix(".tmp")
    staging.write_text(yaml.safe_dump({"log_level": "INFO", "schedule": schedule}))
    staging.replace(path)


def _finished_runs(store: Store, name: str, after: datetime | None = None) -> list[Task]:
    return [
        task
        for task in schedule_rows(store, name)
        if task.status == Status.COMPLETED and (after is None or task.run_after > after)
    ]


def _assert_no_double_runs(runs: list[Task]) -> None:
    run_afters = [task.run_after for task in runs]
    assert len(set(run_afters)) == len(run_afters), run_afters
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at  # never two of a schedule's runs at once


def test_every_second_with_two_pools_then_edited_live_then_removed(tmp_path: Path) -> None:
    database = sqlite_url(tmp_path)
    settings = tmp_path / "settings.yaml"
    _write_settings(settings, {"tick": {"task": "taskq.echo", "every": "1s", "args": ["tick"]}})
    store = taskq.open_store(database)
    pools = [PoolProcess(tmp_path, database, "--workers", "1", settings=settings) for _ in range(2)]
    try:
        # every: 1s -> about one run a second, each slot run once, on the previous slot's grid
        runs = wait_for(lambda: (r := _finished_runs(store, "tick")) and len(r) >= 5 and r, what="5 runs of tick")
        _assert_no_double_runs(runs)
        assert all(b.run_after - a.run_after == timedelta(seconds=1) for a, b in itertools.pairwise(runs[-3:]))
        started = [task.started_at for task in runs if task.started_at is not None]
        assert timedelta(seconds=0.7) < (started[-1] - started[0]) / (len(started) - 1) < timedelta(seconds=1.6)

        # edited live to every: 2s: the cadence follows without a restart
        _write_settings(settings, {"tick": {"task": "taskq.echo", "every": "2s", "args": ["tick"]}})
        edited = schedule_rows(store, "tick")[-1].run_after  # rows after this one were made under the edit

        def runs_two_seconds_apart() -> list[Task] | None:
            tail = _finished_runs(store, "tick", after=edited)[-3:]
            gaps = [b.run_after - a.run_after for a, b in itertools.pairwise(tail)]
            return tail if len(gaps) == 2 and all(gap == timedelta(seconds=2) for gap in gaps) else None

        wait_for(runs_two_seconds_apart, what="runs two seconds apart")
        _assert_no_double_runs(_finished_runs(store, "tick"))

        # removed live (and another entry added): tick stops while the other one keeps running
        _write_settings(settings, {"marker": {"task": "taskq.echo", "every": "1s", "args": ["marker"]}})
        wait_for(
            lambda: (
                _finished_runs(store, "marker") and not any(task.is_active for task in schedule_rows(store, "tick"))
            ),
            what="marker running and no tick row active",
        )
        tick_rows = schedule_rows(store, "tick")
        marker_runs = len(_finished_runs(store, "marker"))
        wait_for(lambda: len(_finished_runs(store, "marker")) >= marker_runs + 2, what="two more marker runs")
        assert schedule_rows(store, "tick") == tick_rows
        _assert_no_double_runs(_finished_runs(store, "tick"))
        _assert_no_double_runs(_finished_runs(store, "marker"))
        assert all(pool.process.poll() is None for pool in pools)
    finally:
        for pool in pools:
            pool.stop()
        store.dispose()
    output = "\n".join(pool.log() for pool in pools)
    assert [pool.process.returncode for pool in pools] == [0, 0], output
    assert "schedule_invalid" not in output
