"""TaskContext: throttled progress, the buffered progress of coroutines, cancellation hooks, current()."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskq.context import NotInTask, TaskCancelled, TaskContext, current
from taskq.model import Task
from taskq.store import Store

WORKER = "host:1:worker-1:boot:1"


@pytest.fixture
def running(sqlite_store: Store) -> tuple[Store, Task]:
    sqlite_store.enqueue("unit.anything")
    task = sqlite_store.claim(WORKER)
    assert task is not None
    return sqlite_store, task


def test_progress_is_written_at_once_then_throttled_and_the_last_value_flushed(running) -> None:
    store, task = running
    context = TaskContext(store, task, WORKER)
    context.progress(10, "first")
    assert store.require(task.id).progress == 10
    context.progress(20)
    context.progress(30, "third")  # within the throttle interval: kept, not written
    assert store.require(task.id).progress == 10
    context.flush_progress()
    row = store.require(task.id)
    assert (row.progress, row.progress_message) == (30, "third")
    context.flush_progress()  # nothing new: no write, nothing changes
    assert store.require(task.id).progress == 30


def test_a_coroutines_progress_is_only_kept_for_the_heartbeat_to_take(running) -> None:
    store, task = running
    context = TaskContext(store, task, WORKER)
    context.buffer_progress = True
    context.progress(50, "half")
    assert store.require(task.id).progress == 0
    assert context.take_progress() == (task.id, 50, "half")
    assert context.take_progress() is None


def test_a_cancel_hook_runs_once_requested_even_if_bound_afterwards(running) -> None:
    store, task = running
    context = TaskContext(store, task, WORKER)
    calls: list[str] = []
    context.on_cancel(lambda: calls.append("early"))
    assert calls == []
    context.request_cancel()
    assert calls == ["early"] and context.cancelled
    late = TaskContext(store, task, WORKER)
    late.request_cancel()
    late.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]
    with pytest.raises(TaskCancelled):
        late.check_cancelled()


def test_current_is_the_context_of_this_thread_or_coroutine_only(running) -> None:
    store, task = running
    context = TaskContext(store, task, WORKER)
    with pytest.raises(NotInTask):
        current()
    seen: list[object] = []
    with context:
        assert current() is context
        thread = threading.Thread(target=lambda: seen.append(_current_or_none()))
        thread.start()
        thread.join()

    async def two_tasks() -> list[object]:
        other = TaskContext(store, task, WORKER)

        async def inside(ctx: TaskContext) -> object:
            with ctx:
                await asyncio.sleep(0.01)  # the other coroutine sets its own context meanwhile
                return current()

        return list(await asyncio.gather(inside(context), inside(other)))

    assert seen == [None]
    first, second = asyncio.run(two_tasks())
    assert first is context and second is not context


def _current_or_none() -> object:
    try:
        return current()
    except NotInTask:
        return None


def test_cancel_event_is_set_by_a_request_made_before_or_after_it_is_first_asked_for(running) -> None:
    store, task = running
    early, late = TaskContext(store, task, WORKER), TaskContext(store, task, WORKER)
    waiting = early.cancel_event
    assert not waiting.is_set() and not early.cancelled
    for context in (early, late):
        context.request_cancel()
    assert waiting.is_set() and early.cancel_event is waiting
    assert late.cancelled and late.cancel_event.wait(0)
    with pytest.raises(TaskCancelled):
        late.check_cancelled()
