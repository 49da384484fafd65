"""Store lookups web apps use to find their jobs again: by dedup key, and what is still active."""

from __future__ import annotations

from taskq.model import Status
from taskq.store import Store


def test_latest_by_dedup_key_finds_the_active_task_then_the_newest_finished_one(store: Store) -> None:
    assert store.latest_by_dedup_key("report:7") is None
    first = store.enqueue("taskq.echo", dedup_key="report:7")
    store.enqueue("taskq.echo", dedup_key="report:8")
    assert store.latest_by_dedup_key("report:7").id == first.id  # type: ignore[union-attr]

    claimed = store.claim("w")
    assert claimed is not None and claimed.id == first.id
    assert store.complete(first.id, {"pages": 3}, worker_id="w")
    finished = store.latest_by_dedup_key("report:7")
    assert finished is not None and (finished.status, finished.result) == (Status.COMPLETED, {"pages": 3})

    second = store.enqueue("taskq.echo", dedup_key="report:7")
    assert not second.deduplicated
    assert store.latest_by_dedup_key("report:7").id == second.id  # type: ignore[union-attr]


def test_active_lists_unfinished_tasks_oldest_first_filtered_by_name(store: Store) -> None:
    done = store.enqueue("taskq.echo")
    assert store.claim("w").id == done.id  # type: ignore[union-attr]
    assert store.complete(done.id, None, worker_id="w")
    sleeping = store.enqueue("taskq.sleep")
    echo = store.enqueue("taskq.echo")
    cancelled = store.enqueue("taskq.echo")
    store.cancel(cancelled.id)
    assert store.claim("w").id == sleeping.id  # type: ignore[union-attr]

    assert [task.id for task in store.active()] == [sleeping.id, echo.id]
    assert [task.id for task in store.active(names=["taskq.echo"])] == [echo.id]
    assert [task.id for task in store.active(limit=1)] == [sleeping.id]
    assert store.active(names=[]) == []
