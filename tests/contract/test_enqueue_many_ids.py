"""Each id `enqueue_many` returns is the id of the row made from that request, on SQLite and PostgreSQL.

On SQLite the plain rows of a batch go in as one driver-level executemany and their ids are taken as the
consecutive rowids ending at the last one (store/enqueue.py says why that holds); on PostgreSQL they come
back from INSERT ... RETURNING in parameter order. Rows are told apart by their args, so a wrong id reads
another request's row. Duplicates keep their behaviour: the plain rows go in first, then each row with a
dedup key in order, the active holder (or an earlier row of the batch) returned for a key already held.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from sqlalchemy import delete

import taskq
from taskq.model import Enqueued, Status, TaskRequest
from taskq.schema import tasks
from taskq.store import Store

SPAWN = multiprocessing.get_context("spawn")


def args_of(store: Store, enqueued: list[Enqueued]) -> list[Any]:
    return [store.require(one.id).args for one in enqueued]


def test_ids_are_the_rows_own_with_dedup_keys_refused_and_repeated_in_the_batch(store: Store) -> None:
    held = store.enqueue("taskq.echo", ["held"], dedup_key="held")
    batch = [
        TaskRequest("taskq.echo", [0]),
        TaskRequest("taskq.echo", [1], dedup_key="held"),  # an active task holds it: refused by the index
        TaskRequest("taskq.echo", [2]),
        TaskRequest("taskq.echo", [3], dedup_key="new"),
        TaskRequest("taskq.echo", [4]),
        TaskRequest("taskq.echo", [5], dedup_key="new"),  # the row two before took it
        TaskRequest("taskq.echo", [6]),
    ]
    out = store.enqueue_many(batch)
    assert [one.deduplicated for one in out] == [False, True, False, False, False, True, False]
    assert out[1].id == held.id and out[5].id == out[3].id
    assert args_of(store, out) == [[0], ["held"], [2], [3], [4], [3], [6]]
    plain = [out[i].id for i in (0, 2, 4, 6)]
    # As before the driver path: plain rows first, in order, then the rows with a key.
    assert plain == sorted(plain) and max(plain) < out[3].id
    # A refused INSERT may use up an id on SQLite (AUTOINCREMENT): the next batch's ids still hold.
    after = store.enqueue_many([TaskRequest("taskq.echo", [f"after-{i}"]) for i in range(50)])
    assert args_of(store, after) == [[f"after-{i}"] for i in range(50)]
    assert min(one.id for one in after) > max(one.id for one in out)


def test_ids_hold_after_the_newest_rows_were_deleted(store: Store) -> None:
    first = store.enqueue_many([TaskRequest("taskq.echo", [i]) for i in range(20)])
    newest = [one.id for one in first[10:]]
    store.write(lambda conn: conn.execute(delete(tasks).where(tasks.c.id.in_(newest))))
    again = store.enqueue_many([TaskRequest("taskq.echo", [f"again-{i}"]) for i in range(20)])
    assert min(one.id for one in again) > max(newest)  # ids are never reused
    assert args_of(store, again) == [[f"again-{i}"] for i in range(20)]


def test_ids_hold_in_the_callers_transaction_after_its_own_inserts(store: Store) -> None:
    with store.engine.connect() as conn:
        store.begin_write(conn)
        before = store.enqueue("taskq.echo", ["caller"], connection=conn)
        out = store.enqueue_many([TaskRequest("taskq.echo", [i]) for i in range(30)], connection=conn)
        conn.commit()
    assert store.require(before.id).args == ["caller"]
    assert args_of(store, out) == [[i] for i in range(30)]
    with store.engine.connect() as conn:
        store.begin_write(conn)
        gone = store.enqueue_many([TaskRequest("taskq.echo", ["rolled back"]) for _ in range(5)], connection=conn)
        conn.rollback()
    assert all(store.get(one.id) is None for one in gone)


def _enqueue_batches(url: str, tag: int, batches: int, size: int, barrier: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    barrier.wait()
    out: list[tuple[int, list[Any]]] = []
    for batch in range(batches):
        requests = [TaskRequest("taskq.echo", [tag, batch, i]) for i in range(size)]
        out += [(one.id, [tag, batch, i]) for i, one in enumerate(store.enqueue_many(requests))]
    results.put(out)
    store.dispose()


def test_concurrent_batches_from_4_processes_each_get_their_own_rows(store: Store, database_url: str) -> None:
    processes, batches, size = 4, 25, 40
    barrier, results = SPAWN.Barrier(processes), SPAWN.Queue()
    children = [
        SPAWN.Process(target=_enqueue_batches, args=(database_url, tag, batches, size, barrier, results))
        for tag in range(processes)
    ]
    for child in children:
        child.start()
    returned = [pair for _ in children for pair in results.get(timeout=240)]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert len(returned) == processes * batches * size
    assert len({task_id for task_id, _ in returned}) == len(returned)
    rows = {task.id: task.args for task in store.list(status=Status.PENDING, limit=len(returned) + 1)}
    assert {task_id: rows[task_id] for task_id, _ in returned} == dict(returned)
