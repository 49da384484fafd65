"""Tasks used by the pool tests. Each run is appended to $TASKQ_TEST_RUNLOG (one short line per write,
O_APPEND, so lines from many processes never interleave) so tests can count executions exactly."""

from __future__ import annotations

import os
import time
from typing import Any

import taskq


def record(kind: str, value: Any) -> None:
    path = os.environ.get("TASKQ_TEST_RUNLOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{kind} {value} {os.getpid()}\n")


@taskq.task(name="t.record")
def record_run(n: int) -> int:
    record("run", n)
    return n * 2


@taskq.task(name="t.slow")
def slow(n: int, seconds: float) -> int:
    record("start", n)
    time.sleep(seconds)
    record("done", n)
    return n


@taskq.task(name="t.cooperative")
def cooperative(ctx: Any, seconds: float) -> str:
    record("start", ctx.task_id)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.progress(100 * (1 - (deadline - time.monotonic()) / seconds), "working")
        time.sleep(0.02)
    return "finished"


@taskq.task(name="t.stubborn")
def stubborn(seconds: float) -> str:
    record("start", "stubborn")
    time.sleep(seconds)
    return "ignored the cancellation"


@taskq.task(name="t.timeout", timeout=1.0, max_retries=1)
def sleeps_past_its_timeout(seconds: float) -> str:
    record("start", "timeout")
    time.sleep(seconds)
    return "should have been killed"
