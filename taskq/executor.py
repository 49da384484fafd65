"""Run one claimed task and record its outcome through the store."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskq import registry
from taskq.clock import utc_now
from taskq.context import TaskCancelled, TaskContext
from taskq.lifecycle import Failure, FailureKind, Retry
from taskq.model import Completion, Status, Task
from taskq.protocol import DEFERRED_RESULT_MAX_BYTES
from taskq.store import Store

log = logging.getLogger("taskq.executor")


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: the task was no longer ours (lease recovered elsewhere)
    event: str  # stable log event name: task_completed, task_retry, task_failed, task_cancelled, task_waiting
    deferred: bool = False  # a success handed to defer_success, not yet recorded


def _permanent(store: Store, task: Task, worker_id: str, message: str, started_at: datetime) -> Outcome:
    failure = Failure(FailureKind.PERMANENT, message)
    status = store.fail(task.id, failure, worker_id=worker_id, attempt=task.attempts, started_at=started_at)
    return Outcome(status, "task_failed")


# Log event per (kind of failure, status it led to); a requested retry is not an error, so it has its own.
_FAILURE_EVENTS = {
    (FailureKind.RETRY, Status.PENDING): "task_retry_requested",
    (FailureKind.ERROR, Status.PENDING): "task_retry",
}


def execute(
    store: Store,
    task: Task,
    worker_id: str,
    context: TaskContext,
    defer_success: Callable[[Completion], None] | None = None,
) -> Outcome:
    """Run `task` to an outcome. Never raises for anything the task does: any BaseException from its
    code (SystemExit, KeyboardInterrupt included) is that task's failure, not its worker's death. With
    `defer_success`, a successful result is handed to it for the caller to record later (batched);
    anything else is recorded at once."""
    started_at = context.started_at
    owner: dict[str, Any] = {"worker_id": worker_id, "attempt": task.attempts, "started_at": started_at}
    try:
        spec = registry.lookup(task.name)
    except registry.UnknownTask as error:
        # Not retried: another attempt on this worker would fail the same way. `taskq retry` after deploying.
        return _permanent(store, task, worker_id, f"{error}; is the module in `imports`?", started_at)
    try:
        with context:
            args: list[Any] = [context, *task.args] if spec.takes_context else list(task.args)
            result = spec.function(*args, **task.kwargs)
    except TaskCancelled:
        context.flush_progress()
        done = store.mark_cancelled(task.id, **owner)
        return Outcome(Status.CANCELLED if done else None, "task_cancelled")
    except BaseException as error:  # the worker's own stop is a flag, never an exception
        context.flush_progress()
        if context.spawned:
            log.error("task_error_after_spawn task_id=%s: %s", task.id, error)
            return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
        kind = spec.retry.classify(error)
        if isinstance(error, Retry):
            failure = Failure(kind, error.reason, error.delay)
        else:
            failure = Failure(kind, "".join(traceback.format_exception(error)))
        status = store.fail(task.id, failure, policy=spec.retry, **owner)
        return Outcome(status, _FAILURE_EVENTS.get((kind, status), "task_failed"))
    if context.spawned:
        return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
    try:
        encoded = "null" if result is None else json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        return _permanent(
            store, task, worker_id, f"task returned a value that is not JSON-serialisable: {error}", started_at
        )
    context.flush_progress()
    if defer_success is not None and len(encoded) <= DEFERRED_RESULT_MAX_BYTES:
        follow_up = task.parent_id is not None or task.continuation is not None or spec.then is not None
        defer_success(Completion(task.id, task.attempts, result, utc_now(), follow_up, spec.then, started_at))
        return Outcome(Status.COMPLETED, "task_completed", deferred=True)
    done = store.complete(task.id, result, continuation=spec.then, **owner)
    return Outcome(Status.COMPLETED if done else None, "task_completed")
