"""The handle enqueue returns: still the old Enqueued value, now also a way to wait for the task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pool_tasks import gives_up, record_run
from poolkit import PoolProcess

import taskq
from taskq import api
from taskq.model import Enqueued, Status
from taskq.store import Store


def test_the_handle_equals_and_shows_as_the_enqueued_value_it_replaces(store: Store) -> None:
    plain = store.enqueue("taskq.echo", [1])
    assert plain == Enqueued(plain.id) and hash(plain) == hash(Enqueued(plain.id))
    assert repr(plain) == f"Enqueued(id={plain.id}, deduplicated=False)"
    first = store.enqueue("taskq.echo", dedup_key="k")
    again = store.enqueue("taskq.echo", dedup_key="k")
    assert again == Enqueued(first.id, deduplicated=True) and again.status() is Status.PENDING
    batch = store.enqueue_many([{"name": "taskq.echo"}, {"name": "taskq.echo", "dedup_key": "k"}])
    assert batch[1] == Enqueued(first.id, True) and batch[0].status() is Status.PENDING


def test_status_result_wait_and_cancel_without_a_worker(store: Store) -> None:
    handle = store.enqueue("taskq.echo", ["hi"])
    assert handle.status() is Status.PENDING
    with pytest.raises(taskq.TaskNotFinished, match="still pending"):
        handle.result()  # does not wait by default
    with pytest.raises(TimeoutError):  # TaskNotFinished is a TimeoutError too
        handle.wait(timeout=0.1)
    assert handle.cancel() is Status.CANCELLED
    assert handle.wait(timeout=0).status is Status.CANCELLED
    with pytest.raises(taskq.TaskFailed, match="cancelled") as failed:
        handle.result()
    assert failed.value.task.id == handle.id


def test_a_hand_made_enqueued_says_it_has_no_store() -> None:
    with pytest.raises(taskq.TaskqError, match="not returned by a store"):
        Enqueued(5).status()


@pytest.fixture
def default_store(database_url: str) -> Iterator[Store]:
    """`task.enqueue(...)` goes to the default store: point it at the test's database, then forget it."""
    yield taskq.configure(database_url)
    api.default_store().dispose()
    api._default = None


def test_task_enqueue_handle_waits_for_a_real_worker(tmp_path, database_url, default_store, pools) -> None:
    pool = PoolProcess(tmp_path, database_url, "--workers", "1")
    pools.append(pool)
    doubled = record_run.enqueue(21)
    assert doubled.wait(timeout=30).status is Status.COMPLETED and doubled.result() == 42
    refused = gives_up.enqueue()
    with pytest.raises(taskq.TaskFailed, match=r"failed: .*Fail: the input can never work"):
        refused.result(timeout=30)
    assert refused.status() is Status.FAILED
