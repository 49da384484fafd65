"""The task API's exact-text option (`?values=text`), which the dashboard uses so that JavaScript's
JSON.parse never sees a task's numbers (it reads them as doubles). TestClient on a real SQLite file."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install -e '.[web]'")
from starlette.testclient import TestClient

from taskq.clock import utc_now
from taskq.settings import Settings
from taskq.store import Store
from taskq.web.app import create_app

VALUES = [2**64 + 1, 2**53 + 1, -(2**63) - 1, 1.0, 1e16, "café"]


@pytest.fixture
def client(sqlite_store: Store, sqlite_db: str) -> TestClient:
    return TestClient(create_app(sqlite_store, Settings(database=sqlite_db)), base_url="http://127.0.0.1:8080")


def test_values_as_text_are_the_exact_json_of_args_kwargs_and_result(client: TestClient, sqlite_store: Store) -> None:
    task_id = sqlite_store.enqueue("a.job", VALUES, {"big": 2**64}).id
    claimed = sqlite_store.claim("w")
    assert claimed is not None and claimed.id == task_id
    sqlite_store.complete(task_id, 2**64 + 1, worker_id="w", attempt=claimed.attempts, started_at=utc_now())

    shown = client.get(f"/api/tasks/{task_id}?values=text").json()
    assert shown["args"] == json.dumps(VALUES, indent=2, ensure_ascii=False)
    assert "18446744073709551617" in shown["args"] and "1.0" in shown["args"] and "1e+16" in shown["args"]
    assert shown["kwargs"] == '{\n  "big": 18446744073709551616\n}'
    assert shown["result"] == "18446744073709551617"
    assert shown["status"] == "completed" and shown["children_by_status"]  # every other field as usual

    plain = client.get(f"/api/tasks/{task_id}").json()  # scripts keep getting values
    assert plain["args"] == VALUES and plain["result"] == 2**64 + 1


def test_a_task_without_a_result_keeps_null_and_an_unknown_values_option_is_refused(
    client: TestClient, sqlite_store: Store
) -> None:
    task_id = sqlite_store.enqueue("a.job").id
    assert client.get(f"/api/tasks/{task_id}?values=text").json()["result"] is None
    refused = client.get(f"/api/tasks/{task_id}?values=numbers")
    assert refused.status_code == 400 and "values" in refused.json()["error"]
