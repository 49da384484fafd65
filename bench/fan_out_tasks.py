"""Tasks for bench/fan_out.py: a parent that spawns N no-op children and a continuation that notes the time."""

from __future__ import annotations

import taskq
from taskq.clock import utc_now
from taskq.context import TaskContext


@taskq.task(name="bench.fan_out", then="bench.fan_in")
def fan_out(ctx: TaskContext, children: int) -> None:
    ctx.spawn_children(["bench.child"] * children)


@taskq.task(name="bench.child", max_retries=0)
def child() -> None:
    return None


@taskq.task(name="bench.fan_in")
def fan_in(parent_id: int) -> str:
    return utc_now().isoformat()
