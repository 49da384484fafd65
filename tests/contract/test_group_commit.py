"""Store.finish_and_claim_for_many (issue 21 point 1, bench/writer_design.py): one SQLite transaction for
several workers' rounds, each recorded and claimed in that worker's own name."""

from __future__ import annotations

from taskq.clock import utc_now
from taskq.model import Completion, Status, Task
from taskq.store import Store
from taskq.store.claim import tasks_from_raw


def done(task: Task) -> Completion:
    return Completion(task.id, task.attempts, {"n": task.args[0]}, utc_now(), has_follow_up=False)


def test_rounds_record_and_claim_in_each_workers_name(sqlite_store: Store) -> None:
    ids = [sqlite_store.enqueue("g.task", [i]).id for i in range(6)]
    [(_, first), (_, second)] = sqlite_store.finish_and_claim_for_many([("a", [], 2), ("b", [], 3)])
    assert [t.id for t in first] == ids[:2] and [t.id for t in second] == ids[2:5]
    assert {t.worker_id for t in first} == {"a"} and {t.worker_id for t in second} == {"b"}
    # a's outcome claimed under b's name is not b's to record: only the owner's round records a task.
    rounds = [("b", [done(first[0]), *map(done, second)], 0), ("a", [done(first[1])], 1)]
    [(recorded_b, none), (recorded_a, last)] = sqlite_store.finish_and_claim_for_many(rounds)
    assert recorded_b == ids[2:5] and none == []
    assert recorded_a == [ids[1]] and [t.id for t in last] == [ids[5]]
    statuses = {t.id: t.status for t in sqlite_store.list(limit=10)}
    assert statuses[ids[0]] == Status.RUNNING
    assert all(statuses[i] == Status.COMPLETED for i in ids[1:5])
    assert sqlite_store.get(ids[2]).result == {"n": 2}


def test_raw_rows_decode_in_the_worker_as_the_writer_would(sqlite_store: Store) -> None:
    ids = [sqlite_store.enqueue("g.task", [i], {"k": [i]}).id for i in range(3)]
    [(_, rows)] = sqlite_store.finish_and_claim_for_many([("a", [], 3)], decode=False)
    tasks = tasks_from_raw(sqlite_store.claimed_columns(), rows)
    assert [(t.id, t.args, t.kwargs, t.attempts, t.worker_id) for t in tasks] == [
        (i, [n], {"k": [n]}, 1, "a") for n, i in enumerate(ids)
    ]
