"""The read side at scale, on SQLite and PostgreSQL: rollups, exact stats around them, keyset pages,
search, bulk actions. Every test compares with what the tasks table itself says."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from taskq.clock import utc_now
from taskq.maintenance import StatsRollup
from taskq.model import Status, TaskFilter
from taskq.schema import tasks
from taskq.store import Store, metrics, transitions
from taskq.store.metrics import ROLLUP_LAG_SECONDS, percentile


def table_counts(store: Store) -> dict[str, int]:
    query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
    counts = {status.value: 0 for status in Status}
    counts.update(dict(store.read(lambda conn: conn.execute(query).all())))
    return counts


def finish(store: Store, name: str, outcome: str, *, now: datetime, queue: str = "default") -> int:
    task_id = store.enqueue(name, queue=queue, max_retries=0, run_after=now - timedelta(seconds=2)).id
    claimed = store.claim("w", queues=[queue], now=now - timedelta(seconds=1))
    assert claimed is not None and claimed.id == task_id
    started = now - timedelta(seconds=1)  # the worker says when the run started; the claim does not count it
    if outcome == "completed":
        store.complete(task_id, {"ok": True}, worker_id="w", attempt=claimed.attempts, started_at=started, now=now)
    else:
        error = "Traceback (most recent call last):\nValueError: boom"
        store.fail(task_id, error, worker_id="w", started_at=started, now=now)
    return task_id


def test_stats_stay_exact_through_rollup_retry_and_purge(store: Store) -> None:
    now = utc_now()
    past = now - timedelta(hours=2)
    done = [finish(store, "a.job", "completed", now=past + timedelta(seconds=i)) for i in range(5)]
    failed = [finish(store, "b.job", "failed", now=past + timedelta(seconds=10 + i)) for i in range(3)]
    store.enqueue("a.job")
    assert store.stats() == table_counts(store)

    duty = StatsRollup(store)
    assert duty.run_once(now)["rolled_up"] == 8
    assert store.stats() == table_counts(store) == {**table_counts(store), "completed": 5, "failed": 3, "pending": 1}
    assert duty.run_once(now)["rolled_up"] == 0  # caught up: nothing folded twice

    store.retry(failed[0], now=now)  # a rolled-up row leaves the finished statuses
    store.bulk_retry(ids=[failed[1]], now=now)
    assert store.stats() == table_counts(store)
    assert store.purge(timedelta(minutes=30), now=now) == 6  # deletes rolled-up rows: counts go stale
    assert store.stats() == table_counts(store)
    assert duty.run_once(now)["recounted"] == 1
    assert store.stats() == table_counts(store) == {**table_counts(store), "pending": 3, "completed": 0}
    assert not store.rollup_state().counts_stale
    assert done  # the purged rows were these


def test_rollup_skips_rows_too_recent_and_charts_still_see_them(store: Store) -> None:
    now = utc_now()
    finish(store, "a.job", "completed", now=now - timedelta(seconds=ROLLUP_LAG_SECONDS / 2))
    assert store.rollup(now=now) == 0  # could still be joined by a transaction committing an older finished_at
    window = store.chart_window(since=now - timedelta(hours=1))
    assert sum(done for done, _failed in window.finished.values()) == 1  # read live from the table meanwhile
    assert store.metric_totals() == {}  # counters come from the rollups only: they never count a row twice
    assert store.rollup(now=now + timedelta(seconds=ROLLUP_LAG_SECONDS)) == 1
    assert store.metric_totals()[("default", "a.job")].completed == 1


def test_rollup_in_chunks_matches_one_pass_and_histograms_runtimes(store: Store) -> None:
    now = utc_now()
    base = now - timedelta(hours=1)
    for i in range(7):
        finish(
            store, "a.job" if i % 2 else "b.job", "completed" if i % 3 else "failed", now=base + timedelta(minutes=i)
        )
    folded = []
    while chunk := store.rollup(now=now, chunk_rows=3):
        folded.append(chunk)
    assert sum(folded) == 7 and len(folded) >= 3
    window = store.chart_window(since=base - timedelta(minutes=1))
    assert len(window.finished) == 7 and sum(sum(counts) for counts in window.finished.values()) == 7
    assert sum(window.runtimes["a.job"]) == 3  # completed and failed runs both have a runtime
    total = store.metric_totals()
    assert sum(t.completed + t.failed for t in total.values()) == 7
    a = total[("default", "a.job")]
    # claimed 1 s before finishing: every runtime lands in the (0.5, 1.0] bucket
    assert a.runtime_count == 3 and percentile(a.runtime_buckets, 0.5) == pytest.approx(0.75, abs=0.26)
    assert store.stats() == table_counts(store)


def test_keyset_pages_reach_the_oldest_row_both_ways(store: Store) -> None:
    ids = [store.enqueue("a.job" if i % 3 else "other.thing", [i]).id for i in range(25)]
    where = TaskFilter(name_contains="JOB")  # case-insensitive substring
    expected = [i for n, i in enumerate(ids) if n % 3][::-1]
    seen, cursor = [], None
    while True:
        page = store.page(where, before_id=cursor, limit=4)
        seen += [t.id for t in page.tasks]
        if page.older_than is None:
            break
        cursor = page.older_than
    assert seen == expected
    oldest = store.page(where, after_id=0, limit=4)
    assert [t.id for t in oldest.tasks] == expected[-4:] and oldest.older_than is None
    newer = store.page(where, after_id=oldest.newer_than, limit=4)
    assert [t.id for t in newer.tasks] == expected[-8:-4]
    assert store.count(where) == len(expected)
    StatsRollup(store).run_once(utc_now())  # names now resolve through the rollup: same answers
    assert [t.id for t in store.page(where, limit=100).tasks] == expected
    assert store.page(TaskFilter(name_contains="nomatch"), limit=5).tasks == []


def test_search_in_errors_and_arguments(store: Store) -> None:
    now = utc_now()
    failed = finish(store, "a.job", "failed", now=now)
    with_args = store.enqueue("a.job", ["invoice-42"], {"customer": "Ada_50%"}).id
    assert [t.id for t in store.page(TaskFilter(error_contains="ValueError: boom"), limit=10).tasks] == [failed]
    assert [t.id for t in store.page(TaskFilter(args_contains="invoice-4"), limit=10).tasks] == [with_args]
    assert [t.id for t in store.page(TaskFilter(args_contains="Ada_50%"), limit=10).tasks] == [with_args]
    assert store.page(TaskFilter(args_contains="Ada_5%"), limit=10).tasks == []  # % and _ are literal


def test_bulk_retry_and_cancel_of_everything_matching(store: Store) -> None:
    now = utc_now()
    failed = [finish(store, "a.job", "failed", now=now) for _ in range(7)]
    other = finish(store, "b.job", "failed", now=now)
    keyed = store.enqueue("a.job", dedup_key="k", max_retries=0, run_after=now - timedelta(seconds=2)).id
    claimed = store.claim("w", now=now)
    assert claimed is not None and claimed.id == keyed
    store.fail(keyed, "x", worker_id="w", now=now)
    store.enqueue("a.job", dedup_key="k", queue="parked")  # the key is taken again: that retry must skip

    result = store.bulk_retry(where=TaskFilter(status=Status.FAILED, name="a.job"), now=now)
    assert (result.matched, result.changed, result.skipped) == (8, 7, 1)
    assert {store.require(i).status for i in failed} == {Status.PENDING}
    assert store.require(other).status is Status.FAILED
    cancelled = store.bulk_cancel(where=TaskFilter(name="a.job", status=Status.PENDING), now=now)
    assert cancelled.changed == 8
    assert Counter(t.status for t in store.list(limit=100))[Status.CANCELLED] == 8
    assert store.stats() == table_counts(store)


def test_queue_depths_tell_ready_scheduled_and_retrying_apart(store: Store) -> None:
    now = utc_now()
    store.enqueue("a.job", queue="q", run_after=now - timedelta(seconds=30))
    store.enqueue("a.job", queue="q", run_after=now + timedelta(minutes=5))
    retrying = store.enqueue("a.job", queue="q", run_after=now - timedelta(seconds=60), priority=9).id
    claimed = store.claim("w", queues=["q"], now=now)
    assert claimed is not None and claimed.id == retrying
    store.fail(claimed.id, "x", worker_id="w", now=now)
    [depth] = store.queue_depths(now=now)
    assert (depth.pending, depth.ready, depth.scheduled, depth.retrying, depth.running) == (3, 1, 1, 1, 0)
    assert depth.oldest_ready_at is not None and (now - depth.oldest_ready_at).total_seconds() >= 29
    assert store.sample_queues(now=now) == 1
    assert [s["ready"] for s in store.queue_history(since=now - timedelta(minutes=1))] == [1]
    assert retrying


def test_bulk_retry_survives_a_dedup_key_taken_after_its_check(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utc_now()
    plain = finish(store, "a.job", "failed", now=now)
    keyed = store.enqueue("a.job", dedup_key="k", max_retries=0, run_after=now - timedelta(seconds=2)).id
    claimed = store.claim("w", now=now)
    assert claimed is not None and claimed.id == keyed
    store.fail(keyed, "x", worker_id="w", now=now)
    store.enqueue("a.job", dedup_key="k", queue="parked")
    # As if the competing enqueue committed between the check and the batch's UPDATE:
    monkeypatch.setattr(transitions, "_key_taken", lambda conn, key: False)
    result = store.bulk_retry(ids=[plain, keyed], now=now)
    assert (result.changed, result.skipped) == (1, 1)
    assert store.require(plain).status is Status.PENDING and store.require(keyed).status is Status.FAILED
    assert store.stats() == table_counts(store)


def test_counts_read_again_when_a_rollup_moves_the_watermark_under_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utc_now()
    for i in range(4):
        finish(store, "a.job", "completed", now=now - timedelta(minutes=10 - i))
    assert store.rollup(now=now) == 4
    real_state = metrics.rollup_state_of
    calls = []

    def stale_once(conn: Any, *, lock: bool = False) -> Any:
        state = real_state(conn, lock=lock)
        calls.append(state)
        # The first read sees the watermark from before the rollup, as if the rollup committed right after it.
        return replace(state, watermark=None) if len(calls) == 1 else state

    monkeypatch.setattr(metrics, "rollup_state_of", stale_once)
    assert store.stats() == table_counts(store)  # not 8 completed: the rows are in task_counts and "recent"
    assert len(calls) == 2
