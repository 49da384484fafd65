"""The tasks the benchmark runs in taskq's workers: no-ops, a start-time stamp, progress and fan-out."""

from __future__ import annotations

import time
from typing import Any

import taskq


@taskq.task(max_retries=0)
def noop() -> None:
    return None


@taskq.task(max_retries=0)
def stamp() -> float:
    """Returns when it started running, so pickup latency = result - time of enqueue."""
    return time.time()


@taskq.task(max_retries=0)
def progress_heavy(ctx: Any, calls: int = 100) -> None:
    for step in range(1, calls + 1):
        ctx.progress(100.0 * step / calls)


@taskq.task(max_retries=0)
def fan_in(parent_id: int) -> float:
    """The continuation of fan_out: enqueued with the parent's id once every child has finished."""
    return time.time()


@taskq.task(max_retries=0, then=fan_in)
def fan_out(ctx: Any, children: int) -> None:
    ctx.spawn_children([taskq.TaskRequest("bench.tasks.noop") for _ in range(children)])
