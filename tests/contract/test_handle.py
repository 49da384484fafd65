"""The handle enqueue returns, on SQLite and PostgreSQL: still the old Enqueued value, now also a way to wait
for the task."""

from __future__ import annotations

import pytest

import taskq
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
