"""Tasks for tests/test_postgres_pool.py, imported by the pools it starts (`--import postgres_pool_tasks`
with tests/ on PYTHONPATH). Each run appends one line to $TASKQ_TEST_RUN_LOG with O_APPEND, so the test
counts executions across processes and hosts without trusting the tasks table."""

from __future__ import annotations

import os
import time
from typing import Any

import taskq


def record(kind: str, key: Any) -> None:
    # One write() of a short line with O_APPEND is atomic: lines from many processes never interleave.
    line = f"{kind} {key} {os.getppid()}\n".encode()
    descriptor = os.open(os.environ["TASKQ_TEST_RUN_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


@taskq.task(name="pgtest.noop")
def noop(number: int) -> int:
    record("noop", number)
    return number


@taskq.task(name="pgtest.nap")
def nap(number: int, seconds: float) -> int:
    time.sleep(seconds)
    record("nap", number)
    return number


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
