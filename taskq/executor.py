"""Run one claimed task and record its outcome through the store.

Two steps: calling the task's function (`call`, or `call_async` on an event loop for an `async def` task)
yields a `Call`, what the function did; `settle` records that as the task's outcome. A worker running
coroutines concurrently awaits the first on its loop and runs the second in a thread, so no coroutine
waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskq import registry, tracing
from taskq.clock import utc_now
from taskq.context import TaskCancelled, TaskContext
from taskq.events import log_event
from taskq.json_limits import JsonRefused, encode
from taskq.lifecycle import Failure, FailureKind, Retry, traceback_text
from taskq.model import Completion, Status, Task
from taskq.protocol import DEFERRED_RESULT_MAX_BYTES, timeout_message
from taskq.store import Store

log = logging.getLogger("taskq.executor")

PASS_ON_NAMES_SHOWN = 10  # registered names listed in a pass-on's reason


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: the task was no longer ours (lease recovered elsewhere)
    event: str  # stable log event name: task_completed, task_retry, task_failed, task_cancelled, task_waiting
    deferred: bool = False  # a success handed to defer_success, not yet recorded
    error: str | None = None  # a failure's exception line ("ValueError: bad input"), for the worker's log
    traceback: str | None = None  # and its traceback, logged at DEBUG


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
    return Outcome(status, "task_failed", error=message)


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


def call(
    spec: registry.TaskSpec, task: Task, context: TaskContext, on_return: Callable[[Call], None] | None = None
) -> Call:
    """Call the function here; an `async def` one runs to its end on this thread's event loop. `on_return`
    gets what the function did as soon as it returned or raised (see `call_async`)."""
    if spec.is_async:
        return event_loop().run_until_complete(call_async(spec, task, context, timeout_of(task), on_return=on_return))
    try:
        with context, tracing.consuming(context):
            outcome = Call(spec.function(*_arguments(spec, task, context), **task.kwargs))
    except BaseException as error:  # SystemExit and KeyboardInterrupt from task code are its failure too
        outcome = Call(error=error)
    if on_return is not None:
        on_return(outcome)
    return outcome


async def call_async(
    spec: registry.TaskSpec,
    task: Task,
    context: TaskContext,
    timeout: float | None,
    on_start: Callable[[], object] | None = None,
    on_return: Callable[[Call], None] | None = None,
) -> Call:
    """Await the coroutine in a task of its own, which a cancellation request or the timeout cancels.
    `on_start` runs when that task first gets the loop, right before the function is called: until then
    the task has not started (a loop blocked by another coroutine may keep it waiting). `on_return` runs in
    the very loop step in which the function returned or raised, before the loop runs anything else: whoever
    awaits this call resumes a loop turn or more later, and a coroutine that blocks the loop in between (and
    a kill during that block) must not find the return untold.

    Whatever the function raises is its outcome. Caught inside its own task, a SystemExit, KeyboardInterrupt
    or GeneratorExit never reaches asyncio's task machinery (which lets the first two stop the loop), and a
    CancelledError is taskq's timeout or cancellation only if taskq cancelled the task; any other (raised by
    the function, or from awaiting a future someone else cancelled) is the function's error."""
    context.buffer_progress = True
    loop = asyncio.get_running_loop()
    stopped_for: list[Exception] = []  # why taskq cancelled the task, if it did (the first reason counts)

    async def run() -> Call:
        if on_start is not None:
            on_start()
        try:
            with context, tracing.consuming(context):
                outcome = Call(await spec.function(*_arguments(spec, task, context), **task.kwargs))
        except asyncio.CancelledError as error:
            outcome = Call(error=stopped_for[0] if stopped_for else error)
        except BaseException as error:
            outcome = Call(error=error)
        if on_return is not None:
            on_return(outcome)
        return outcome

    running = loop.create_task(run())

    def stop(reason: Exception) -> None:
        if not running.done():
            stopped_for.append(reason)
            running.cancel()

    def cancel_requested() -> None:  # usually from the heartbeat thread: hand it to the loop
        loop.call_soon_threadsafe(stop, TaskCancelled(f"task {task.id} was cancelled"))

    context.on_cancel(cancel_requested)
    timer = None if timeout is None else loop.call_later(timeout, stop, TaskTimedOut(timeout_message(timeout)))
    try:
        return await running
    except asyncio.CancelledError:
        if running.cancelled() and stopped_for:  # cancelled before its first step: the function never ran
            return Call(error=stopped_for[0])
        raise
    finally:
        if timer is not None:
            timer.cancel()


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
            log_event(log, logging.ERROR, "task_error_after_spawn", task_id=task.id, error=str(error))
            return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
        if isinstance(error, TaskTimedOut):  # as when the supervisor kills a sync task for it: an error
            failure = Failure(FailureKind.ERROR, str(error))
        elif isinstance(error, Retry):
            failure = Failure(spec.retry.classify(error), error.reason, error.delay)
        else:
            failure = Failure(spec.retry.classify(error), traceback_text(error))
        status = store.fail(task.id, failure, policy=spec.retry, **owner)
        event = _FAILURE_EVENTS.get((failure.kind, status), "task_failed")
        return Outcome(status, event, error=exception_line(error), traceback=failure.text)
    if context.spawned:
        return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
    result = outcome.result
    try:
        encoded = encode(result)
    except JsonRefused as refused:  # failed for good: the same code would return the same value
        return _permanent(
            store, task, worker_id, f"task returned a value that cannot be stored: result {refused.reason}", started_at
        )
    context.flush_progress()
    if defer_success is not None and len(encoded) <= DEFERRED_RESULT_MAX_BYTES:
        defer_success(_completion(task, context, spec, result))
        return DEFERRED
    try:
        done = store.complete(task.id, result, continuation=spec.then, **owner)
    except Exception as refused_by_database:
        reason = store.refusal(refused_by_database)
        if reason is None:  # not the result's fault (the database is away): the worker's problem
            raise
        return _permanent(store, task, worker_id, reason, started_at)
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
        encoded = encode(outcome.result)
    except JsonRefused:
        return None
    if len(encoded) > DEFERRED_RESULT_MAX_BYTES:
        return None
    return _completion(task, context, spec, outcome.result)


class Announcer:
    """An `on_return` hook telling `announce` (the supervisor) of a success to defer the moment the function
    returned: a kill from then on records the success, never runs the task again. `completion` is what it
    told; None for any other outcome, which `settle` records."""

    def __init__(
        self, task: Task, context: TaskContext, spec: registry.TaskSpec, announce: Callable[[Completion], None]
    ) -> None:
        self.task = task
        self.context = context
        self.spec = spec
        self.announce = announce
        self.completion: Completion | None = None

    def __call__(self, outcome: Call) -> None:
        self.completion = deferrable(self.task, self.context, self.spec, outcome)
        if self.completion is not None:
            self.announce(self.completion)


def exception_line(error: BaseException) -> str:
    """What Python prints last for an exception ("ValueError: bad input"); a timeout reads as the row's error."""
    if isinstance(error, TaskTimedOut):
        return str(error)
    return "".join(traceback.format_exception_only(error)).strip()


def pass_on(store: Store, task: Task, worker_id: str) -> Outcome:
    """The outcome of claiming a task this worker does not know: it goes back to pending for a worker
    that knows it (a pool with one badly deployed host, a rolling deploy adding a task), without counting
    an attempt, and fails once too many workers in a row did not know it (lifecycle.decide_pass_on)."""
    names = registry.registered_names()
    known = ", ".join(names[:PASS_ON_NAMES_SHOWN]) or "none"
    if len(names) > PASS_ON_NAMES_SHOWN:
        known += f", ... ({len(names)} in all)"  # each pass-on's error_log entry repeats it: keep it short
    why = f"{worker_id} does not know it (registered: {known}); is the module in `imports`?"
    status = store.pass_on(task.id, why, worker_id=worker_id, attempt=task.attempts)
    if status is Status.FAILED:
        return Outcome(status, "task_failed", error=f"no worker knows task {task.name!r}")
    return Outcome(status, "task_passed_on")


def lookup(store: Store, task: Task, worker_id: str) -> registry.TaskSpec | Outcome:
    """The task's spec, or the outcome of not knowing it (`pass_on`)."""
    spec = registry.find(task.name)
    return pass_on(store, task, worker_id) if spec is None else spec


def execute(
    store: Store,
    task: Task,
    worker_id: str,
    context: TaskContext,
    defer_success: Callable[[Completion], None] | None = None,
    announce: Callable[[Completion], None] | None = None,
) -> Outcome:
    """Run `task` to an outcome here. Never raises for anything the task does: any BaseException from its
    code (SystemExit, KeyboardInterrupt included) is that task's failure, not its worker's death.

    With `announce`, a success to defer is announced as the function returns (a coroutine's in the loop step
    it returns in) and then, its last progress written, handed to `defer_success`, which only keeps it."""
    spec = lookup(store, task, worker_id)
    if isinstance(spec, Outcome):
        return spec
    if announce is None or defer_success is None:
        return settle(store, task, worker_id, context, spec, call(spec, task, context), defer_success)
    announcer = Announcer(task, context, spec, announce)
    outcome = call(spec, task, context, on_return=announcer)
    if announcer.completion is None:
        keep = defer_success

        def announce_and_keep(completion: Completion) -> None:  # a success settle defers all the same
            announce(completion)
            keep(completion)

        return settle(store, task, worker_id, context, spec, outcome, announce_and_keep)
    context.flush_progress()
    defer_success(announcer.completion)
    return DEFERRED
