"""taskq's own options from Django code: @task(max_retries=..., timeout=..., max_concurrency=...,
retry_on=...), .using(dedup_key=..., max_retries=...), and taskq's context (progress, cancellation)
inside a Django task; run by the session's `manage.py taskq_worker` pool."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django_pool import DJANGO_SKIP_REASON
from poolkit import wait_for

pytest.importorskip("taskq.contrib.django.framework", reason=DJANGO_SKIP_REASON)

from django.utils import timezone

from taskq.contrib.django.framework import TaskResultStatus, default_task_backend
from taskq.model import Status

pytestmark = pytest.mark.usefixtures("pool")


def finished(result, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    wait_for(lambda: (result.refresh(), result.is_finished)[1], timeout, what=f"result {result.id} finished")
    return result


def test_progress_and_cancellation_from_inside_a_django_task() -> None:
    from djangotest.tasks import with_progress

    result = with_progress.enqueue()
    store = default_task_backend.store
    wait_for(lambda: store.require(int(result.id)).progress_message == "half way", 30, what="progress reported")
    assert store.require(int(result.id)).progress == 50
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING and len(result.worker_ids) == 1
    assert store.cancel(int(result.id)) is Status.RUNNING  # the task sees it at its next check_cancelled()
    finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "taskq.context.TaskCancelled"
    assert store.require(int(result.id)).status is Status.CANCELLED


def test_timeout_fails_the_attempt_with_timeout_error() -> None:
    from djangotest.tasks import too_slow

    result = finished(too_slow.enqueue(), timeout=60)
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert [error.exception_class_path for error in result.errors] == ["builtins.TimeoutError"]
    assert "exceeded its timeout of 1 s" in result.errors[0].traceback


def test_taskq_fail_is_not_retried_and_max_retries_can_change_per_enqueue() -> None:
    from djangotest.tasks import fails, not_retried

    failed = finished(not_retried.enqueue())  # max_retries=5, but taskq.Fail is final
    assert failed.attempts == 1 and failed.errors[0].exception_class_path == "taskq.lifecycle.Fail"
    once = finished(fails.using(max_retries=0).enqueue("once"))  # @task said 1
    assert once.attempts == 1 and once.status == TaskResultStatus.FAILED


def test_a_dedup_key_returns_the_active_task() -> None:
    from djangotest.tasks import add

    later = add.using(run_after=timezone.now() + timedelta(hours=1), dedup_key="nightly")
    first = later.enqueue(1, 2)
    second = later.enqueue(5, 6)
    assert second.id == first.id and second.args == [1, 2] and second.status == TaskResultStatus.READY
    default_task_backend.store.cancel(int(first.id))
    first.refresh()
    assert first.status == TaskResultStatus.FAILED  # cancelled reads as FAILED
    assert first.errors[-1].exception_class_path == "taskq.context.TaskCancelled"


def test_max_concurrency_runs_one_at_a_time_over_the_pools_workers() -> None:
    from djangotest.tasks import capped

    results = [capped.enqueue(0.3) for _ in range(3)]
    spans = sorted(finished(result).return_value for result in results)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))  # never overlapping


def test_a_return_value_django_cannot_store_fails_at_once_as_a_type_error() -> None:
    from djangotest.tasks import returns_a_set

    result = finished(returns_a_set.enqueue())  # max_retries=3, but the same code returns the same set
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert issubclass(result.errors[0].exception_class, TypeError) and "Unsupported type" in result.errors[0].traceback


def test_options_decorator_for_django_60() -> None:
    from djangotest.tasks import decorated_for_django_60

    from taskq import registry

    assert decorated_for_django_60.max_retries == 0 and decorated_for_django_60.timeout == 5
    spec = registry.lookup(decorated_for_django_60.module_path)
    assert spec.max_retries == 0 and spec.timeout == 5
    assert finished(decorated_for_django_60.enqueue()).return_value == "ok"
