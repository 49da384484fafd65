"""Run one claimed task and record its outcome through the store.

Two steps: calling the task's function (`call`, or `call_async` on an event loop for an `async def` task)
yields a `Call`, what the function did; `settle` records that as the task's outcome. A worker running
coroutines concurrently awaits the first on its loop and runs the second in a thread, so no coroutine
waits for the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskq import registry, tracing
from taskq.clock import utc_now
from taskq.context import TaskCancelled, TaskContext
from taskq.lifecycle import Failure, FailureKind, Retry
from taskq.model import Completion, Status, Task
from taskq.protocol import DEFERRED_RESULT_MAX_BYTES, timeout_message
from taskq.store import Store

log = logging.getLogger("taskq.executor")


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: the task was no longer ours (lease recovered elsewhere)
    event: str  # stable log event name: task_completed, task_retry, task_failed, task_cancelled, task_waiting
    deferred: bool = False  # a success handed to defer_success, not yet recorded


@dataclass(frozen=True)
class Call:
    """What the task's function did: returned `result`, or raised `error`."""

    result: Any = None
    error: BaseException | None = None


class TaskTimedOut(Exception):
    """A coroutine task ran past its timeout and was cancelled on its loop (a sync task is killed with its
    worker by the supervisor instead); recorded as the same failed attempt either way."""


def _permanent(store: Store, task: Task, worker_id: str, message: str, started_at: datetime) -> Outcome:
    failure = Failure(FailureKind.PERMANENT, message)
    status = store.fail(task.id, failure, worker_id=worker_id, attempt=task.attempts, started_at=started_at)
    return Outcome(status, "task_failed")


# Log event per (kind of failure, status it led to); a requested retry is not an error, so it has its own.
_FAILURE_EVENTS: dict[tuple[FailureKind, Status | None], str] = {
    (FailureKind.RETRY, Status.PENDING): "task_retry_requested",
    (FailureKind.ERROR, Status.PENDING): "task_retry",
}


def _arguments(spec: registry.TaskSpec, task: Task, context: TaskContext) -> list[Any]:
    return [context, *task.args] if spec.takes_context else list(task.args)


def timeout_of(task: Task) -> float | None:
    """The row's timeout, else the task's @task(timeout=...) (the enqueuer may not have imported it)."""
    if task.timeout is not None:
        return task.timeout
    spec = registry.find(task.name)
    return None if spec is None else spec.timeout


def call(spec: registry.TaskSpec, task: Task, context: TaskContext) -> Call:
    """Call the function here; an `async def` one runs to its end on this thread's event loop."""
    if spec.is_async:
        return event_loop().run_until_complete(call_async(spec, task, context, timeout_of(task)))
    try:
        with context, tracing.consuming(context):
            return Call(spec.function(*_arguments(spec, task, context), **task.kwargs))
    except BaseException as error:  # SystemExit and KeyboardInterrupt from task code are its failure too
        return Call(error=error)


async def call_async(
    spec: registry.TaskSpec,
    task: Task,
    context: TaskContext,
    timeout: float | None,
    on_start: Callable[[], object] | None = None,
) -> Call:
    """Await the coroutine in a task of its own, which a cancellation request or the timeout cancels.
    `on_start` runs when that task first gets the loop, right before the function is called: until then
    the task has not started (a loop blocked by another coroutine may keep it waiting)."""
    context.buffer_progress = True

    async def run() -> Any:
        if on_start is not None:
            on_start()
        with context, tracing.consuming(context):
            return await spec.function(*_arguments(spec, task, context), **task.kwargs)

    loop = asyncio.get_running_loop()
    running = loop.create_task(run())
    context.on_cancel(lambda: loop.call_soon_threadsafe(running.cancel))
    try:
        return Call(await asyncio.wait_for(running, timeout))
    except asyncio.TimeoutError:
        if not running.cancelled():  # the coroutine itself raised TimeoutError
            return Call(error=running.exception())
        return Call(error=TaskTimedOut(timeout_message(timeout or 0.0)))
    except asyncio.CancelledError:
        if context.cancelled:
            return Call(error=TaskCancelled(f"task {task.id} was cancelled"))
        raise
    except BaseException as error:
        return Call(error=error)


_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """One loop per process for `async def` tasks run one at a time (kept: a loop per task costs ~0.1 ms)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


def settle(
    store: Store,
    task: Task,
    worker_id: str,
    context: TaskContext,
    spec: registry.TaskSpec,
    outcome: Call,
    defer_success: Callable[[Completion], None] | None = None,
) -> Outcome:
    """Record what the call did. With `defer_success`, a successful result is handed to it for the caller
    to record later (batched); anything else is recorded at once."""
    started_at = context.started_at
    owner: dict[str, Any] = {"worker_id": worker_id, "attempt": task.attempts, "started_at": started_at}
    error = outcome.error
    if isinstance(error, TaskCancelled):
        context.flush_progress()
        done = store.mark_cancelled(task.id, **owner)
        return Outcome(Status.CANCELLED if done else None, "task_cancelled")
    if error is not None:
        context.flush_progress()
        if context.spawned:
            log.error("task_error_after_spawn task_id=%s: %s", task.id, error)
            return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
        if isinstance(error, TaskTimedOut):  # as when the supervisor kills a sync task for it: an error
            failure = Failure(FailureKind.ERROR, str(error))
        elif isinstance(error, Retry):
            failure = Failure(spec.retry.classify(error), error.reason, error.delay)
        else:
            failure = Failure(spec.retry.classify(error), "".join(traceback.format_exception(error)))
        status = store.fail(task.id, failure, policy=spec.retry, **owner)
        return Outcome(status, _FAILURE_EVENTS.get((failure.kind, status), "task_failed"))
    if context.spawned:
        return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
    result = outcome.result
    try:
        encoded = "null" if result is None else json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as encode_error:
        return _permanent(
            store, task, worker_id, f"task returned a value that is not JSON-serialisable: {encode_error}", started_at
        )
    context.flush_progress()
    if defer_success is not None and len(encoded) <= DEFERRED_RESULT_MAX_BYTES:
        defer_success(_completion(task, context, spec, result))
        return DEFERRED
    done = store.complete(task.id, result, continuation=spec.then, **owner)
    return Outcome(Status.COMPLETED if done else None, "task_completed")


DEFERRED = Outcome(Status.COMPLETED, "task_completed", deferred=True)


def _completion(task: Task, context: TaskContext, spec: registry.TaskSpec, result: Any) -> Completion:
    follow_up = task.parent_id is not None or task.continuation is not None or spec.then is not None
    return Completion(task.id, task.attempts, result, utc_now(), follow_up, spec.then, context.started_at)


def deferrable(task: Task, context: TaskContext, spec: registry.TaskSpec, outcome: Call) -> Completion | None:
    """The success `settle` would defer, found without the database; None for any other outcome (settle it)."""
    if outcome.error is not None or context.spawned:
        return None
    try:
        encoded = "null" if outcome.result is None else json.dumps(outcome.result, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(encoded) > DEFERRED_RESULT_MAX_BYTES:
        return None
    return _completion(task, context, spec, outcome.result)


def lookup(store: Store, task: Task, worker_id: str, context: TaskContext) -> registry.TaskSpec | Outcome:
    """The task's spec, or the outcome of not knowing it: failed for good, since another attempt on this
    worker would fail the same way (`taskq retry` after deploying)."""
    try:
        return registry.lookup(task.name)
    except registry.UnknownTask as error:
        return _permanent(store, task, worker_id, f"{error}; is the module in `imports`?", context.started_at)


def execute(
    store: Store,
    task: Task,
    worker_id: str,
    context: TaskContext,
    defer_success: Callable[[Completion], None] | None = None,
) -> Outcome:
    """Run `task` to an outcome here. Never raises for anything the task does: any BaseException from its
    code (SystemExit, KeyboardInterrupt included) is that task's failure, not its worker's death."""
    spec = lookup(store, task, worker_id, context)
    if isinstance(spec, Outcome):
        return spec
    return settle(store, task, worker_id, context, spec, call(spec, task, context), defer_success)
