"""The web API's input at the edges (issue 20, points 4-6), on SQLite and PostgreSQL: filters that would widen
to every row, a 50 MB result in lists and on the task page, ids and cursors past BIGINT, search terms the
database would fail on, enqueue fields past the strictest dialect's limits. Each is a 400 (or 404) that
names what is wrong, and nothing changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install -e '.[web]'")
from sqlalchemy import event
from starlette.testclient import TestClient

from taskq.model import InvalidTaskArguments, Status, TaskFilter
from taskq.settings import Settings
from taskq.store import Store
from taskq.web.app import create_app

BASE = "http://127.0.0.1:8080"
OURS = {"X-Taskq": "1"}
BIG = 2**63  # one past BIGINT
BIG_RESULT_CHARS = 50 * 2**20


@pytest.fixture
def client(store: Store, database_url: str) -> TestClient:
    return TestClient(create_app(store, Settings(database=database_url)), base_url=BASE)


@pytest.fixture
def statements(store: Store) -> Iterator[list[str]]:
    """Every statement the store's engine sends to the driver while the test runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield sent
    event.remove(store.engine, "before_cursor_execute", record)


def failed(store: Store, queue: str = "default", name: str = "taskq.echo") -> int:
    task_id = store.enqueue(name, queue=queue, max_retries=0).id
    claimed = store.claim("w", [queue])
    assert claimed is not None and claimed.id == task_id
    store.fail(task_id, "ValueError: boom", worker_id="w")
    return task_id


def by_status(store: Store) -> dict[str, int]:
    return {key: n for key, n in store.stats().items() if n}


def post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, json=body, headers=OURS)


# -- point 4: strict filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "retry", "filter": {"nmae": "x"}}, "unknown filter 'nmae'"),
        ({"action": "retry", "filter": {"queue": "   "}}, "filter queue is blank"),
        ({"action": "retry", "filter": {"name_contains": ""}}, "filter name_contains is blank"),
        ({"action": "retry", "filter": {"error": " "}}, "filter error is blank"),
        ({"action": "retry", "filter": {"status": ""}}, "filter status is blank"),
        ({"action": "retry", "filter": {"parent": ""}}, "filter parent is blank"),
        ({"action": "retry", "fliter": {"queue": "mail"}}, "unknown field 'fliter'"),
        ({"action": "retry", "filter": {"queue": "mail"}, "dry_run": True}, "unknown field 'dry_run'"),
        ({"action": "cancel", "filter": {"queue": "   "}}, "filter queue is blank"),
        ({"action": "cancel", "filter": {"queeu": "mail"}}, "unknown filter 'queeu'"),
    ],
)
def test_a_bulk_filter_that_would_widen_is_a_400_and_changes_nothing(
    client: TestClient, store: Store, body: dict[str, Any], message: str
) -> None:
    for _ in range(3):
        failed(store, queue="mail")
    failed(store, queue="reports")
    for _ in range(4):
        store.enqueue("taskq.echo", queue="mail")
    before = by_status(store)
    assert before == {"failed": 4, "pending": 4}
    response = post(client, "/api/tasks/bulk", body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert by_status(store) == before


def test_a_bulk_filter_still_acts_on_what_it_names(client: TestClient, store: Store) -> None:
    mail = [failed(store, queue="mail") for _ in range(2)]
    other = failed(store, queue="reports")
    response = post(client, "/api/tasks/bulk", {"action": "retry", "filter": {"queue": " mail "}})
    assert response.json() == {"action": "retry", "matched": 2, "changed": 2, "skipped": 0}
    assert [store.require(i).status for i in mail] == [Status.PENDING, Status.PENDING]
    assert store.require(other).status is Status.FAILED


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nmae": "x"}, "unknown filter 'nmae'"),
        ({"queue": "   "}, "filter queue is blank"),
        ({"status": ""}, "filter status is blank"),
        ({"args": ""}, "filter args is blank"),
    ],
)
def test_counts_and_lists_refuse_the_same_filters(
    client: TestClient, store: Store, params: dict[str, str], message: str
) -> None:
    failed(store)
    for path in ("/api/tasks/count", "/api/tasks"):
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        assert message in response.json()["error"]
    assert client.get("/api/tasks/count", params={"status": "failed"}).json() == {"count": 1}


def test_the_store_refuses_a_blank_filter_from_python_too(store: Store) -> None:
    task_id = failed(store)
    for where in (TaskFilter(name_contains=""), TaskFilter(queue=" "), TaskFilter(args_contains="\t")):
        with pytest.raises(InvalidTaskArguments, match="is blank"):
            store.bulk_retry(where=where)
        with pytest.raises(InvalidTaskArguments, match="is blank"):
            store.count(where)
    assert store.require(task_id).status is Status.FAILED


# -- point 5: summaries in lists, clipped values on the task page ------------------------------------------


@pytest.fixture
def big_result(store: Store) -> int:
    """A completed task whose result is 50 MB of JSON, among a few small pending ones."""
    task_id = store.enqueue("taskq.echo", ["payload"], {"note": "x" * 100}).id
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == task_id
    store.complete(task_id, "x" * BIG_RESULT_CHARS, worker_id="w")
    for i in range(3):
        store.enqueue("taskq.echo", [i])
    return task_id


def test_a_50_mb_result_does_not_ride_along_in_the_list(client: TestClient, big_result: int) -> None:
    response = client.get("/api/tasks")
    assert response.status_code == 200
    assert len(response.content) < 20_000, len(response.content)  # it was 52,430,494 bytes
    row = next(task for task in response.json()["tasks"] if task["id"] == big_result)
    assert row["result_size"] == BIG_RESULT_CHARS + 2  # the JSON string's quotes
    assert row["args_size"] == len('["payload"]')
    assert row["kwargs_size"] == len(json.dumps({"note": "x" * 100}))
    assert not {"args", "kwargs", "result", "error", "error_log"} & set(row)
    assert row["status"] == "completed" and row["error_line"] is None


def test_the_task_page_clips_a_huge_value_and_loads_it_whole_on_request(client: TestClient, big_result: int) -> None:
    response = client.get(f"/api/tasks/{big_result}")
    assert response.status_code == 200
    assert len(response.content) < 200_000, len(response.content)
    body = response.json()
    assert body["result"] is None
    assert body["clipped"]["result"]["size"] == BIG_RESULT_CHARS + 2
    assert body["clipped"]["result"]["head"] == '"' + "x" * (64 * 1024 - 1)
    assert body["args"] == ["payload"] and body["kwargs"] == {"note": "x" * 100}  # small values come whole
    assert set(body["clipped"]) == {"result"}
    whole = client.get(f"/api/tasks/{big_result}", params={"full": "1"})
    assert whole.json()["result"] == "x" * BIG_RESULT_CHARS and whole.json()["clipped"] == {}
    assert client.get(f"/api/tasks/{big_result}", params={"full": "yes"}).status_code == 400


def test_the_list_gives_the_errors_headline_from_its_head_or_tail(client: TestClient, store: Store) -> None:
    traceback = "Traceback (most recent call last):\n" + '  File "x.py", line 1\n' * 2000 + "KeyError: 'k'\n"
    plain = "first line of a plain error\n" + "detail\n" * 1000  # kept whole (ERROR_TEXT_LIMIT)
    ids = []
    for error in (traceback, plain):
        task_id = store.enqueue("taskq.echo", max_retries=0).id
        assert store.claim("w") is not None
        store.fail(task_id, error, worker_id="w")
        ids.append(task_id)
    lines = {row["id"]: row["error_line"] for row in client.get("/api/tasks").json()["tasks"]}
    assert lines == {ids[0]: "KeyError: 'k'", ids[1]: "first line of a plain error"}


# -- point 6: ids, cursors and search terms the database would fail on -------------------------------------


def test_ids_and_cursors_past_bigint_are_404_and_400(client: TestClient, store: Store, statements: list[str]) -> None:
    task_id = failed(store)
    statements.clear()
    for path in (f"/api/tasks/{BIG}", f"/api/tasks/{10**30}", "/api/tasks/" + "9" * 5000, "/tasks/" + "9" * 5000):
        assert client.get(path).status_code == 404
    for action in ("cancel", "retry"):
        response = post(client, f"/api/tasks/{BIG}/{action}", {})
        assert response.status_code == 404 and response.json() == {"error": f"no task with id {BIG}"}
    for params, key in (
        ({"before_id": str(BIG)}, "before_id"),
        ({"after_id": str(BIG)}, "after_id"),
        ({"before_id": "-1"}, "before_id"),
        ({"parent": str(BIG)}, "parent"),
        ({"limit": ""}, "limit"),
    ):
        response = client.get("/api/tasks", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"].startswith(key)
    for ids in ([BIG], [-1], [0]):
        response = post(client, "/api/tasks/bulk", {"action": "retry", "ids": ids})
        assert response.status_code == 400 and "ids must be a task id" in response.json()["error"]
    assert statements == []  # refused before any SQL
    assert store.require(task_id).status is Status.FAILED


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"args": "x" * 50_000}, "filter args must be at most 1000 characters, got 50000"),
        ({"error": "y" * 50_000}, "filter error must be at most 1000 characters"),
        ({"error": "a\x00b"}, "filter error must not contain a NUL character"),
        ({"args": "\x00"}, "filter args must not contain a NUL character"),
        ({"name_contains": "a\x00"}, "filter name_contains must not contain a NUL character"),
        ({"name": "n" * 201}, "filter name must be at most 200 characters"),
    ],
)
def test_search_terms_the_database_would_fail_on_are_400(
    client: TestClient, store: Store, statements: list[str], params: dict[str, str], message: str
) -> None:
    failed(store)
    statements.clear()
    for path in ("/api/tasks", "/api/tasks/count"):
        response = client.get(path, params=params)
        assert response.status_code == 400, response.text  # was 503 "database error"
        assert message in response.json()["error"]
    assert statements == []


def test_chart_filters_the_database_would_fail_on_are_400(client: TestClient) -> None:
    for key in ("queue", "name"):
        response = client.get("/api/charts", params={key: "a\x00b"})
        assert response.status_code == 400, response.text  # was 503 on PostgreSQL
        assert response.json()["error"].startswith(f"{key} must not contain a NUL character")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("priority", 2**31, "priority must be between -2147483648 and 2147483647, got 2147483648"),
        ("priority", -(2**31) - 1, "priority must be between"),
        ("max_retries", 2**31, "max_retries must be between 0 and 2147483647"),
        ("queue", "q" * 101, "queue must be at most 100 characters, got 101"),
        ("dedup_key", "k" * 501, "dedup_key must be at most 500 characters, got 501"),
        ("run_after", "9999-12-31T23:00:00-05:00", "run_after '9999-12-31T23:00:00-05:00' is out of range"),
        ("delay", "nan", "delay: duration must be a finite number"),
        ("timeout", "inf", "timeout: duration must be a finite number"),
        ("timeout", 1e12, "timeout must be at most 315360000 seconds"),
    ],
)
def test_enqueue_fields_past_the_strictest_dialect_are_400_naming_the_field(
    client: TestClient, store: Store, statements: list[str], field: str, value: Any, message: str
) -> None:
    response = post(client, "/api/tasks", {"name": "taskq.echo", field: value})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert statements == []  # nothing reached the driver
    assert store.stats()["pending"] == 0


def test_a_name_past_200_characters_is_400_before_the_registry_says_unknown(client: TestClient) -> None:
    response = post(client, "/api/tasks", {"name": "n" * 201})
    assert response.status_code == 400
    assert response.json()["error"] == "name must be at most 200 characters, got 201"
