"""Run one claimed task and record its outcome through the store."""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any

from taskq import registry
from taskq.context import TaskCancelled, TaskContext
from taskq.model import Status, Task
from taskq.store import Store

log = logging.getLogger("taskq.executor")


@dataclass(frozen=True)
class Outcome:
    status: Status | None  # None: the task was no longer ours (lease recovered elsewhere)
    event: str  # stable log event name: task_completed, task_retry, task_failed, task_cancelled, task_waiting


def _permanent(store: Store, task: Task, worker_id: str, message: str) -> Outcome:
    status = store.fail(task.id, message, worker_id=worker_id, attempt=task.attempts, retry=False)
    return Outcome(status, "task_failed")


def execute(store: Store, task: Task, worker_id: str, context: TaskContext) -> Outcome:
    """Run `task` to an outcome. Never raises for anything the task does."""
    try:
        spec = registry.lookup(task.name)
    except registry.UnknownTask as error:
        # Not retried: another attempt on this worker would fail the same way. `taskq retry` after deploying.
        return _permanent(store, task, worker_id, f"{error}; is the module in `imports`?")
    try:
        with context:
            args: list[Any] = [context, *task.args] if spec.takes_context else list(task.args)
            result = spec.function(*args, **task.kwargs)
    except TaskCancelled:
        context.flush_progress()
        done = store.mark_cancelled(task.id, worker_id=worker_id, attempt=task.attempts)
        return Outcome(Status.CANCELLED if done else None, "task_cancelled")
    except Exception as error:
        context.flush_progress()
        if context.spawned:
            log.error("task_error_after_spawn task_id=%s: %s", task.id, error)
            return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
        text = "".join(traceback.format_exception(error))
        status = store.fail(task.id, text, worker_id=worker_id, attempt=task.attempts)
        return Outcome(status, "task_retry" if status is Status.PENDING else "task_failed")
    if context.spawned:
        return Outcome(Status.WAITING_FOR_CHILDREN, "task_waiting")
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        return _permanent(store, task, worker_id, f"task returned a value that is not JSON-serialisable: {error}")
    context.flush_progress()
    done = store.complete(task.id, result, worker_id=worker_id, attempt=task.attempts)
    return Outcome(Status.COMPLETED if done else None, "task_completed")
