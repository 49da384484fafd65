"""/metrics, charts, queues, schedules, search and bulk actions through the API, on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskq.clock import utc_now
from taskq.settings import Settings
from taskq.store import Store

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install -e '.[web]'")
prometheus_parser = pytest.importorskip("prometheus_client.parser", reason="needs the metrics extra")
from starlette.testclient import TestClient  # noqa: E402

from taskq.web.app import create_app  # noqa: E402

OURS = {"X-Taskq": "1"}
TRACEBACK = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'customer'"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store  # SQLite only: these test the HTTP layer; the store's contract runs on both dialects


@pytest.fixture
def client(store: Store, sqlite_db: str) -> TestClient:
    settings = Settings(database=sqlite_db, schedule={"nightly": {"task": "taskq.echo", "every": "1h"}})
    return TestClient(create_app(store, settings), base_url="http://127.0.0.1:8080")


def run(store: Store, name: str, *, fail: bool = False, queue: str = "default", seconds: float = 0.3) -> int:
    now = utc_now()
    task_id = store.enqueue(name, queue=queue, max_retries=0, run_after=now - timedelta(seconds=5)).id
    claimed = store.claim("w", queues=[queue], now=now - timedelta(seconds=seconds))
    assert claimed is not None and claimed.id == task_id
    started = now - timedelta(seconds=seconds)  # the worker says when the run started; the claim does not count it
    if fail:
        store.fail(task_id, TRACEBACK, worker_id="w", started_at=started, now=now)
    else:
        store.complete(task_id, None, worker_id="w", attempt=claimed.attempts, started_at=started, now=now)
    return task_id


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_serves_counts_counters_histograms_workers_and_queue_age(client: TestClient, store: Store) -> None:
    for _ in range(3):
        run(store, "taskq.echo")
    run(store, "taskq.sleep", fail=True, queue="slow", seconds=2.0)
    store.enqueue("taskq.echo", run_after=utc_now() - timedelta(seconds=40))
    store.register_worker("h:1:worker-1", hostname="h", pid=1, name="worker-1", queues=[])
    store.rollup(now=utc_now() + timedelta(minutes=1))  # counters come from the rollups (they lag by seconds)

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")  # the exposition format
    found = samples(response.text)
    assert found[("taskq_tasks", (("queue", "default"), ("status", "completed")))] == 3
    assert found[("taskq_tasks", (("queue", "default"), ("status", "pending")))] == 1
    assert found[("taskq_tasks", (("queue", "slow"), ("status", "failed")))] == 1
    assert found[("taskq_tasks_completed_total", (("name", "taskq.echo"), ("queue", "default")))] == 3
    assert found[("taskq_tasks_failed_total", (("name", "taskq.sleep"), ("queue", "slow")))] == 1
    echo = (("name", "taskq.echo"), ("queue", "default"))
    assert found[("taskq_task_runtime_seconds_count", echo)] == 3
    assert found[("taskq_task_runtime_seconds_bucket", (("le", "0.25"), *echo))] == 0
    assert found[("taskq_task_runtime_seconds_bucket", (("le", "0.5"), *echo))] == 3
    assert found[("taskq_task_runtime_seconds_sum", echo)] == pytest.approx(0.9, abs=0.01)
    assert found[("taskq_workers_live", ())] == 1
    assert 40 <= found[("taskq_queue_oldest_ready_age_seconds", (("queue", "default"),))] < 100
    assert found[("taskq_queue_ready_tasks", (("queue", "default"),))] == 1


def test_metrics_counters_never_go_down_when_rows_are_retried_or_purged(client: TestClient, store: Store) -> None:
    failed = run(store, "taskq.sleep", fail=True)
    store.rollup(now=utc_now() + timedelta(minutes=1))
    key = ("taskq_tasks_failed_total", (("name", "taskq.sleep"), ("queue", "default")))
    assert samples(client.get("/metrics").text)[key] == 1
    store.retry(failed)
    assert store.purge(timedelta(0), now=utc_now() + timedelta(hours=1)) == 0
    found = samples(client.get("/metrics").text)
    assert found[key] == 1  # history: it did fail once
    assert found[("taskq_tasks", (("queue", "default"), ("status", "pending")))] == 1
    assert found.get(("taskq_tasks", (("queue", "default"), ("status", "failed"))), 0) == 0


def test_charts_count_finished_tasks_per_minute_and_runtime_percentiles(client: TestClient, store: Store) -> None:
    for _ in range(4):
        run(store, "taskq.echo")
    run(store, "taskq.echo", fail=True)
    body = client.get("/api/charts", params={"window": "hour"}).json()
    assert body["step_seconds"] == 60 and len(body["throughput"]["completed"]) in (61, 62)
    assert sum(body["throughput"]["completed"]) == 4 and sum(body["throughput"]["failed"]) == 1
    [echo] = body["runtimes"]
    assert echo["name"] == "taskq.echo" and echo["count"] == 5 and 0.25 <= echo["p50"] <= 0.5
    day = client.get("/api/charts", params={"window": "day", "name": "nothing.like.this"}).json()
    assert sum(day["throughput"]["completed"]) == 0 and len(day["throughput"]["completed"]) in (97, 98)
    assert client.get("/api/charts", params={"window": "year"}).status_code == 400


def test_queues_show_depth_and_the_age_of_the_oldest_ready_task(client: TestClient, store: Store) -> None:
    store.enqueue("taskq.echo", queue="mail", run_after=utc_now() - timedelta(minutes=2))
    store.enqueue("taskq.echo", queue="mail", delay=600.0)
    [mail] = client.get("/api/queues").json()["queues"]
    assert (mail["queue"], mail["pending"], mail["ready"], mail["scheduled"]) == ("mail", 2, 1, 1)
    assert 110 < mail["oldest_ready_age_seconds"] < 200


def test_schedules_show_next_and_last_run(client: TestClient, store: Store) -> None:
    from taskq.scheduler import Scheduler, parse_schedules

    configured, errors = parse_schedules({"nightly": {"task": "taskq.echo", "every": "1h"}})
    assert errors == []
    keeper = Scheduler(store)
    keeper.update(configured)
    keeper.run_once(utc_now())
    [row] = client.get("/api/schedules").json()["schedules"]
    assert row["name"] == "nightly" and row["next_status"] == "pending" and row["every_seconds"] == 3600
    assert row["last_task_id"] is None


def test_list_gives_the_error_headline_and_searches_names_errors_and_arguments(
    client: TestClient, store: Store
) -> None:
    failed = run(store, "mail.send_email", fail=True)
    other = store.enqueue("taskq.echo", ["invoice-7"]).id
    [row] = client.get("/api/tasks", params={"status": "failed"}).json()["tasks"]
    assert row["error_line"] == "KeyError: 'customer'" and "error" not in row

    def ids(**params: str) -> list[int]:
        return [t["id"] for t in client.get("/api/tasks", params=params).json()["tasks"]]

    assert ids(name_contains="email") == [failed]
    assert ids(error="KeyError") == [failed]
    assert ids(args="invoice-7") == [other]
    assert client.get("/api/tasks/count", params={"name_contains": "e"}).json() == {"count": 2}


def test_bulk_retry_of_everything_matching_then_bulk_cancel_by_ids(client: TestClient, store: Store) -> None:
    failed = [run(store, "taskq.sleep", fail=True) for _ in range(3)]
    assert client.get("/api/tasks/count", params={"status": "failed"}).json() == {"count": 3}
    response = client.post("/api/tasks/bulk", json={"action": "retry", "filter": {"status": "failed"}}, headers=OURS)
    assert response.json() == {"action": "retry", "matched": 3, "changed": 3, "skipped": 0}
    assert store.stats()["pending"] == 3
    response = client.post("/api/tasks/bulk", json={"action": "cancel", "ids": failed[:2]}, headers=OURS)
    assert response.json()["changed"] == 2
    assert store.stats()["cancelled"] == 2
    bad = client.post("/api/tasks/bulk", json={"action": "delete", "ids": []}, headers=OURS)
    assert bad.status_code == 400
    both = client.post("/api/tasks/bulk", json={"action": "retry", "ids": [], "filter": {}}, headers=OURS)
    assert both.status_code == 400
    refused = client.post("/api/tasks/bulk", json={"action": "retry", "filter": {}})
    assert refused.status_code == 403  # without X-Taskq, as every POST


def test_keyset_pages_reach_the_oldest_task_through_the_api(client: TestClient, store: Store) -> None:
    ids = [store.enqueue("taskq.echo").id for _ in range(7)]
    oldest = client.get("/api/tasks", params={"after_id": 0, "limit": 3}).json()
    assert [t["id"] for t in oldest["tasks"]] == ids[2::-1] and oldest["next_before_id"] is None
    newer = client.get("/api/tasks", params={"after_id": oldest["newer_after_id"], "limit": 3}).json()
    assert [t["id"] for t in newer["tasks"]] == ids[5:2:-1]
