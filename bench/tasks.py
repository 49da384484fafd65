"""The tasks the benchmark runs in taskq's workers: no-ops, a start-time stamp, progress, fan-out, CPU work."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import taskq


@taskq.task(max_retries=0)
def noop() -> None:
    return None


@taskq.task(max_retries=0)
async def nap(seconds: float) -> None:
    """I/O-bound work as a web app has it (an HTTP call, an e-mail): the worker's loop runs many at once."""
    await asyncio.sleep(seconds)


@taskq.task(max_retries=0)
def snooze(milliseconds: float) -> None:
    """Blocking I/O-like work (a synchronous HTTP call): the worker process waits, its CPU is free."""
    time.sleep(milliseconds / 1000.0)


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


CPU_TASK_MS = 5.0  # the work of one CPU-bound task, calibrated once per run by `calibrate_burn`


def burn(iterations: int) -> int:
    """Pure-Python work that holds the GIL all along: no I/O, no C call long enough to release it."""
    total = 0
    for _ in range(iterations):
        total = (total * 31 + 7) % 1_000_003  # small ints only: each iteration costs the same
    return total


def calibrate_burn(milliseconds: float = CPU_TASK_MS, probe: int = 500_000, tries: int = 5) -> int:
    """Iterations of `burn` that take `milliseconds` of CPU on this machine. Timed in process CPU time
    (not wall time, which a busy neighbour stretches) and the median of a few probes."""
    seconds = statistics.median(_cpu_seconds(burn, probe) for _ in range(tries))
    return max(1, round(probe * milliseconds / 1000.0 / seconds))


def _cpu_seconds(function: Callable[[int], object], argument: int) -> float:
    started = time.process_time()
    function(argument)
    return time.process_time() - started


@taskq.task(max_retries=0)
def cpu_bound(iterations: int) -> None:
    burn(iterations)
