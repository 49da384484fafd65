"""Issue 19 points 3 and 4 through the dashboard's JSON API (Starlette's TestClient, a real SQLite file): POST
/api/tasks refuses arguments nested past the depth limit with a 400 naming the field, however deep the body;
the lists and the task view answer 200 with a placeholder for a row that cannot be read back (before, a row
like that, or a stored result ~960 deep, made /api/tasks answer 500 to every viewer)."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install -e '.[web]'")
from poison_rows import POISON_DEPTH, insert_raw, nested_text
from starlette.testclient import TestClient

from taskq.json_limits import MAX_JSON_DEPTH
from taskq.settings import Settings
from taskq.store import Store
from taskq.web.app import create_app

BASE = "http://127.0.0.1:8080"
OURS = {"X-Taskq": "1", "Content-Type": "application/json"}


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store  # SQLite only: these test the HTTP layer; the store's contract runs on both dialects


@pytest.fixture
def client(store: Store, sqlite_db: str) -> TestClient:
    return TestClient(create_app(store, Settings(database=sqlite_db)), base_url=BASE, raise_server_exceptions=False)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, POISON_DEPTH, 10_000])
@pytest.mark.parametrize("field", ["args", "kwargs"])
def test_enqueue_refuses_arguments_too_deep_naming_the_field(
    client: TestClient, store: Store, depth: int, field: str
) -> None:
    value = nested_text(depth) if field == "args" else nested_text(depth - 1).join(['{"k": ', "}"])
    body = f'{{"name": "taskq.echo", "{field}": {value}}}'
    response = client.post("/api/tasks", content=body.encode(), headers=OURS)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == f"{field} is nested {depth} levels deep (taskq keeps at most {MAX_JSON_DEPTH})"
    assert store.list() == []


def test_enqueue_accepts_the_limit_itself(client: TestClient, store: Store) -> None:
    body = f'{{"name": "taskq.echo", "args": {nested_text(MAX_JSON_DEPTH)}}}'
    response = client.post("/api/tasks", content=body.encode(), headers=OURS)
    assert response.status_code == 201, response.text


def test_the_lists_and_the_task_view_show_rows_that_cannot_be_read_back(client: TestClient, store: Store) -> None:
    poison = insert_raw(store, args=nested_text(POISON_DEPTH))
    deep_result = insert_raw(store, status="completed", result=nested_text(960))
    fine = store.enqueue("taskq.echo", [1]).id

    listed = client.get("/api/tasks", headers=OURS)
    assert listed.status_code == 200, listed.text
    by_id = {task["id"]: task for task in listed.json()["tasks"]}
    assert set(by_id) == {poison, deep_result, fine}
    # Lists carry summaries (sizes measured by the database), which never decode a value.
    assert by_id[poison]["args_size"] == len(nested_text(POISON_DEPTH))
    assert by_id[deep_result]["result_size"] == len(nested_text(960))
    assert by_id[fine]["args_size"] == len("[1]")
    shown = {task_id: client.get(f"/api/tasks/{task_id}", headers=OURS) for task_id in (poison, deep_result, fine)}
    assert all(response.status_code == 200 for response in shown.values()), [r.text for r in shown.values()]
    assert shown[poison].json()["args"].startswith(f"<undecodable: nested {POISON_DEPTH} levels deep")
    assert shown[deep_result].json()["result"].startswith("<undecodable: nested 960 levels deep")
    assert shown[fine].json()["args"] == [1]
    assert client.get("/api/tasks", params={"args": "[[["}, headers=OURS).status_code == 200


def test_a_body_too_deep_outside_any_field_is_refused_too(client: TestClient, store: Store) -> None:
    response = client.post("/api/tasks", content=nested_text(5000).encode(), headers=OURS)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == f"request body is nested 5000 levels deep (its fields may nest {MAX_JSON_DEPTH})"
    assert store.list() == []
