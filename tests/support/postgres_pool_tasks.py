"""Fan-out tasks for tests/process/test_postgres_pool.py, imported by its pools (`--import postgres_pool_tasks`);
each run is recorded in the pool's run log like the tasks of pool_tasks.py."""

from __future__ import annotations

import time
from typing import Any

from pool_tasks import record

import taskq


@taskq.task(name="pgtest.fan_out")
def fan_out(ctx: Any, children: int, seconds: float) -> None:
    record("parent", ctx.task_id)
    ctx.spawn_children([("pgtest.child", [number, seconds]) for number in range(children)], then="pgtest.gather")


@taskq.task(name="pgtest.child")
def child(number: int, seconds: float) -> int:
    time.sleep(seconds)
    record("child", number)
    return number


@taskq.task(name="pgtest.gather")
def gather(parent_id: int) -> int:
    record("gather", parent_id)
    return parent_id
