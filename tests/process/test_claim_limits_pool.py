"""Concurrency caps through real processes: a 4-worker pool never runs more than max_concurrency=2 of a task
at once, on SQLite and on PostgreSQL, while uncapped tasks behind the capped ones keep the other workers busy.
The tasks write their start and end times to the pool's run log (O_APPEND lines); overlaps are counted
from those times after the drain, so the check samples every moment, not a poll."""

from __future__ import annotations

from pathlib import Path

from poolkit import PoolProcess, runs, wait_for

import taskq
from taskq.model import Status

CAPPED_TASKS = 10
FREE_TASKS = 6
TASK_SECONDS = 0.2


def intervals(runlog: Path, kind: str) -> dict[str, tuple[float, float]]:
    def times(what: str) -> dict[str, float]:
        return {n: float(at) for n, at in (value.split("@") for value in runs(runlog, f"{kind}_{what}"))}

    starts, ends = times("start"), times("end")
    return {n: (starts[n], ends[n]) for n in starts}


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans open at one instant (an end at the same instant as a start closes first)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_four_workers_never_run_more_than_two_capped_tasks_at_once(tmp_path: Path, database_url: str, pools) -> None:  # type: ignore[no-untyped-def]
    store = taskq.open_store(database_url)
    try:
        # The capped tasks have the higher priority (@task(priority=1)): they sit at the head of the queue,
        # so the uncapped ones run only if a capped name at capacity is passed over instead of blocking.
        ids = [
            e.id
            for e in store.enqueue_many([{"name": "cap.two", "args": [n, TASK_SECONDS]} for n in range(CAPPED_TASKS)])
        ]
        ids += [
            e.id
            for e in store.enqueue_many([{"name": "cap.free", "args": [n, TASK_SECONDS]} for n in range(FREE_TASKS)])
        ]
        pool = PoolProcess(tmp_path, database_url, "--workers", "4", "--import", "cap_tasks")
        pools.append(pool)
        wait_for(
            lambda: all(store.require(i).status is Status.COMPLETED for i in ids), 120, what="every task completed"
        )
    finally:
        store.dispose()
    capped = intervals(pool.runlog, "cap")
    free = intervals(pool.runlog, "free")
    assert len(capped) == CAPPED_TASKS and len(free) == FREE_TASKS
    assert most_at_once(list(capped.values())) == 2
    # The other two workers ran uncapped tasks meanwhile: some uncapped run overlapped a capped one.
    assert any(s < e2 and s2 < e for s, e in free.values() for s2, e2 in capped.values())


def test_a_queue_capped_in_settings_runs_one_task_at_a_time(tmp_path: Path, database_url: str, pools) -> None:  # type: ignore[no-untyped-def]
    settings = tmp_path / "settings.yaml"
    settings.write_text("queues:\n  narrow: {max_concurrency: 1}\n  default: {}\n")
    store = taskq.open_store(database_url)
    try:
        narrow = [{"name": "cap.free", "args": [100 + n, TASK_SECONDS], "queue": "narrow"} for n in range(5)]
        wide = [{"name": "cap.free", "args": [n, TASK_SECONDS]} for n in range(6)]
        ids = [e.id for e in store.enqueue_many([*narrow, *wide])]
        pool = PoolProcess(tmp_path, database_url, "--workers", "4", "--import", "cap_tasks", settings=settings)
        pools.append(pool)
        wait_for(
            lambda: all(store.require(i).status is Status.COMPLETED for i in ids), 120, what="every task completed"
        )
    finally:
        store.dispose()
    runs_by_n = intervals(pool.runlog, "free")
    assert most_at_once([span for n, span in runs_by_n.items() if int(n) >= 100]) == 1
    assert most_at_once([span for n, span in runs_by_n.items() if int(n) < 100]) >= 2  # default: uncapped
