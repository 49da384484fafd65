"""The store's contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskq.clock import utc_now
from taskq.lifecycle import PASS_ON_GRACE_SECONDS, PASS_ON_TRIES, pass_on_delay
from taskq.model import (
    ClaimLimits,
    Completion,
    Interrupted,
    Interruption,
    InvalidTaskArguments,
    InvalidTransition,
    SettledCounts,
    Status,
    TaskNotFound,
    TaskRequest,
)
from taskq.store import Store


def test_enqueue_then_get_roundtrips_every_field(store: Store) -> None:
    enqueued = store.enqueue(
        "taskq.echo",
        [1, "a"],
        {"k": [1, 2]},
        priority=5,
        dedup_key="x",
        max_retries=2,
        queue="q",
        timeout=9.5,
    )
    assert not enqueued.deduplicated
    task = store.require(enqueued.id)
    assert (task.name, task.args, task.kwargs, task.priority, task.queue) == (
        "taskq.echo",
        [1, "a"],
        {"k": [1, 2]},
        5,
        "q",
    )
    assert (task.status, task.max_retries, task.timeout, task.dedup_key) == (Status.PENDING, 2, 9.5, "x")
    assert task.created_at.tzinfo is UTC and task.run_after.tzinfo is UTC


def test_dedup_key_returns_existing_active_task_then_frees_after_completion(store: Store) -> None:
    first = store.enqueue("taskq.echo", dedup_key="job-1")
    second = store.enqueue("taskq.echo", dedup_key="job-1")
    assert second.id == first.id and second.deduplicated
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == first.id
    assert store.enqueue("taskq.echo", dedup_key="job-1").deduplicated  # running is still active
    assert store.complete(first.id, "ok", worker_id="w")
    third = store.enqueue("taskq.echo", dedup_key="job-1")
    assert third.id != first.id and not third.deduplicated


def test_enqueue_rejects_non_json_arguments_and_writes_nothing(store: Store) -> None:
    with pytest.raises(InvalidTaskArguments, match="JSON"):
        store.enqueue("taskq.echo", [object()])
    with pytest.raises(InvalidTaskArguments, match="kwargs"):
        store.enqueue("taskq.echo", kwargs={"when": datetime.now()})
    with pytest.raises(InvalidTaskArguments):
        store.enqueue_many([TaskRequest("taskq.echo", [1]), TaskRequest("taskq.echo", [{1, 2}])])
    assert sum(store.stats().values()) == 0


def test_enqueue_many_is_one_batch_with_dedup(store: Store) -> None:
    results = store.enqueue_many(
        [TaskRequest("taskq.echo", [i]) for i in range(5)]
        + [TaskRequest("taskq.echo", dedup_key="d"), TaskRequest("taskq.echo", dedup_key="d")]
    )
    assert len(results) == 7 and len({r.id for r in results}) == 6
    assert [r.deduplicated for r in results[-2:]] == [False, True]
    assert [store.require(r.id).args for r in results[:5]] == [[i] for i in range(5)]


def test_transactional_enqueue_rolls_back_with_the_callers_transaction(store: Store) -> None:
    with store.engine.connect() as connection:
        store.begin_write(connection)
        kept = store.enqueue("taskq.echo", [1], connection=connection)
        connection.commit()
    with store.engine.connect() as connection:
        store.begin_write(connection)
        dropped = store.enqueue("taskq.echo", [2], connection=connection)
        connection.rollback()
    assert store.get(kept.id) is not None
    assert store.get(dropped.id) is None


def test_claim_orders_by_priority_then_age(store: Store) -> None:
    now = utc_now()
    low_old = store.enqueue("taskq.echo", priority=0, now=now - timedelta(seconds=3)).id
    high = store.enqueue("taskq.echo", priority=10, now=now - timedelta(seconds=1)).id
    low_new = store.enqueue("taskq.echo", priority=0, now=now - timedelta(seconds=2)).id
    order = [store.claim("w").id for _ in range(3)]  # type: ignore[union-attr]
    assert order == [high, low_old, low_new]
    assert store.claim("w") is None


def test_claim_honours_run_after_in_utc_whatever_the_offset(store: Store) -> None:
    now = utc_now()
    plus_two = timezone(timedelta(hours=2))
    future = store.enqueue("taskq.echo", run_after=(now + timedelta(minutes=5)).astimezone(plus_two)).id
    past = store.enqueue("taskq.echo", run_after=(now - timedelta(minutes=5)).astimezone(plus_two)).id
    delayed = store.enqueue("taskq.echo", delay=60).id
    claimed = store.claim("w", now=now)
    assert claimed is not None and claimed.id == past
    assert store.claim("w", now=now) is None
    assert store.require(future).run_after == now + timedelta(minutes=5)
    later = store.claim("w", now=now + timedelta(minutes=6))
    assert later is not None and later.id in (future, delayed)


def test_claim_sets_running_fields_and_filters_queues(store: Store) -> None:
    other = store.enqueue("taskq.echo", queue="other").id
    mine = store.enqueue("taskq.echo", queue="mine").id
    now = utc_now()
    task = store.claim("host:1:worker-1", ["mine"], now=now, lease_seconds=10)
    assert task is not None and task.id == mine
    assert (task.status, task.attempts, task.worker_id) == (Status.RUNNING, 1, "host:1:worker-1")
    # The claim does not count the attempt yet: the row holds it from the outcome (or a recorded start) on.
    assert task.started_at is None and task.lease_until == now + timedelta(seconds=10)
    assert store.get(task.id).attempts == 0
    assert store.claim("w", ["mine"]) is None
    assert store.claim("w", ["mine", "other"]).id == other  # type: ignore[union-attr]


def test_claim_batch_takes_several_in_order(store: Store) -> None:
    ids = [store.enqueue("taskq.echo", [i]).id for i in range(5)]
    batch = store.claim_batch("w", limit=3)
    assert [t.id for t in batch] == ids[:3]
    assert [t.id for t in store.claim_batch("w", limit=10)] == ids[3:]


def test_fail_retries_with_exponential_backoff_then_fails_keeping_the_traceback(store: Store) -> None:
    task_id = store.enqueue("taskq.echo", max_retries=3).id
    now = utc_now()
    for expected_delay in (2, 4, 8):
        claimed = store.claim("w", now=now)
        assert claimed is not None and claimed.id == task_id
        assert store.fail(task_id, f"boom {expected_delay}", worker_id="w", now=now) is Status.PENDING
        task = store.require(task_id)
        assert task.run_after == now + timedelta(seconds=expected_delay)
        assert store.claim("w", now=now + timedelta(seconds=expected_delay - 0.5)) is None
        now = now + timedelta(seconds=expected_delay)
    assert store.claim("w", now=now) is not None
    try:
        raise RuntimeError("final straw")
    except RuntimeError as error:
        assert store.fail(task_id, error, worker_id="w", now=now) is Status.FAILED
    task = store.require(task_id)
    assert task.status is Status.FAILED and task.attempts == 4
    assert "Traceback" in task.error and "final straw" in task.error  # type: ignore[operator]
    assert [entry["error"] for entry in task.error_log[:3]] == ["boom 2", "boom 4", "boom 8"]
    assert task.finished_at == now


def test_error_log_names_each_failed_attempts_worker_and_start(store: Store) -> None:
    task_id = store.enqueue("taskq.echo", max_retries=1).id
    first = utc_now()
    store.claim("w1", now=first)
    store.fail(task_id, "one", worker_id="w1", started_at=first, now=first + timedelta(seconds=1))
    second = first + timedelta(seconds=5)
    store.claim("w2", now=second)
    store.fail(task_id, "two", worker_id="w2", started_at=second, now=second + timedelta(seconds=1))
    log = store.require(task_id).error_log
    assert [(entry["worker_id"], entry["started_at"]) for entry in log] == [
        ("w1", first.isoformat()),
        ("w2", second.isoformat()),
    ]


def test_outcomes_from_a_worker_that_lost_the_task_are_ignored(store: Store) -> None:
    task_id = store.enqueue("taskq.echo").id
    store.claim("w1")
    assert not store.complete(task_id, 1, worker_id="w2")
    assert store.fail(task_id, "x", worker_id="w2") is None
    assert store.complete(task_id, 1, worker_id="w1")
    assert store.require(task_id).result == 1


def test_pass_on_hands_back_uncounted_with_growing_delays_then_fails_and_finishes_the_parent(store: Store) -> None:
    parent_id = store.enqueue("taskq.echo", priority=100).id
    parent = store.claim("w", now=utc_now())
    assert parent is not None and parent.id == parent_id
    children = [TaskRequest("app.not_deployed_here", [1])]
    assert store.wait_for_children(parent_id, children, worker_id="w", attempt=1) is not None
    (child,) = store.children_results(parent_id)
    now = utc_now()
    for tries in range(1, PASS_ON_TRIES):
        claimed = store.claim("w", now=now)
        assert claimed is not None and claimed.id == child.id
        if tries == 2:  # a caller that had recorded the start: the attempt is uncounted again, as a release does
            assert store.mark_started(child.id, worker_id="w", started_at=now)
        why = "w does not know it"
        assert store.pass_on(child.id, why, worker_id="other", attempt=claimed.attempts, now=now) is None
        assert store.pass_on(child.id, why, worker_id="w", attempt=claimed.attempts, now=now) is Status.PENDING
        row = store.require(child.id)
        assert (row.status, row.attempts, row.worker_id, row.lease_until, row.started_at, row.error) == (
            Status.PENDING,
            0,
            None,
            None,
            None,
            None,
        )
        assert row.run_after == now + timedelta(seconds=pass_on_delay(tries))
        assert row.error_log[-1]["passed_on"] is True and f"({tries} of {PASS_ON_TRIES})" in row.error_log[-1]["error"]
        assert store.claim("w", now=row.run_after - timedelta(milliseconds=1)) is None  # not before its time
        now = row.run_after
    claimed = store.claim("w", now=now)
    assert claimed is not None
    failed = store.pass_on(child.id, "w does not know it", worker_id="w", attempt=claimed.attempts, now=now)
    assert failed is Status.FAILED
    row = store.require(child.id)
    expected = f"no worker knows task 'app.not_deployed_here' after {PASS_ON_TRIES} tries: w does not know it"
    assert (row.status, row.attempts, row.error, row.finished_at) == (Status.FAILED, 1, expected, now)
    assert [bool(entry.get("passed_on")) for entry in row.error_log] == [True] * (PASS_ON_TRIES - 1) + [False]
    assert {entry["worker_id"] for entry in row.error_log} == {"w"}  # who handed it back, each time
    assert store.require(parent_id).status is Status.FAILED  # its only child failed for good


@pytest.mark.parametrize("how", ["claim_batch", "finish_and_claim", "capped"])
def test_a_claim_avoiding_names_takes_them_only_once_they_have_waited_the_grace(store: Store, how: str) -> None:
    now = utc_now()
    lacking = store.enqueue("app.not_here", priority=5, run_after=now).id
    known = store.enqueue("taskq.echo", run_after=now).id
    grace = timedelta(seconds=PASS_ON_GRACE_SECONDS)

    def claim(at: datetime) -> list[int]:
        avoid = ["app.not_here", "app.neither"]
        if how == "claim_batch":
            return [t.id for t in store.claim_batch("w", limit=5, now=at, avoid=avoid)]
        limits = ClaimLimits({"app.not_here": 3}) if how == "capped" else None
        _, claimed = store.finish_and_claim("w", [], limit=5, now=at, avoid=avoid, limits=limits)
        return [t.id for t in claimed]

    # Just ready: a worker that knows the name goes first; the known task behind it is not held back.
    assert claim(now) == [known]
    assert claim(now + grace - timedelta(milliseconds=1)) == []
    assert claim(now + grace) == [lacking]


def test_cancel_pending_at_once_and_running_cooperatively(store: Store) -> None:
    pending = store.enqueue("taskq.echo").id
    running = store.enqueue("taskq.echo").id
    assert store.cancel(pending) is Status.CANCELLED
    assert store.claim("w").id == running  # type: ignore[union-attr]
    assert store.cancel(running) is Status.RUNNING
    assert store.require(running).cancel_requested
    assert store.renew_leases("w", [running], lease_seconds=30) == [running]
    assert store.mark_cancelled(running, worker_id="w")
    assert store.require(running).status is Status.CANCELLED
    with pytest.raises(TaskNotFound):
        store.cancel(999_999)


def test_retry_moves_failed_and_cancelled_back_to_pending_only(store: Store) -> None:
    task_id = store.enqueue("taskq.echo", max_retries=0).id
    store.claim("w")
    store.fail(task_id, "x", worker_id="w")
    store.retry(task_id)
    task = store.require(task_id)
    assert task.status is Status.PENDING and task.attempts == 0
    with pytest.raises(InvalidTransition):
        store.retry(task_id)
    with pytest.raises(TaskNotFound):
        store.retry(424242)


def test_list_filters_and_stats_count_every_status(store: Store) -> None:
    a = store.enqueue("taskq.echo", queue="q1").id
    store.enqueue("taskq.sleep", queue="q2")
    store.cancel(a)
    assert [t.id for t in store.list(status="cancelled")] == [a]
    assert [t.name for t in store.list(name="taskq.sleep")] == ["taskq.sleep"]
    assert [t.queue for t in store.list(queue="q2")] == ["q2"]
    assert len(store.list(limit=1)) == 1
    assert store.stats() == {
        "pending": 1,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }


def test_purge_deletes_only_old_finished_tasks(store: Store) -> None:
    now = utc_now()
    old = store.enqueue("taskq.echo").id
    store.cancel(old, now=now - timedelta(days=10))
    recent = store.enqueue("taskq.echo").id
    store.cancel(recent, now=now)
    active = store.enqueue("taskq.echo").id
    assert store.purge(timedelta(days=7), now=now) == 1
    assert store.get(old) is None and store.get(recent) is not None and store.get(active) is not None


def test_expired_lease_counts_an_attempt_only_for_a_started_task(store: Store) -> None:
    now = utc_now()
    task_id = store.enqueue("taskq.echo", max_retries=1, now=now).id
    store.claim("dead-worker", now=now, lease_seconds=5)
    store.mark_started(task_id, worker_id="dead-worker", started_at=now)
    never_started = store.enqueue("taskq.echo", max_retries=0, now=now).id
    store.claim("dead-worker", now=now, lease_seconds=5)
    live = store.enqueue("taskq.echo", now=now).id
    store.claim("live-worker", now=now, lease_seconds=600)
    assert store.recover_expired(now=now + timedelta(seconds=4)) == 0
    assert store.recover_expired(now=now + timedelta(seconds=6)) == 2
    task = store.require(task_id)
    assert task.status is Status.PENDING and task.attempts == 1 and "worker lost" in (task.error or "")
    released = store.require(never_started)
    assert (released.status, released.attempts, released.error) == (Status.PENDING, 0, None)
    assert store.require(live).status is Status.RUNNING
    later = now + timedelta(seconds=100)
    store.claim("dead-worker", now=later, lease_seconds=5)  # the oldest ready: never_started, then task_id
    again = store.claim("dead-worker", now=later, lease_seconds=5)
    assert again is not None and again.id == task_id and again.attempts == 2
    store.mark_started(task_id, worker_id="dead-worker", started_at=later)
    assert store.recover_expired(now=later + timedelta(seconds=6)) == 2
    assert store.require(task_id).status is Status.FAILED
    assert store.require(never_started).status is Status.PENDING


def test_attempt_is_counted_with_the_outcome_and_once(store: Store) -> None:
    task_id = store.enqueue("taskq.echo", max_retries=2).id
    claimed = store.claim("w")
    assert claimed is not None and claimed.attempts == 1 and store.require(task_id).attempts == 0
    assert store.fail(task_id, "boom", worker_id="w", attempt=1) is Status.PENDING
    assert store.require(task_id).attempts == 1
    claimed = store.claim("w", now=utc_now() + timedelta(seconds=10))
    assert claimed is not None and claimed.attempts == 2
    store.mark_started(task_id, worker_id="w", started_at=utc_now())
    assert store.require(task_id).attempts == 2
    assert store.complete(task_id, 1, worker_id="w", attempt=2)
    task = store.require(task_id)
    assert (task.status, task.attempts) == (Status.COMPLETED, 2) and task.started_at is not None


def test_dead_worker_is_settled_exactly_in_one_transaction(store: Store) -> None:
    now = utc_now()
    ids = [store.enqueue("taskq.echo", max_retries=0, now=now).id for _ in range(4)]
    claimed = store.claim_batch("w", limit=4, now=now)
    assert [task.id for task in claimed] == ids
    finished, executing, timed_out, never_started = ids
    counts = store.settle_dead_worker(
        "w",
        finished=[Completion(finished, 1, {"ok": True}, now, False, None, now)],
        executing=[
            Interrupted(executing, 1, Interruption.FAIL, "worker lost: killed by SIGKILL"),
            Interrupted(timed_out, 1, Interruption.FAIL, "TimeoutError: bad\x00byte"),
        ],
        now=now,
    )
    assert counts == SettledCounts(recorded=1, interrupted=2, released=1)
    assert store.require(finished).status is Status.COMPLETED and store.require(finished).result == {"ok": True}
    lost = store.require(executing)
    assert (lost.status, lost.attempts) == (Status.FAILED, 1) and "SIGKILL" in (lost.error or "")
    assert "\x00" not in (store.require(timed_out).error or "") and "bad" in (store.require(timed_out).error or "")
    back = store.require(never_started)
    assert (back.status, back.attempts, back.worker_id) == (Status.PENDING, 0, None)
    # A second settlement (the guards make it a no-op) changes nothing.
    assert store.settle_dead_worker("w", now=now) == SettledCounts(0, 0, 0)


def test_recover_worker_releases_unstarted_and_fails_started_tasks(store: Store) -> None:
    now = utc_now()
    started, unstarted, other = (store.enqueue("taskq.echo", max_retries=0, now=now).id for _ in range(3))
    store.claim_batch("dead", limit=2, now=now)
    store.claim("alive", now=now)
    store.mark_started(started, worker_id="dead", started_at=now)
    assert sorted(store.running_worker_ids()) == ["alive", "dead"]
    assert store.recover_worker("dead", reason="its process is gone", now=now) == 2
    assert store.require(started).status is Status.FAILED
    assert store.require(unstarted).status is Status.PENDING and store.require(unstarted).attempts == 0
    assert store.require(other).status is Status.RUNNING


def test_release_returns_running_tasks_without_counting_the_attempt(store: Store) -> None:
    task_id = store.enqueue("taskq.echo").id
    store.claim("w")
    assert store.release([task_id], worker_id="w") == 1
    task = store.require(task_id)
    assert task.status is Status.PENDING and task.attempts == 0 and task.worker_id is None


def test_progress_is_clamped_and_stored(store: Store) -> None:
    task_id = store.enqueue("taskq.echo").id
    store.claim("w")
    assert store.set_progress(task_id, 150, "almost")
    task = store.require(task_id)
    assert (task.progress, task.progress_message) == (100.0, "almost")


def test_worker_heartbeats_list_live_workers_and_prune_silent_ones(store: Store) -> None:
    now = utc_now()
    store.register_worker("h:1:worker-1", hostname="h", pid=1, name="worker-1", queues=["default"], now=now)
    store.register_worker("h:2:worker-2", hostname="h", pid=2, name="worker-2", queues=[], now=now)
    store.heartbeat_worker("h:1:worker-1", current_task_id=7, tasks_done=3, now=now + timedelta(seconds=50))
    alive = store.list_workers(alive_within=30, now=now + timedelta(seconds=60))
    assert [(w.id, w.current_task_id, w.tasks_done) for w in alive] == [("h:1:worker-1", 7, 3)]
    assert store.prune_workers(silent_for=30, now=now + timedelta(seconds=60)) == 1
    store.unregister_worker("h:1:worker-1")
    assert store.list_workers(alive_within=1e9) == []


def test_a_locked_sqlite_database_is_waited_out_not_raised(sqlite_db: str) -> None:
    import sqlite3
    import threading

    import taskq

    store = taskq.open_store(sqlite_db)
    blocker = sqlite3.connect(sqlite_db.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock longer than SQLite's busy timeout (1 s)
    release = threading.Timer(2.5, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        enqueued = store.enqueue("taskq.echo", [1])
    finally:
        release.join()
        blocker.close()
    assert store.require(enqueued.id).status is Status.PENDING
    store.dispose()


def test_sqlite_synchronous_is_normal_unless_the_environment_asks_for_full(tmp_path, monkeypatch) -> None:
    import taskq
    from taskq.engine import DatabaseUnavailable

    def level() -> int:
        store = taskq.open_store(f"sqlite:///{tmp_path / 'sync.db'}")
        try:
            with store.engine.connect() as connection:
                return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())
        finally:
            store.dispose()

    assert level() == 1  # NORMAL
    monkeypatch.setenv("TASKQ_SQLITE_SYNCHRONOUS", "full")
    assert level() == 2  # FULL
    monkeypatch.setenv("TASKQ_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(DatabaseUnavailable, match="TASKQ_SQLITE_SYNCHRONOUS"):
        level()
