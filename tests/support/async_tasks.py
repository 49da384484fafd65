"""Tasks for tests/process/test_async_tasks.py, imported by its pools (`--import async_tasks`). Each event is one
O_APPEND line `<kind> <value> <pid> <time.time()>` in $TASKQ_TEST_RUNLOG, so the tests count starts, returns and
overlaps outside the tasks table. A task that must wait for the test waits for a gate: a file the test creates next
to the run log (`open_gate`), polled every 10 ms, so no test orders events with fixed sleeps."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import taskq
from taskq.context import TaskContext, current


def stamp(kind: str, value: Any) -> None:
    fd = os.open(os.environ["TASKQ_TEST_RUNLOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{kind} {value} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def gate(name: str) -> Path:
    return Path(os.environ["TASKQ_TEST_RUNLOG"]).parent / f"gate-{name}"


def is_open(name: str) -> bool:
    """Gate `name` is open, or gate `all`: a test opens that when it ends, so that no task outlives it."""
    return gate(name).exists() or gate("all").exists()


async def until_open(name: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not is_open(name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate {name} never opened")
        await asyncio.sleep(0.01)


async def pause(seconds: float) -> None:
    """asyncio.sleep(seconds), cut short when the test ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not is_open("all"):
        await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


@taskq.task(name="a.sleep", max_retries=0)
async def sleep(n: int, seconds: float) -> int:
    stamp("start", n)
    await asyncio.sleep(seconds)
    stamp("done", n)
    return n


@taskq.task(name="a.sync_sleep", max_retries=0)
def sync_sleep(n: int, seconds: float) -> int:
    stamp("sync-start", n)
    time.sleep(seconds)
    stamp("sync-done", n)
    return n


async def _pause_stamped(n: int, seconds: float) -> None:
    """Stamps start, then done after `seconds`, or cancelled when the pause is cancelled (and re-raises)."""
    stamp("start", n)
    try:
        await pause(seconds)
    except asyncio.CancelledError:
        stamp("cancelled", n)
        raise
    stamp("done", n)


@taskq.task(name="a.cancellable", max_retries=0)
async def cancellable(n: int, seconds: float) -> str:
    await _pause_stamped(n, seconds)
    return "finished"


@taskq.task(name="a.stubborn", max_retries=0)
async def stubborn(n: int, seconds: float) -> str:
    """Swallows every cancellation: only the supervisor's kill stops it."""
    stamp("start", n)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not is_open("all"):
        try:
            await pause(deadline - time.monotonic())
        except asyncio.CancelledError:
            stamp("swallowed", n)
    stamp("done", n)
    return "ignored the cancellation"


@taskq.task(name="a.gated", max_retries=2)
async def gated(n: int, gate_name: str) -> int:
    """Runs until the test opens its gate; used as the co-runner of a culprit."""
    stamp("start", n)
    await until_open(gate_name)
    stamp("done", n)
    return n


@taskq.task(name="a.timeout", timeout=0.5, max_retries=0)
async def times_out(n: int) -> str:
    await _pause_stamped(n, 10)
    return "should have timed out"


@taskq.task(name="a.progress", max_retries=0)
async def progress(ctx: TaskContext, gate_name: str) -> dict[str, Any]:
    """Reports progress, then waits for the test to have seen it; also checks taskq.context.current()."""
    stamp("start", ctx.task_id)
    ctx.progress(42, "halfway there")
    await until_open(gate_name)
    ambient = current()
    return {"current_id": ambient.task_id, "same": ambient is ctx, "attempt": ambient.attempt}


@taskq.task(name="a.current", max_retries=0)
async def current_id() -> int:
    """A task without `ctx`: taskq.context.current() names it, also after an await."""
    before = current().task_id
    await asyncio.sleep(0.01)
    after = current().task_id
    assert before == after
    return after


@taskq.task(name="a.asks_retry", max_retries=3)
async def asks_retry(ctx: TaskContext, delay: float) -> int:
    stamp("asks_retry", ctx.attempt)
    await asyncio.sleep(0)
    if ctx.attempt == 1:
        raise taskq.Retry("rate limited", delay=delay)
    return ctx.attempt


@taskq.task(name="a.gives_up", max_retries=5)
async def gives_up() -> None:
    stamp("gives_up", 1)
    await asyncio.sleep(0)
    raise taskq.Fail("the input can never work")


@taskq.task(name="a.child", max_retries=0)
async def child(index: int) -> int:
    await asyncio.sleep(0.05)
    stamp("child", index)
    return index * index


@taskq.task(name="a.gather", max_retries=0)
async def gather(parent_id: int) -> int:
    await asyncio.sleep(0)
    stamp("gather", parent_id)
    return parent_id


@taskq.task(name="a.fan_out", then="a.gather", max_retries=0)
async def fan_out(ctx: TaskContext, count: int) -> None:
    await asyncio.sleep(0.01)
    ctx.spawn_children([("a.child", [i]) for i in range(count)])


@taskq.task(name="a.work", max_retries=3)
async def work(n: int, gate_name: str) -> int:
    """Waits for `gate_name`; for the SIGKILL accounting test."""
    stamp("start", n)
    await until_open(gate_name)
    stamp("done", n)
    return n


@taskq.task(name="a.sync_work", max_retries=3)
def sync_work(n: int, gate_name: str) -> int:
    """The sync twin of a.work: blocks its thread until the gate opens."""
    stamp("sync-start", n)
    deadline = time.monotonic() + 60
    while not is_open(gate_name) and time.monotonic() < deadline:
        time.sleep(0.01)
    stamp("sync-done", n)
    return n


@taskq.task(name="a.blocks_loop", timeout=0.5, max_retries=0)
async def blocks_loop(n: int, seconds: float) -> str:
    """Blocks its worker's event loop (a sync call in a coroutine): its timeout can only be enforced by a kill."""
    stamp("start", n)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not is_open("all"):
        time.sleep(0.05)
    stamp("done", n)
    return "should have been killed"


# What a coroutine can raise besides an Exception, each with a message to find in its traceback. A CancelledError
# nobody in taskq asked for is the task's own failure too; "cancelled-future" gets one the way real code does, by
# awaiting a future that someone else cancelled.
RAISED = {
    "SystemExit": lambda: SystemExit("the task called sys.exit"),
    "KeyboardInterrupt": lambda: KeyboardInterrupt("the task raised KeyboardInterrupt"),
    "CancelledError": lambda: asyncio.CancelledError("the task raised CancelledError"),
    "GeneratorExit": lambda: GeneratorExit("the task raised GeneratorExit"),
}


@taskq.task(name="a.raises", max_retries=0)
async def raises(n: int, kind: str, gate_name: str) -> str:
    """Waits for its gate, then raises `kind`: a BaseException that is not an Exception, or a CancelledError."""
    stamp("start", n)
    await until_open(gate_name)
    stamp("raises", n)
    if kind == "cancelled-future":
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.cancel)
        await future  # CancelledError here, in a task nobody cancelled
    raise RAISED[kind]()


def hold_loop(n: int, seconds: float = 60.0) -> None:
    """Block the event loop (a sync call in a coroutine) until the test ends or `seconds` pass."""
    stamp("blocking", n)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not is_open("all"):
        time.sleep(0.01)
    stamp("released", n)


_let_go: dict[str, asyncio.Event] = {}  # per gate name: set by a.blocks_after_returns when its gate opens


def let_go(name: str) -> asyncio.Event:
    return _let_go.setdefault(name, asyncio.Event())


@taskq.task(name="a.returns", max_retries=0)
async def returns(n: int, gate_name: str) -> int:
    """Returns as soon as a.blocks_after_returns lets it go, the loop turn before that one blocks the loop."""
    stamp("start", n)
    await let_go(gate_name).wait()
    stamp("done", n)
    return n


@taskq.task(name="a.blocks_after_returns", max_retries=0)
async def blocks_after_returns(n: int, gate_name: str) -> str:
    """Once its gate opens, wakes every a.returns of that gate and yields once: they all return, then this one
    blocks the loop (before their awaiters resume), the gap in which a kill used to lose their results."""
    stamp("start", n)
    await until_open(gate_name)
    let_go(gate_name).set()  # their wake-ups are queued on the loop ahead of this coroutine's next step
    await asyncio.sleep(0)
    hold_loop(n)
    return "held the loop"


@taskq.task(name="a.returns_leaving_a_blocker", max_retries=0)
async def returns_leaving_a_blocker(n: int, gate_name: str) -> int:
    """Leaves a callback on its loop that blocks it, then returns: the callback runs before anything that awaits
    this coroutine resumes (at concurrency 1, the worker's own code)."""
    stamp("start", n)
    await until_open(gate_name)
    asyncio.get_running_loop().call_soon(hold_loop, n)
    stamp("done", n)
    return n
