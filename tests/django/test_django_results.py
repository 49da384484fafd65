"""The pure part of the mapping (taskq/contrib/django/results.py): an exception's class path read back from
the traceback text taskq stores, and statuses, errors and worker ids from rows made in memory."""

from __future__ import annotations

import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django_pool import DJANGO_SKIP_REASON

pytest.importorskip("taskq.contrib.django.framework", reason=DJANGO_SKIP_REASON)

from taskq.model import Status, Task


class MultiLine(Exception):
    pass


def text_of(error: BaseException) -> str:
    try:
        raise error
    except BaseException as raised:
        return "".join(traceback.format_exception(raised))


def chained() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise MultiLine("first line\nTraceback (most recent call last): looks like a header\nlast") from inner
    except MultiLine as outer:
        return "".join(traceback.format_exception(outer))


def test_the_class_path_of_the_last_exception_in_a_traceback() -> None:
    from taskq.contrib.django.results import exception_class_path

    assert exception_class_path(text_of(ValueError("x"))) == "builtins.ValueError"
    assert exception_class_path(text_of(MultiLine("a\nb: c"))) == f"{__name__}.MultiLine"
    assert exception_class_path(text_of(SystemExit(3))) == "builtins.SystemExit"
    assert exception_class_path(text_of(KeyError())) == "builtins.KeyError"  # no message, no colon
    # The chained one ends with the outer exception, whose message mimics a traceback header.
    assert exception_class_path(chained()).endswith("MultiLine")
    assert exception_class_path("TimeoutError: task exceeded its timeout of 30 s") == "builtins.TimeoutError"
    interrupted = "taskq.contrib.django.results.AttemptInterrupted"
    assert exception_class_path("worker lost: vm:1:worker-2 killed by SIGKILL") == interrupted
    assert exception_class_path("") == interrupted


def row(**changes: object) -> Task:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    base = Task(
        id=7, name="djangotest.tasks.add", queue="default", args=[1], kwargs={"b": 2}, status=Status.PENDING,
        priority=0, run_after=now, attempts=0, max_retries=3, dedup_key=None, parent_id=None, progress=0.0,
        progress_message=None, result=None, error=None, error_log=[], worker_id=None, lease_until=None,
        cancel_requested=False, timeout=None, continuation=None, children_total=0, children_completed=0,
        children_failed=0, children_cancelled=0, created_at=now, started_at=None, finished_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_statuses_errors_worker_ids_and_times_from_a_row(site) -> None:  # type: ignore[no-untyped-def]
    from djangotest.tasks import add

    from taskq.contrib.django.framework import TaskResultStatus
    from taskq.contrib.django.results import to_result

    start = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    log = [{"attempt": 1, "at": "...", "error": text_of(ValueError("x")), "worker_id": "w1",
            "started_at": start.isoformat()}]
    expected = {
        Status.PENDING: TaskResultStatus.READY,
        Status.RUNNING: TaskResultStatus.RUNNING,
        Status.WAITING_FOR_CHILDREN: TaskResultStatus.RUNNING,
        Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
        Status.FAILED: TaskResultStatus.FAILED,
        Status.CANCELLED: TaskResultStatus.FAILED,
    }
    for status, django_status in expected.items():
        worker = None if status is Status.PENDING else "w2"
        result = to_result(row(status=status, error_log=log, worker_id=worker), add, "default")
        assert result.status == django_status, status
        assert result.worker_ids == (["w1"] if worker is None else ["w1", "w2"])
        assert result.errors[0].exception_class_path == "builtins.ValueError"
        assert result.started_at == start
    cancelled = to_result(row(status=Status.CANCELLED, error="cancelled by request"), add, "default")
    assert [e.exception_class_path for e in cancelled.errors] == ["taskq.context.TaskCancelled"]
    retry = to_result(row(error_log=[{"attempt": 1, "retry": True, "error": "retry requested"}]), add, "default")
    assert retry.errors[0].exception_class_path == "taskq.lifecycle.Retry" and retry.worker_ids == ["unknown"]
    passed_on = {"attempt": 1, "passed_on": True, "error": "passed on (1 of 12): ...", "worker_id": "w9"}
    handed_back = to_result(row(error_log=[passed_on, *log]), add, "default")  # a pass-on is no attempt
    assert handed_back.worker_ids == ["w1"] and len(handed_back.errors) == 1 and handed_back.started_at == start
    later = row(run_after=row().created_at + timedelta(hours=1))
    assert to_result(later, add, "default").task.run_after == later.run_after
    assert to_result(row(), add, "default").task == add
