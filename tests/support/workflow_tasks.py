"""Tasks for the workflow tests, imported by the store tests and by real worker pools (`--import workflow_tasks`).

Continuations and steps append one `kind value` line per run to $TASKQ_TEST_RUNLOG (set by poolkit; O_APPEND
makes each short write atomic across processes), so a test counts how often each ran, whichever process ran it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import taskq
from taskq import TaskRequest
from taskq.context import TaskContext


def record(kind: str, value: object) -> None:
    path = os.environ.get("TASKQ_TEST_RUNLOG")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{kind} {value}\n".encode())
    finally:
        os.close(fd)


@taskq.task(name="wf.summary")
def summary(parent_id: int) -> int:
    record("summary", parent_id)
    return parent_id


@taskq.task(name="wf.other_summary")
def other_summary(parent_id: int) -> int:
    record("other_summary", parent_id)
    return parent_id


@taskq.task(name="wf.child", max_retries=0)
def child(index: int, sleep_ms: float = 0.0, fail: bool = False) -> int:
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    if fail:
        raise RuntimeError(f"child {index} fails on purpose")
    return index * index


@taskq.task(name="wf.fan_out", then="wf.summary")
def fan_out(ctx: TaskContext, children: list[dict[str, Any]]) -> None:
    """Spawns one wf.child per entry of `children` (its kwargs); wf.summary runs once they all finished."""
    ctx.spawn_children([("wf.child", [], spec) for spec in children])


@taskq.task(name="wf.fan_out_then")
def fan_out_then(ctx: TaskContext, count: int, then: str) -> None:
    """Like wf.fan_out, with the continuation chosen at spawn time."""
    ctx.spawn_children([("wf.child", [i]) for i in range(count)], then=then)


@taskq.task(name="wf.nested")
def nested(ctx: TaskContext, groups: int, per_group: int) -> None:
    ctx.spawn_children([("wf.fan_out", [[{"index": i} for i in range(per_group)]]) for _ in range(groups)])


@taskq.task(name="wf.step1", then="wf.step2")
def step1(items: int, sleep_ms: float = 0.0) -> dict[str, float]:
    record("step1", items)
    return {"items": items, "sleep_ms": sleep_ms}


@taskq.task(name="wf.step2", then="wf.step3")
def step2(ctx: TaskContext, step1_id: int) -> None:
    plan = ctx.store.require(step1_id).result
    ctx.spawn_children(
        [TaskRequest("wf.slow_child", [i, plan["sleep_ms"]], max_retries=5) for i in range(plan["items"])]
    )
    record("step2", ctx.task_id)


@taskq.task(name="wf.slow_child")
def slow_child(index: int, sleep_ms: float) -> int:
    """Records each attempt (children are at-least-once: a killed worker's child runs again)."""
    record("slow_child", index)
    time.sleep(sleep_ms / 1000)
    return index


@taskq.task(name="wf.step3")
def step3(step2_id: int) -> int:
    record("step3", step2_id)
    return step2_id
