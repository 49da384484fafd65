"""/metrics on SQLite and PostgreSQL: counters never decrease (a purge or a retry of rows the rollup has
not reached yet included), every outcome is counted once, and the task-name label set is bounded."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from taskq.clock import utc_now
from taskq.schema import tasks
from taskq.store import Store, metrics

prometheus_parser = pytest.importorskip("prometheus_client.parser", reason="needs the metrics extra")
from taskq.web.metrics import render  # noqa: E402

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
COUNTERS = ("taskq_tasks_completed_total", "taskq_tasks_failed_total", "taskq_tasks_cancelled_total")
LATER = timedelta(minutes=1)  # past the rollup's lag


def scrape(store: Store) -> Samples:
    body, _content_type = render(store)
    found: Samples = {}
    for family in prometheus_parser.text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def counters(samples: Samples) -> Samples:
    """Every counter-like sample: the three counters and the histogram's buckets, count and sum."""
    return {key: value for key, value in samples.items() if key[0].startswith(("taskq_tasks_", "taskq_task_runtime"))}


def assert_never_decreased(before: Samples, after: Samples) -> None:
    went_down = {
        key: (value, after.get(key, 0.0)) for key, value in counters(before).items() if after.get(key, 0.0) < value
    }
    assert not went_down, f"counters went down: {went_down}"


def total(samples: Samples, counter: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (name, key), value in samples.items() if name == counter and wanted <= set(key))


def finish(store: Store, name: str, *, fail: bool = False, now: datetime | None = None) -> int:
    now = now or utc_now()
    task_id = store.enqueue(name, max_retries=0, run_after=now - timedelta(seconds=2)).id
    claimed = store.claim("w", queues=["default"], now=now - timedelta(seconds=1))
    assert claimed is not None and claimed.id == task_id
    started = now - timedelta(seconds=1)
    if fail:
        store.fail(task_id, "ValueError: boom", worker_id="w", started_at=started, now=now)
    else:
        store.complete(task_id, None, worker_id="w", attempt=claimed.attempts, started_at=started, now=now)
    return task_id


def test_a_counter_never_decreases_when_rows_the_rollup_has_not_reached_are_purged(store: Store) -> None:
    now = utc_now()
    for _ in range(3):
        finish(store, "a.job", fail=True, now=now - timedelta(hours=1))
    assert store.rollup(now=now) == 3
    finish(store, "a.job", fail=True, now=now)  # finished under the rollup's lag: not rolled up yet
    first = scrape(store)
    assert store.purge(timedelta(0), now=now + timedelta(seconds=1)) == 4
    second = scrape(store)
    assert_never_decreased(first, second)
    assert total(second, "taskq_tasks_failed_total", name="a.job") == 4  # the purged one counted, once
    store.rollup(now=now + LATER)
    third = scrape(store)
    assert_never_decreased(second, third)
    assert total(third, "taskq_tasks_failed_total", name="a.job") == 4


def test_a_failure_retried_before_the_rollup_reached_it_is_counted_once(store: Store) -> None:
    now = utc_now()
    failed = finish(store, "a.job", fail=True, now=now)
    store.retry(failed, now=now)  # within the rollup's lag: the failed row is never seen by a rollup
    claimed = store.claim("w", queues=["default"], now=now + timedelta(seconds=1))
    assert claimed is not None and claimed.id == failed
    store.complete(
        failed,
        None,
        worker_id="w",
        attempt=claimed.attempts,
        started_at=now + timedelta(seconds=1),
        now=now + timedelta(seconds=2),
    )
    cancelled = store.enqueue("a.job").id
    store.cancel(cancelled, now=now)
    store.bulk_retry(ids=[cancelled], now=now)  # the bulk path too
    while store.rollup(now=now + LATER):
        pass
    found = scrape(store)
    assert total(found, "taskq_tasks_failed_total", name="a.job") == 1
    assert total(found, "taskq_tasks_completed_total", name="a.job") == 1
    assert total(found, "taskq_tasks_cancelled_total", name="a.job") == 1
    assert total(found, "taskq_task_runtime_seconds_count", name="a.job") == 2  # the failed run and the completed one


def insert_finished(store: Store, names: list[str], *, finished: datetime) -> None:
    rows = [
        {
            "name": name,
            "args": [],
            "kwargs": {},
            "status": "completed",
            "run_after": finished,
            "created_at": finished,
            "started_at": finished - timedelta(seconds=1),
            "finished_at": finished,
        }
        for name in names
    ]
    store.write(lambda conn: conn.execute(insert(tasks), rows))


def test_three_thousand_task_names_give_a_bounded_number_of_series_and_lose_no_count(store: Store) -> None:
    now = utc_now()
    names = [f"job.n{i:04d}" for i in range(3_000)]
    insert_finished(store, names, finished=now - timedelta(hours=1))
    while store.rollup(now=now):
        pass
    body, _content_type = render(store)
    found = scrape(store)
    labelled = {dict(key)["name"] for (_name, key) in found if "name" in dict(key)}
    assert len(labelled) == metrics.METRIC_NAMES_MAX + 1  # the admitted names and "other"
    assert metrics.OTHER_NAME in labelled
    assert total(found, "taskq_tasks_completed_total") == 3_000  # the rest are summed, not dropped
    per_name = 3 + len(metrics.RUNTIME_BOUNDS_SECONDS) + 1 + 2  # three counters, buckets with +Inf, count, sum
    assert len(counters(found)) == (metrics.METRIC_NAMES_MAX + 1) * per_name
    assert len(body) < 500_000


def test_no_series_decreases_while_new_names_arrive_after_the_cap_is_full(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "METRIC_NAMES_MAX", 3)
    now = utc_now()
    insert_finished(store, ["a.job", "b.job"], finished=now - timedelta(hours=2))
    store.rollup(now=now)
    first = scrape(store)
    # New names in one rollup: the busiest takes the last place, the others go to "other" and stay there
    # however busy they get (moving one out would take its past counts out of "other").
    insert_finished(store, ["c.job"] + ["d.job"] * 5 + ["e.job"] * 7, finished=now - timedelta(hours=1))
    store.rollup(now=now)
    second = scrape(store)
    assert_never_decreased(first, second)
    names = defaultdict(float)
    for (name, key), value in second.items():
        if name == "taskq_tasks_completed_total":
            names[dict(key)["name"]] += value
    assert names == {"a.job": 1, "b.job": 1, "e.job": 7, metrics.OTHER_NAME: 6}
    insert_finished(store, ["a.job", "e.job", "f.job"] + ["d.job"] * 20, finished=now - timedelta(minutes=30))
    store.rollup(now=now)
    third = scrape(store)
    assert_never_decreased(second, third)
    assert total(third, "taskq_tasks_completed_total", name=metrics.OTHER_NAME) == 6 + 21
    assert total(third, "taskq_tasks_completed_total", name="e.job") == 8
