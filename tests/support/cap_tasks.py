"""Tasks for tests/process/test_claim_limits_pool.py (`--import cap_tasks`), kept out of pool_tasks so that the other
pool tests' workers stay uncapped. Each run records its start and end (wall clock) in the pool's run log."""

from __future__ import annotations

import time

from pool_tasks import record

import taskq


@taskq.task(name="cap.two", max_concurrency=2, priority=1)
def capped(n: int, seconds: float) -> int:
    record("cap_start", f"{n}@{time.time():.6f}")
    time.sleep(seconds)
    record("cap_end", f"{n}@{time.time():.6f}")
    return n


@taskq.task(name="cap.free")
def free(n: int, seconds: float) -> int:
    record("free_start", f"{n}@{time.time():.6f}")
    time.sleep(seconds)
    record("free_end", f"{n}@{time.time():.6f}")
    return n
