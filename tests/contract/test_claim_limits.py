"""Concurrency caps in the claim (issue 15 point 4), on SQLite and PostgreSQL alike: @task(max_concurrency=N)
and a queue's max_concurrency never let more than N tasks run at once, counted in the claim itself."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from taskq.clock import utc_now
from taskq.model import ClaimLimits, Completion, Status, Task
from taskq.store import Store

CAPPED = ClaimLimits(by_name={"cap.two": 2})


def running(store: Store) -> Counter[str]:
    return Counter(task.name for task in store.list(status=Status.RUNNING, limit=1000))


def names(tasks: list[Task]) -> list[str]:
    return [task.name for task in tasks]


def test_a_batch_takes_no_more_than_the_free_slots_and_keeps_claim_order(store: Store) -> None:
    now = utc_now()
    ids = {
        name: [store.enqueue(name, [i], now=now - timedelta(seconds=10 - i)).id for i in range(4)]
        for name in ("cap.two", "free")
    }
    batch = store.claim_batch("w", limit=10, limits=CAPPED)
    # Oldest first across both names; the third and fourth cap.two are passed over, not blocking the rest.
    assert [task.id for task in batch] == [ids["cap.two"][0], ids["free"][0], ids["cap.two"][1], *ids["free"][1:]]
    assert running(store) == {"cap.two": 2, "free": 4}
    assert store.claim_batch("w", limit=10, limits=CAPPED) == []
    # Without the caps the same store hands them out: the cap is the claim's, not the rows'.
    assert names(store.claim_batch("w", limit=10)) == ["cap.two", "cap.two"]


def test_a_capped_name_at_capacity_does_not_block_lower_priority_tasks_behind_it(store: Store) -> None:
    for i in range(5):
        store.enqueue("cap.two", [i], priority=10)
    low = [store.enqueue("free", [i]).id for i in range(3)]
    assert names(store.claim_batch("w", limit=2, limits=CAPPED)) == ["cap.two", "cap.two"]
    # One at a time, as a busy worker claims: each skips the three capped rows still pending ahead.
    assert [store.claim("w", limits=CAPPED).id for _ in range(3)] == low  # type: ignore[union-attr]
    assert store.claim("w", limits=CAPPED) is None


def test_a_capped_task_with_a_free_slot_keeps_its_place_in_priority_order(store: Store) -> None:
    free = [store.enqueue("free", [i], priority=1).id for i in range(3)]
    urgent = store.enqueue("cap.two", priority=5).id
    assert [task.id for task in store.claim_batch("w", limit=2, limits=CAPPED)] == [urgent, free[0]]


def test_queue_caps_count_per_queue_and_only_for_the_queues_served(store: Store) -> None:
    limits = ClaimLimits(by_queue={"api": 3})
    for i in range(5):
        store.enqueue("a", [i], queue="api")
        store.enqueue("b", [i], queue="api")
        store.enqueue("c", [i], queue="batch")
    assert Counter(t.queue for t in store.claim_batch("w", ["api"], limit=10, limits=limits)) == {"api": 3}
    assert store.claim_batch("w", ["api"], limit=10, limits=limits) == []
    # A worker serving every queue honours the api cap too, and takes the rest.
    assert Counter(t.queue for t in store.claim_batch("w", limit=20, limits=limits)) == {"batch": 5}


def test_name_and_queue_caps_together(store: Store) -> None:
    limits = ClaimLimits(by_name={"cap.two": 2}, by_queue={"api": 3})
    for i in range(4):
        store.enqueue("cap.two", [i], queue="api")
        store.enqueue("other", [i], queue="api")
    batch = store.claim_batch("w", limit=10, limits=limits)
    assert Counter(names(batch)) == {"cap.two": 2, "other": 1}


def test_slots_free_up_after_complete_fail_and_release(store: Store) -> None:
    for i in range(6):
        store.enqueue("cap.two", [i], max_retries=0)
    first, second = store.claim_batch("w", limit=5, limits=CAPPED)
    assert store.claim("w", limits=CAPPED) is None
    assert store.complete(first.id, "ok", worker_id="w", attempt=first.attempts)
    third = store.claim("w", limits=CAPPED)
    assert third is not None and store.claim("w", limits=CAPPED) is None
    assert store.fail(second.id, "boom", worker_id="w", attempt=second.attempts) is Status.FAILED
    fourth = store.claim("w", limits=CAPPED)
    assert fourth is not None and store.claim("w", limits=CAPPED) is None
    assert store.release([third.id, fourth.id], worker_id="w") == 2
    assert len(store.claim_batch("w", limit=5, limits=CAPPED)) == 2
    assert running(store) == {"cap.two": 2}


def test_finish_and_claim_frees_the_slot_of_what_it_records_before_claiming(store: Store) -> None:
    for i in range(4):
        store.enqueue("cap.two", [i])
    for i in range(3):
        store.enqueue("free", [i])
    # The worker's loop, through the SQLite driver path where there is one.
    recorded, batch = store.finish_and_claim("w", [], limit=1, limits=CAPPED)
    assert names(batch) == ["cap.two"]
    recorded, more = store.finish_and_claim("w", [], limit=8, limits=CAPPED)
    assert names(more) == ["cap.two", "free", "free", "free"]
    done = [Completion(t.id, t.attempts, None, utc_now(), has_follow_up=False) for t in (*batch, *more[:1])]
    recorded, after = store.finish_and_claim("w", done, limit=8, limits=CAPPED)
    assert recorded == [t.id for t in (*batch, *more[:1])]
    assert names(after) == ["cap.two", "cap.two"]
    assert running(store) == {"cap.two": 2, "free": 3}


def test_no_caps_means_the_plain_claim(store: Store) -> None:
    ids = [store.enqueue("cap.two", [i]).id for i in range(3)]
    assert [t.id for t in store.claim_batch("w", limit=2, limits=ClaimLimits())] == ids[:2]
    # A cap on a queue this worker does not serve cannot apply either.
    assert [t.id for t in store.claim_batch("w", ["default"], limit=2, limits=ClaimLimits(by_queue={"x": 1}))] == [
        ids[2]
    ]


def test_concurrent_claimers_never_exceed_a_cap(store: Store) -> None:
    """Eight threads (their own connections) claim at once, several rounds: the count and the claim must be
    one atomic step, or two claimers both see a free slot (on PostgreSQL SKIP LOCKED alone allows that)."""
    limits = ClaimLimits(by_name={"cap.two": 2}, by_queue={"narrow": 3})
    store.enqueue_many([{"name": "cap.two", "args": [i]} for i in range(40)])
    store.enqueue_many([{"name": "wide", "args": [i], "queue": "narrow"} for i in range(40)])
    threads = 8
    for _ in range(3):
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def claim(number: int, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(10)
                store.claim_batch(f"w{number}", limit=3, limits=limits)
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        workers = [threading.Thread(target=claim, args=(n,)) for n in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(30)
        assert errors == []
        assert running(store) == {"cap.two": 2, "wide": 3}
        # Free every slot again for the next round.
        for task in store.list(status=Status.RUNNING, limit=1000):
            assert store.complete(task.id, None, worker_id=task.worker_id, attempt=task.attempts + 1)
