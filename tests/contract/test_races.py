"""Concurrency through real processes: dedup and claim races, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
from typing import Any

import taskq
from taskq.store import Store

SPAWN = multiprocessing.get_context("spawn")


def _enqueue_same_key(url: str, key: str, times: int, barrier: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    barrier.wait()
    ids = {store.enqueue("taskq.echo", [1], dedup_key=key).id for _ in range(times)}
    results.put(sorted(ids))


def _claim_all(url: str, worker: str, barrier: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    barrier.wait()
    claimed: list[int] = []
    while (task := store.claim(worker)) is not None:
        claimed.append(task.id)
    results.put(claimed)


def _run(target: Any, processes: int, make_args: Any) -> list[Any]:
    barrier, results = SPAWN.Barrier(processes), SPAWN.Queue()
    children = [SPAWN.Process(target=target, args=(*make_args(i), barrier, results)) for i in range(processes)]
    for child in children:
        child.start()
    outputs = [results.get(timeout=240) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    return outputs


def test_dedup_race_8_processes_200_enqueues_make_one_active_task(store: Store, database_url: str) -> None:
    outputs = _run(_enqueue_same_key, 8, lambda i: (database_url, "the-key", 200))
    ids = {task_id for output in outputs for task_id in output}
    assert len(ids) == 1
    assert store.stats()["pending"] == 1
    (only,) = ids
    store.claim("w")
    store.complete(only, "done", worker_id="w")
    again = store.enqueue("taskq.echo", dedup_key="the-key")
    assert again.id != only and not again.deduplicated


def test_claim_race_4_processes_2000_tasks_each_claimed_once(store: Store, database_url: str) -> None:
    store.enqueue_many([{"name": "taskq.echo", "args": [i]} for i in range(2000)])
    outputs = _run(_claim_all, 4, lambda i: (database_url, f"worker-{i}"))
    claimed = [task_id for output in outputs for task_id in output]
    assert len(claimed) == 2000 and len(set(claimed)) == 2000
    # Proof that the claimers really raced; an even split is not promised (SQLite's lock is not fair).
    assert sum(1 for output in outputs if output) >= 2, "at least two claimers should have won tasks"
    assert store.stats()["running"] == 2000
