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


@taskq.task(name="t.flaky", retry_on=(ConnectionError,), retry_backoff=0.2, max_retries=3)
def flaky(ctx: Any, failures: int) -> int:
    """Fails its first `failures` attempts with an error its policy retries."""
    record("flaky", ctx.attempt)
    if ctx.attempt <= failures:
        raise ConnectionError(f"attempt {ctx.attempt}: service unreachable")
    return ctx.attempt


@taskq.task(name="t.wrong_error", retry_on=ConnectionError, max_retries=5)
def wrong_error() -> None:
    record("wrong_error", 1)
    raise ValueError("not a ConnectionError: retrying would not help")


@taskq.task(name="t.asks_retry", max_retries=3)
def asks_retry(ctx: Any, delay: float) -> int:
    record("asks_retry", ctx.attempt)
    if ctx.attempt == 1:
        raise taskq.Retry("rate limited", delay=delay)
    return ctx.attempt


@taskq.task(name="t.gives_up", max_retries=5)
def gives_up() -> None:
    record("gives_up", 1)
    raise taskq.Fail("the input can never work")


@taskq.task(name="t.jittered", retry_on=ConnectionError, retry_backoff=60, retry_jitter=True)
def jittered(n: int) -> None:
    raise ConnectionError(f"{n}: the shared service is down")
