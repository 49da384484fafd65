"""taskq's own hot paths through the public API, in this process: enqueue, enqueue_many, claim + complete."""

from __future__ import annotations

import time

import taskq
from bench.ceilings import BATCH_SIZE

NOOP = "bench.tasks.noop"


def enqueue_single(url: str, count: int) -> float:
    """Tasks/s of store.enqueue, one transaction each."""
    store = taskq.open_store(url)
    store.enqueue(NOOP)  # connection pool warm, statements compiled, as in a running app
    started = time.perf_counter()
    for _ in range(count):
        store.enqueue(NOOP)
    elapsed = time.perf_counter() - started
    store.dispose()
    return count / elapsed


def enqueue_batches(url: str, batches: int, batch_size: int = BATCH_SIZE) -> float:
    """Tasks/s of store.enqueue_many in batches."""
    store = taskq.open_store(url)
    store.enqueue(NOOP)
    requests = [taskq.TaskRequest(NOOP) for _ in range(batch_size)]
    started = time.perf_counter()
    for _ in range(batches):
        store.enqueue_many(requests)
    elapsed = time.perf_counter() - started
    store.dispose()
    return batches * batch_size / elapsed


def claim_complete(url: str, count: int) -> float:
    """Cycles/s of store.claim then store.complete in one process: the store's share of a worker's loop.
    The queue gets `count` new pending tasks first; rows already in the table stay."""
    store = taskq.open_store(url)
    for start in range(0, count, BATCH_SIZE):
        store.enqueue_many([taskq.TaskRequest(NOOP) for _ in range(min(BATCH_SIZE, count - start))])
    worker = "bench-worker"
    done = 0
    started = time.perf_counter()
    while (task := store.claim(worker)) is not None:
        store.complete(task.id, None, worker_id=worker, attempt=task.attempts)
        done += 1
    elapsed = time.perf_counter() - started
    store.dispose()
    if done != count:
        raise RuntimeError(f"claimed {done} of {count} tasks")
    return done / elapsed


def enqueue_many_once(url: str, count: int) -> float:
    """Tasks/s of one store.enqueue_many call of `count` requests (the requests are built in the timing,
    as the raw figure builds its rows)."""
    store = taskq.open_store(url)
    store.enqueue(NOOP)
    started = time.perf_counter()
    store.enqueue_many([taskq.TaskRequest(NOOP) for _ in range(count)])
    elapsed = time.perf_counter() - started
    store.dispose()
    return count / elapsed
