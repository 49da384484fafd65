"""taskq as a backend of django.tasks, with a real `manage.py taskq_worker` pool on SQLite: what Django's
own tests check of its backends (enqueue, results, refresh, errors, context, validation, async), plus
taskq's retries, worker ids, signals and options."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from django_pool import DJANGO_SKIP_REASON, DjangoPool, runlog_lines
from poolkit import PoolProcess, wait_for

from taskq.model import Status

pytest.importorskip("taskq.contrib.django.framework", reason=DJANGO_SKIP_REASON)

from django.utils import timezone

from taskq.contrib.django.framework import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task_backends,
    task_enqueued,
)

pytestmark = pytest.mark.usefixtures("pool")

FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


def finished(result, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Refresh `result` until the pool has finished it."""

    def done() -> bool:
        result.refresh()
        return result.status in FINISHED

    wait_for(done, timeout, what=f"result {result.id} finished")
    return result


def test_enqueue_runs_in_the_pool_and_get_result_is_successful_with_the_return_value() -> None:
    from djangotest.tasks import add

    result = add.enqueue(2, b=3)
    assert result.status == TaskResultStatus.READY and result.backend == "default" and not result.is_finished
    assert result.args == [2] and result.kwargs == {"b": 3} and result.worker_ids == [] and result.errors == []
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert len(result.worker_ids) == 1 and result.attempts == 1 and result.errors == []
    assert result.enqueued_at <= result.started_at == result.last_attempted_at <= result.finished_at
    assert result.task == add  # as Django's own backend tests check
    again = add.get_result(result.id)
    assert again.return_value == 5 and again.task.func is add.func and again.id == result.id
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_a_failing_task_is_failed_with_each_attempts_class_path_traceback_and_worker() -> None:
    from djangotest.tasks import Boom, exits, fails, fails_once_builtin

    result = finished(fails.enqueue("kaput"))  # max_retries=1: two attempts
    assert result.status == TaskResultStatus.FAILED and result.attempts == 2 and len(result.errors) == 2
    for error in result.errors:
        assert error.exception_class_path == "djangotest.tasks.Boom" and error.exception_class is Boom
        assert error.traceback.startswith("Traceback") and "raise Boom(message)" in error.traceback
        assert error.traceback.rstrip().endswith("djangotest.tasks.Boom: kaput")
    assert all(":worker-" in worker for worker in result.worker_ids)
    assert result.started_at < result.last_attempted_at <= result.finished_at  # first and last attempt
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    builtin = finished(fails_once_builtin.enqueue())
    assert [e.exception_class_path for e in builtin.errors] == ["builtins.ValueError"]
    assert builtin.errors[0].exception_class is ValueError and builtin.attempts == 1
    exited = finished(exits.enqueue())  # SystemExit from task code is the task's failure, not its worker's
    assert exited.errors[0].exception_class is SystemExit
    assert exited.errors[0].traceback.endswith("SystemExit: This Task failed due to SystemExit\n")


def test_retries_pass_the_context_and_keep_one_worker_id_per_attempt() -> None:
    from djangotest.tasks import flaky

    result = finished(flaky.enqueue(succeed_on=3))
    assert result.status == TaskResultStatus.SUCCESSFUL
    value = result.return_value
    assert value["attempt"] == 3 and value["id"] == result.id and len(value["workers"]) == 3
    assert result.worker_ids == value["workers"] and result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.RuntimeError"] * 2
    assert "attempt 1" in result.errors[0].traceback and "attempt 2" in result.errors[1].traceback


def test_async_tasks_run_and_the_async_api_works() -> None:
    from djangotest.tasks import async_double

    async def scenario() -> int:
        result = await async_double.aenqueue(21)
        for _ in range(600):
            await result.arefresh()
            if result.is_finished:
                break
            await asyncio.sleep(0.05)
        assert (await async_double.aget_result(result.id)).status == TaskResultStatus.SUCCESSFUL
        return result.return_value

    assert asyncio.run(scenario()) == 42


def test_run_after_holds_the_task_until_then() -> None:
    from djangotest.tasks import add

    run_after = timezone.now() + timedelta(seconds=1.5)
    result = add.using(run_after=run_after).enqueue(1, 1)
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.task.run_after == run_after
    finished(result)
    assert result.started_at >= run_after and result.return_value == 2


def test_signals_enqueued_here_started_and_finished_in_the_worker(site) -> None:  # type: ignore[no-untyped-def]
    from djangotest.tasks import flaky

    seen = []
    task_enqueued.connect(receiver := lambda sender, task_result, **kw: seen.append(task_result.id), weak=False)
    try:
        result = flaky.enqueue(succeed_on=2)
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [result.id]
    finished(result)
    # Each attempt starts and finishes; the one taskq retries finishes READY, the last one SUCCESSFUL.
    wait_for(lambda: len(runlog_lines(site.runlog, "finished", result.id)) == 2, 10, what="task_finished twice")
    assert runlog_lines(site.runlog, "started", result.id) == [["RUNNING", "1"], ["RUNNING", "2"]]
    assert runlog_lines(site.runlog, "finished", result.id) == [["READY", "1"], ["SUCCESSFUL", "2"]]


def test_unknown_ids_raise_task_result_does_not_exist() -> None:
    from djangotest.tasks import add, fails

    for unknown in ("999999", "not-a-number", ""):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)
    plain = default_task_backend.store.enqueue("taskq.echo", [1])  # a taskq task that is no Django task
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(plain.id))
    with pytest.raises(TaskResultMismatch):
        fails.get_result(add.enqueue(0, 0).id)


def test_invalid_tasks_are_refused_at_enqueue_with_the_frameworks_exception() -> None:
    from djangotest.tasks import add

    with pytest.raises(InvalidTask, match="priority"):
        add.using(priority=101)
    with pytest.raises(InvalidTask, match="aware"):
        add.using(run_after=datetime(2030, 1, 1))
    with pytest.raises(InvalidTask, match="Queue 'nowhere'"):
        add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match="argument"):  # taskq checks the call against the signature
        add.enqueue(1, 2, 3)


def test_capabilities_and_system_checks() -> None:
    backend = task_backends["default"]
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority
    assert backend.check() == []  # the test project is configured as the Django guide (docs/how-to/django.md) says
    broken = type(backend)("broken", {"OPTIONS": {"DATABASE_ALIAS": "nope", "TYPO": 1}})
    assert sorted(message.id for message in broken.check()) == ["taskq.E001", "taskq.E002"]
    elsewhere = {"OPTIONS": {"DATABASE_ALIAS": "default", "DATABASE": "sqlite:////tmp/another.db"}}
    assert [message.id for message in type(backend)("elsewhere", elsewhere).check()] == ["taskq.E004"]


def test_priorities_and_queues_are_respected(site) -> None:  # type: ignore[no-untyped-def]
    from djangotest.tasks import stamp

    # Queue "ordered" is not served by the session pool: every task waits for the pool started below.
    results = [stamp.using(priority=priority).enqueue(str(priority)) for priority in (-100, 0, 100, 50, -5)]
    ordered = DjangoPool(site.directory, "--workers", "1", "--queues", "ordered", "--prefetch", "1")
    try:
        ordered.wait_ready(1)
        for result in results:
            finished(result)
    finally:
        ordered.stop()
    by_start = sorted(results, key=lambda result: result.return_value["at"])
    assert [result.return_value["label"] for result in by_start] == ["100", "50", "0", "-5", "-100"]
    assert all(result.task.queue_name == "ordered" for result in results)


def test_django_is_set_up_once_in_the_fork_server_before_the_workers_are_forked(pool: DjangoPool) -> None:
    from djangotest.tasks import where_was_django_set_up

    pids = finished(where_was_django_set_up.enqueue()).return_value
    assert pids["setup_pid"] != pids["worker_pid"]
    assert f"pid={pids['worker_pid']}" in pool.log()  # the worker_spawned line of a worker of this pool


def test_taskq_worker_runs_django_tasks_with_django_settings_module(site) -> None:  # type: ignore[no-untyped-def]
    """The plain `taskq worker`, as the Django guide says: DJANGO_SETTINGS_MODULE (inherited here), the
    autodiscovery first in the imports, the backend's database."""
    from djangotest.tasks import stamp

    result = stamp.using(priority=1).enqueue("plain")
    plain = PoolProcess(
        site.directory, default_task_backend.url, "--queues", "ordered", "--import", "taskq.contrib.django.autodiscover"
    )
    try:
        plain.wait_ready(1)
        assert finished(result).return_value["label"] == "plain"
    finally:
        plain.stop()


def test_a_task_waiting_for_its_children_reads_running_until_the_last_one_finished(site) -> None:  # type: ignore[no-untyped-def]
    from djangotest.tasks import add, fan_out

    store = default_task_backend.store
    result = fan_out.enqueue(2, 1.0)
    parent = int(result.id)
    wait_for(lambda: store.require(parent).status is Status.WAITING_FOR_CHILDREN, 30, what="the parent waiting")
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING and not result.is_finished
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value is None
    children = store.children_results(parent)
    sums = sorted(add.get_result(str(c.id)).return_value for c in children if c.name == add.module_path)
    assert sums == [0, 2]
    # The parent's attempt ended by spawning: one task_started, no task_finished from its runner.
    assert runlog_lines(site.runlog, "started", result.id) == [["RUNNING", "1"]]
    assert runlog_lines(site.runlog, "finished", result.id) == []
