"""The executor on a real SQLite store, in this process: what a function did becomes the task's outcome.

Sync and `async def` tasks alike; coroutine timeouts and cancellation are enforced on the loop here, so
these run without a pool (the process tests prove the same through real workers)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

import pytest

import taskq
from taskq.context import TaskContext
from taskq.executor import PASS_ON_NAMES_SHOWN, Call, TaskTimedOut, call, call_async, execute, settle
from taskq.lifecycle import PASS_ON_DELAY_SECONDS
from taskq.model import Completion, Status, Task
from taskq.registry import lookup, registered_names
from taskq.store import Store

WORKER = "host:1:worker-1:boot:1"


@taskq.task(name="unit.add")
def add(a: int, b: int) -> int:
    return a + b


@taskq.task(name="unit.add_async")
async def add_async(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@taskq.task(name="unit.boom", max_retries=2)
def boom() -> None:
    raise ValueError("boom")


@taskq.task(name="unit.boom_async", max_retries=0)
async def boom_async() -> None:
    raise KeyError("missing")


@taskq.task(name="unit.not_json")
def not_json() -> object:
    return object()


@taskq.task(name="unit.forever", timeout=0.05, max_retries=0)
async def forever() -> None:
    await asyncio.sleep(60)


@taskq.task(name="unit.own_timeout", max_retries=0)
async def own_timeout() -> None:
    raise TimeoutError("the service timed out")


@taskq.task(name="unit.current_inside")
async def current_inside() -> int:
    return taskq.context.current().task_id


@taskq.task(name="unit.asks_retry", max_retries=3)
async def asks_retry() -> None:
    raise taskq.Retry("later", delay=120)


@taskq.task(name="unit.fails_for_good", max_retries=3)
async def fails_for_good() -> None:
    raise taskq.Fail("no point")


RAISED: dict[str, BaseException] = {
    "SystemExit": SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt(),
    "GeneratorExit": GeneratorExit(),
    "CancelledError": asyncio.CancelledError("its own"),
}


@taskq.task(name="unit.raises_async", max_retries=0)
async def raises_async(kind: str) -> None:
    await asyncio.sleep(0)
    raise RAISED[kind]


@taskq.task(name="unit.awaits_a_cancelled_future", max_retries=0)
async def awaits_a_cancelled_future() -> None:
    future = asyncio.get_running_loop().create_future()
    future.cancel()  # someone else's doing: the task itself was never cancelled
    await future


@taskq.task(name="unit.swallows_then_raises", timeout=0.05, max_retries=0)
async def swallows_then_raises() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        raise asyncio.CancelledError("re-raised after cleaning up") from None


WOKEN: dict[str, asyncio.Event] = {}  # made on the loop of the test that waits on it


@taskq.task(name="unit.wakes_a_sibling")
async def wakes_a_sibling() -> int:
    await asyncio.sleep(0)
    WOKEN["sibling"].set()
    return 7


def claimed(store: Store, name: str, args: list | None = None) -> Task:
    store.enqueue(name, args or [])
    task = store.claim(WORKER)
    assert task is not None and task.name == name
    return task


def run(store: Store, task: Task, **kwargs) -> tuple[Status | None, Task]:
    outcome = execute(store, task, WORKER, TaskContext(store, task, WORKER), **kwargs)
    return outcome.status, store.require(task.id)


@pytest.mark.parametrize("name", ["unit.add", "unit.add_async"])
def test_a_returned_value_completes_the_task(sqlite_store: Store, name: str) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, name, [2, 3]))
    assert status is Status.COMPLETED
    assert (row.status, row.result, row.attempts) == (Status.COMPLETED, 5, 1)


@pytest.mark.parametrize("name", ["unit.add", "unit.add_async"])
def test_a_deferred_success_is_handed_over_and_not_written(sqlite_store: Store, name: str) -> None:
    handed: list[Completion] = []
    task = claimed(sqlite_store, name, [1, 1])
    outcome = execute(sqlite_store, task, WORKER, TaskContext(sqlite_store, task, WORKER), defer_success=handed.append)
    assert outcome.deferred and [c.result for c in handed] == [2]
    assert sqlite_store.require(task.id).status is Status.RUNNING  # the worker records it with its next claim


def test_an_error_is_retried_with_its_traceback(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.boom"))
    assert status is Status.PENDING and row.attempts == 1
    assert "ValueError: boom" in (row.error or "")


def test_an_async_error_fails_for_good_once_out_of_retries(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.boom_async"))
    assert status is Status.FAILED and "KeyError: 'missing'" in (row.error or "")


def test_a_result_that_is_not_json_fails_permanently(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.not_json"))
    assert status is Status.FAILED and "result must be JSON-serialisable" in (row.error or "")


def test_an_unknown_task_goes_back_uncounted_for_a_worker_that_knows_it(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.nobody_registered_this")
    outcome = execute(sqlite_store, task, WORKER, TaskContext(sqlite_store, task, WORKER))
    assert (outcome.status, outcome.event, outcome.error) == (Status.PENDING, "task_passed_on", None)
    row = sqlite_store.require(task.id)
    assert (row.status, row.attempts, row.error, row.worker_id) == (Status.PENDING, 0, None, None)
    (entry,) = row.error_log
    assert entry["passed_on"] is True and WORKER in entry["error"] and "is the module in `imports`?" in entry["error"]
    # The names this worker does know: the first few in order, and how many in all when there are more
    # (collecting other test files registers their tasks too).
    names = registered_names()
    shown = ", ".join(names[:PASS_ON_NAMES_SHOWN])
    assert f"(registered: {shown}" in entry["error"]
    assert len(names) <= PASS_ON_NAMES_SHOWN or f"({len(names)} in all)" in entry["error"]
    assert (row.run_after - datetime.fromisoformat(entry["at"])).total_seconds() == PASS_ON_DELAY_SECONDS


def test_a_failure_outcome_carries_its_exception_line_and_traceback_for_the_log(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.boom")
    outcome = execute(sqlite_store, task, WORKER, TaskContext(sqlite_store, task, WORKER))
    assert (outcome.event, outcome.error) == ("task_retry", "ValueError: boom")
    assert outcome.traceback is not None and outcome.traceback.startswith("Traceback (most recent call last)")
    assert 'raise ValueError("boom")' in outcome.traceback
    task = claimed(sqlite_store, "unit.forever")
    outcome = execute(sqlite_store, task, WORKER, TaskContext(sqlite_store, task, WORKER))
    assert (outcome.event, outcome.error) == ("task_failed", "TimeoutError: task exceeded its timeout of 0.05 s")


def test_a_coroutine_past_its_timeout_is_cancelled_and_failed_like_a_killed_sync_task(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.forever"))
    assert status is Status.FAILED
    assert row.error == "TimeoutError: task exceeded its timeout of 0.05 s"


def test_a_timeout_error_the_coroutine_raises_itself_is_its_own_error(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.own_timeout"))
    assert status is Status.FAILED and "the service timed out" in (row.error or "")


def test_cancelling_a_running_coroutine_from_another_thread_records_it_cancelled(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.forever")
    context = TaskContext(sqlite_store, task, WORKER)
    spec = lookup(task.name)

    async def cancel_soon() -> Call:
        threading.Timer(0.01, context.request_cancel).start()  # as the heartbeat thread does
        return await call_async(spec, task, context, timeout=5.0)

    result = asyncio.run(cancel_soon())
    outcome = settle(sqlite_store, task, WORKER, context, spec, result)
    assert outcome.status is Status.CANCELLED
    assert sqlite_store.require(task.id).status is Status.CANCELLED


def test_a_cancel_requested_before_the_coroutine_starts_still_cancels_it(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.forever")
    context = TaskContext(sqlite_store, task, WORKER)
    context.request_cancel()
    spec = lookup(task.name)
    result = asyncio.run(call_async(spec, task, context, timeout=5.0))
    assert type(result.error).__name__ == "TaskCancelled"


def test_current_inside_a_coroutine_is_its_own_context(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.current_inside")
    result = call(lookup(task.name), task, TaskContext(sqlite_store, task, WORKER))
    assert result == Call(task.id)


def test_retry_and_fail_from_a_coroutine_mean_what_they_mean_in_sync_tasks(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.asks_retry"))
    assert status is Status.PENDING and row.error is None
    assert 119 <= (row.run_after - row.created_at).total_seconds() <= 125
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.fails_for_good"))
    assert status is Status.FAILED and "no point" in (row.error or "")


@pytest.mark.parametrize("kind", list(RAISED))
def test_any_base_exception_from_a_coroutine_is_its_outcome_and_the_loop_goes_on(
    sqlite_store: Store, kind: str
) -> None:
    task = claimed(sqlite_store, "unit.raises_async", [kind])
    context = TaskContext(sqlite_store, task, WORKER)
    told: list[Call] = []

    async def beside_a_sibling() -> tuple[Call, str]:
        sibling = asyncio.create_task(asyncio.sleep(0.01, "sibling finished"))
        outcome = await call_async(lookup(task.name), task, context, timeout=5.0, on_return=told.append)
        return outcome, await sibling

    outcome, sibling = asyncio.run(beside_a_sibling())
    assert outcome.error is RAISED[kind] and told == [outcome] and sibling == "sibling finished"
    status = settle(sqlite_store, task, WORKER, context, lookup(task.name), outcome).status
    row = sqlite_store.require(task.id)
    assert status is Status.FAILED and f"{type(RAISED[kind]).__name__}" in (row.error or ""), row.error
    assert "in raises_async" in (row.error or ""), "the task's own traceback"


def test_a_cancelled_future_the_coroutine_awaits_fails_it_not_cancels_it(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.awaits_a_cancelled_future"))
    assert status is Status.FAILED and "CancelledError" in (row.error or "") and "await future" in (row.error or "")


def test_a_cancelled_error_after_taskq_cancelled_the_coroutine_is_taskqs_reason(sqlite_store: Store) -> None:
    status, row = run(sqlite_store, claimed(sqlite_store, "unit.swallows_then_raises"))
    assert status is Status.FAILED and row.error == "TimeoutError: task exceeded its timeout of 0.05 s"


def test_on_return_runs_in_the_step_the_coroutine_returns_in_before_anything_else_on_the_loop(
    sqlite_store: Store,
) -> None:
    """The function wakes a sibling and returns; the sibling is queued ahead of anything awaiting the function,
    yet `on_return` has run before the sibling gets the loop (it would block it, and a kill then lose the return)."""
    order: list[str] = []

    async def sibling() -> None:
        await WOKEN.setdefault("sibling", asyncio.Event()).wait()
        order.append("sibling ran")

    task = claimed(sqlite_store, "unit.wakes_a_sibling")
    context = TaskContext(sqlite_store, task, WORKER)

    async def both() -> Call:
        WOKEN.pop("sibling", None)
        waiting = asyncio.create_task(sibling())
        outcome = await call_async(lookup(task.name), task, context, 5.0, on_return=lambda c: order.append("told"))
        order.append("awaiter resumed")
        await waiting
        return outcome

    assert asyncio.run(both()) == Call(7)
    assert order == ["told", "sibling ran", "awaiter resumed"]


@pytest.mark.parametrize("name", ["unit.add", "unit.add_async"])
def test_a_success_is_announced_once_as_it_returns_then_kept(sqlite_store: Store, name: str) -> None:
    told: list[Completion] = []
    kept: list[Completion] = []
    task = claimed(sqlite_store, name, [2, 2])
    context = TaskContext(sqlite_store, task, WORKER)
    outcome = execute(sqlite_store, task, WORKER, context, defer_success=kept.append, announce=told.append)
    assert outcome.deferred and told == kept and [c.result for c in told] == [4]
    assert sqlite_store.require(task.id).status is Status.RUNNING


def test_a_failure_is_announced_never_and_recorded_at_once(sqlite_store: Store) -> None:
    told: list[Completion] = []
    task = claimed(sqlite_store, "unit.boom_async")
    context = TaskContext(sqlite_store, task, WORKER)
    outcome = execute(sqlite_store, task, WORKER, context, defer_success=told.append, announce=told.append)
    assert outcome.status is Status.FAILED and told == []


def test_the_timeout_reason_is_the_executors_own(sqlite_store: Store) -> None:
    task = claimed(sqlite_store, "unit.forever")
    result = asyncio.run(call_async(lookup(task.name), task, TaskContext(sqlite_store, task, WORKER), timeout=0.01))
    assert isinstance(result.error, TaskTimedOut)
