"""A taskq row read as Django's TaskResult: statuses, errors per attempt, worker ids and times.

Pure functions of the row (no database, no settings except USE_TZ): the backend calls them for
get_result, and the worker for the TaskResult its signals carry.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from taskq.context import TaskCancelled
from taskq.contrib.django.framework import InvalidTask, TaskError, TaskResult, TaskResultStatus
from taskq.contrib.django.framework import Task as DjangoTask
from taskq.lifecycle import Retry
from taskq.model import STATUS_CLASSES, TERMINAL_STATUSES, Status, StatusClass, Task

# Django's status for each class of taskq's, so every status has one.
BY_CLASS: dict[StatusClass, TaskResultStatus] = {
    StatusClass.QUEUED: TaskResultStatus.READY,  # new, delayed, or waiting out a retry's backoff
    StatusClass.WORKING: TaskResultStatus.RUNNING,
    # The function returned after spawning children; the task is not finished until the last child is.
    StatusClass.WAITING: TaskResultStatus.RUNNING,
    StatusClass.SUCCESS: TaskResultStatus.SUCCESSFUL,
    StatusClass.FAILURE: TaskResultStatus.FAILED,
    # Django has no cancelled status: a cancelled task did not succeed and never will.
    StatusClass.STOPPED: TaskResultStatus.FAILED,
}
STATUSES: dict[Status, TaskResultStatus] = {status: BY_CLASS[STATUS_CLASSES[status]] for status in Status}


class AttemptInterrupted(Exception):
    """The class path of an attempt that ended without an exception of the task's own: its worker was
    lost (killed, host down, lease expired), or no worker knew the task's name. The traceback field then
    holds taskq's reason."""


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_HEADER = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


def exception_class_path(text: str) -> str:
    """The class path of the exception a traceback (traceback.format_exception's text) ends with.

    The last exception's line is the first unindented line after the last traceback header (the exact
    header line, followed by a frame); Python
    writes builtins and __main__ classes without their module, every other one as module.Class.
    A text that is no traceback (taskq's own reasons) yields AttemptInterrupted, unless it starts
    with a builtin exception's name ("TimeoutError: task exceeded its timeout of 30 s").
    """
    lines = text.splitlines()
    # A header is that exact line followed by a frame: a message may contain the words, not that shape.
    headers = [i for i, line in enumerate(lines[:-1]) if line == _HEADER and lines[i + 1].startswith("  File ")]
    start = headers[-1] if headers else -1
    candidates = [line for line in lines[start + 1 :] if line and not line[0].isspace()]
    if candidates:
        match = _EXCEPTION_LINE.match(candidates[0])
        if match is not None:
            name = match.group(1)
            if "." in name:
                return name
            if isinstance(getattr(builtins, name, None), type):
                return f"builtins.{name}"
            if start >= 0:
                return f"__main__.{name}"
    return class_path(AttemptInterrupted)


def error_of(entry: dict[str, Any]) -> TaskError:
    text = str(entry.get("error") or "")
    path = class_path(Retry) if entry.get("retry") else exception_class_path(text)
    return TaskError(exception_class_path=path, traceback=text)


def attempts_of(row: Task) -> list[dict[str, Any]]:
    """The error_log entries that stand for attempts: a pass-on (a worker that did not know the task's name
    handed it back) is not one, the task never ran there."""
    return [entry for entry in row.error_log if not entry.get("passed_on")]


def errors_of(row: Task) -> list[TaskError]:
    errors = [error_of(entry) for entry in attempts_of(row)]
    kind = STATUS_CLASSES[row.status]
    if kind is StatusClass.STOPPED:
        errors.append(TaskError(exception_class_path=class_path(TaskCancelled), traceback=row.error or "cancelled"))
    elif kind is StatusClass.FAILURE and not errors and row.error:
        # Failed without a failed attempt of its own: a child of it failed for good.
        errors.append(TaskError(exception_class_path=exception_class_path(row.error), traceback=row.error))
    return errors


def worker_ids_of(row: Task) -> list[str]:
    """One per attempt: the failed ones from error_log (at most its last 20), then the current or
    last one while the row still names its worker."""
    ids = [str(entry.get("worker_id") or "unknown") for entry in attempts_of(row)]
    if row.worker_id is not None and row.status is not Status.PENDING:
        ids.append(row.worker_id)
    return ids


def local(value: datetime | None) -> datetime | None:
    """Aware UTC as taskq stores it, or naive local time for a project with USE_TZ = False."""
    if value is None or settings.USE_TZ:
        return value
    return timezone.make_naive(value)


def _attempt_start(entry: dict[str, Any]) -> datetime | None:
    started = entry.get("started_at")
    return datetime.fromisoformat(started) if isinstance(started, str) else None


def to_result(row: Task, task: DjangoTask, backend: str) -> TaskResult:
    """`task` is the Django task the row's name points at; the result's task carries the row's
    priority, queue and run_after (the latest one: after a failed attempt, when the retry is due)."""
    attempts = attempts_of(row)
    first_start = _attempt_start(attempts[0]) if attempts else None
    last_failed_start = _attempt_start(attempts[-1]) if attempts else None
    run_after = None if row.run_after == row.created_at else local(row.run_after)
    # When the settings changed since (a queue left QUEUES), the task as declared.
    with contextlib.suppress(InvalidTask):
        task = task.using(priority=row.priority, queue_name=row.queue, run_after=run_after, backend=backend)
    finished = row.status in TERMINAL_STATUSES
    result = TaskResult(
        task=task,
        id=str(row.id),
        status=STATUSES[row.status],
        enqueued_at=local(row.created_at),
        started_at=local(first_start or row.started_at),
        last_attempted_at=local(row.started_at or last_failed_start),
        finished_at=local(row.finished_at) if finished else None,
        args=row.args,
        kwargs=row.kwargs,
        backend=backend,
        errors=errors_of(row),
        worker_ids=worker_ids_of(row),
    )
    if row.status is Status.COMPLETED:
        object.__setattr__(result, "_return_value", row.result)
    return result


def attempt_result(row: Task, task: DjangoTask, backend: str, worker_id: str, started_at: datetime) -> TaskResult:
    """The result as the worker sees it when an attempt starts: RUNNING on `worker_id` since `started_at`
    (the claimed row records neither yet)."""
    running = replace(row, status=Status.RUNNING, worker_id=worker_id, started_at=started_at)
    return to_result(running, task, backend)
