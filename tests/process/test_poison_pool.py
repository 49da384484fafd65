"""Issue 19 points 3 and 4 with real pools: one row nobody can read back, or one result nested too deep to
store, is that task's failure, never its worker's death.

Before: every worker that claimed the poison row died decoding it (RecursionError), the claim rolled back,
each respawned worker died on the same row and nothing else ran; a result 10,000 deep exited its worker
("worker lost: exit code 1"). Worker deaths are counted from the pool's log (`worker_exited`, and one
`worker_started` per worker) and from the pids that ran the tasks (tests/support/poison_rows.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from poison_rows import POISON_DEPTH, insert_raw, nested_text
from poolkit import PoolProcess, runs, wait_for

import taskq
from taskq.json_limits import MAX_JSON_DEPTH
from taskq.model import TERMINAL_STATUSES, Status
from taskq.store import Store

WORKERS = 2


def poison_pool(directory: Path, url: str, *args: str) -> PoolProcess:
    return PoolProcess(directory, url, "--import", "poison_rows", *args)


def finished(store: Store, ids: list[int]) -> bool:
    return all(store.require(task_id).status in TERMINAL_STATUSES for task_id in ids)


def enqueue_pids(store: Store, numbers: range) -> list[int]:
    return [enqueued.id for enqueued in store.enqueue_many([{"name": "poison.pid", "args": [n]} for n in numbers])]


@pytest.fixture
def any_db(database_url: str) -> Iterator[tuple[str, Store]]:
    """SQLite and PostgreSQL: the claim's decoding runs through the driver on both."""
    opened = taskq.open_store(database_url)
    yield database_url, opened
    opened.dispose()


def test_a_poison_row_among_100_tasks_fails_alone_and_no_worker_dies(tmp_path: Path, any_db, pools) -> None:
    url, store = any_db
    ordinary = enqueue_pids(store, range(50))
    # In the middle of the queue, and first in claim order: every worker meets it at once.
    poison = insert_raw(store, name="poison.pid", args=nested_text(POISON_DEPTH), priority=10)
    ordinary += enqueue_pids(store, range(50, 100))
    pool = poison_pool(tmp_path, url, "--workers", str(WORKERS))
    pools.append(pool)
    wait_for(lambda: finished(store, [*ordinary, poison]), 60, what="the 100 tasks and the poison row finished")

    assert [store.require(task_id).status for task_id in ordinary] == [Status.COMPLETED] * 100
    failed = store.require(poison)
    assert failed.status is Status.FAILED and failed.attempts == 1
    assert failed.error == (
        f"task {poison} (poison.pid) cannot run: its args cannot be read back: args is nested {POISON_DEPTH}"
        f" levels deep (taskq keeps at most {MAX_JSON_DEPTH})"
    )
    log = pool.log()
    assert "worker_exited" not in log, log[-3000:]
    assert log.count("worker_started") == WORKERS, "no worker may have been respawned"
    assert f"task_unreadable task_id={poison}" in log
    assert sorted(int(n) for n in runs(pool.runlog, "ran")) == list(range(100))


@pytest.mark.parametrize(("task", "concurrency"), [("poison.deep_result", 1), ("poison.deep_result_async", 4)])
def test_a_result_too_deep_to_store_fails_its_task_and_the_same_worker_runs_the_next(
    tmp_path: Path, db, pools, task: str, concurrency: int
) -> None:
    url, store = db
    # Priorities fix the order on the single worker: a plain task after each deep result.
    order = [(task, 10_000), ("poison.pid", 1), (task, 960), ("poison.pid", 2), (task, MAX_JSON_DEPTH)]
    ids = [store.enqueue(name, [n], priority=50 - 10 * i).id for i, (name, n) in enumerate(order)]
    pool = poison_pool(tmp_path, url, "--workers", "1", "--concurrency", str(concurrency))
    pools.append(pool)
    wait_for(lambda: finished(store, ids), 60, what="the five tasks finished")

    for task_id, depth in ((ids[0], "too deep to encode"), (ids[2], "nested 960 levels deep")):
        row = store.require(task_id)
        assert row.status is Status.FAILED and row.attempts == 1, (row.status, row.error)
        assert row.error is not None and row.error.startswith("task returned a value that cannot be stored: result")
        assert depth in row.error and f"taskq keeps at most {MAX_JSON_DEPTH}" in row.error
    assert [store.require(i).status for i in ids[1::2]] == [Status.COMPLETED] * 2
    within = store.require(ids[4])
    assert within.status is Status.COMPLETED and str(within.result).count("[") == MAX_JSON_DEPTH
    pids = {line.split()[2] for line in pool.runlog.read_text().splitlines()}
    assert len(pids) == 1, f"one worker should have run all five: {pids}"
    log = pool.log()
    assert "worker_exited" not in log and log.count("worker_started") == 1, log[-3000:]
