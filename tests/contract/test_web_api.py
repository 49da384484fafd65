"""The dashboard's JSON API, pages and access rules, through Starlette's TestClient on a real SQLite file. (The
`taskq dashboard` command as a real process: tests/process/test_dashboard_command.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install -e '.[web]'")
from starlette.testclient import TestClient

import taskq
from taskq import requests
from taskq.clock import utc_now
from taskq.model import TaskRequest
from taskq.settings import Settings
from taskq.store import Store
from taskq.web.app import create_app
from taskq.web.security import DashboardConfigError, check_bind, is_loopback

BASE = "http://127.0.0.1:8080"
OURS = {"X-Taskq": "1"}
TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store  # SQLite only: these test the HTTP layer; the store's contract runs on both dialects


@pytest.fixture
def client(store: Store, sqlite_db: str) -> TestClient:
    return TestClient(create_app(store, Settings(database=sqlite_db)), base_url=BASE)


@pytest.fixture
def guarded(store: Store, sqlite_db: str) -> TestClient:
    settings = Settings(database=sqlite_db, dashboard={"token": TOKEN})
    return TestClient(create_app(store, settings), base_url="http://dashboard.example:8080")


def enqueue(client: TestClient, body: Any, **headers: str) -> Any:
    return client.post("/api/tasks", json=body, headers={**OURS, **headers})


# -- enqueue ------------------------------------------------------------------------------------------


def test_enqueue_creates_the_task_with_every_option(client: TestClient, store: Store) -> None:
    response = enqueue(
        client,
        {
            "name": "taskq.echo",
            "args": [1, "a"],
            "kwargs": {"k": [True, None]},
            "priority": 7,
            "delay": "1h",
            "dedup_key": "report:1",
            "max_retries": 5,
            "queue": "slow",
            "timeout": 12.5,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"id": body["id"], "deduplicated": False}
    task = store.require(body["id"])
    assert (task.name, task.args, task.kwargs) == ("taskq.echo", [1, "a"], {"k": [True, None]})
    assert (task.priority, task.dedup_key, task.max_retries, task.queue, task.timeout) == (
        7,
        "report:1",
        5,
        "slow",
        12.5,
    )
    assert timedelta(minutes=59) < task.run_after - utc_now() <= timedelta(hours=1)


def test_enqueue_checks_the_request_once(client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    make = requests._new_checked
    monkeypatch.setattr(requests, "_new_checked", lambda fields: made.append(fields[0]) or make(fields))
    response = enqueue(client, {"name": "taskq.echo", "args": [1], "delay": "1m"})
    assert response.status_code == 201, response.text
    assert made == ["taskq.echo"]  # parsed and checked at the door; the store takes it as it is
    assert store.require(response.json()["id"]).args == [1]


def test_enqueue_with_an_active_dedup_key_returns_the_existing_task(client: TestClient) -> None:
    first = enqueue(client, {"name": "taskq.echo", "dedup_key": "k"}).json()
    again = enqueue(client, {"name": "taskq.echo", "dedup_key": "k"})
    assert again.status_code == 200
    assert again.json() == {"id": first["id"], "deduplicated": True}


def test_enqueue_run_after_takes_an_iso_time(client: TestClient, store: Store) -> None:
    response = enqueue(client, {"name": "taskq.echo", "run_after": "2031-02-03T04:05:06+02:00"})
    assert response.status_code == 201, response.text
    assert store.require(response.json()["id"]).run_after.isoformat() == "2031-02-03T02:05:06+00:00"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name must be a non-empty string"),
        ({"name": 3}, "name must be a non-empty string"),
        ({"name": "no.such.task"}, "unknown task 'no.such.task'"),
        ({"name": "taskq.echo", "args": "x"}, "args must be a JSON array"),
        ({"name": "taskq.echo", "kwargs": [1]}, "kwargs must be a JSON object"),
        ({"name": "taskq.echo", "priority": "high"}, "priority must be a whole number"),
        ({"name": "taskq.echo", "priority": True}, "priority must be a whole number"),
        ({"name": "taskq.echo", "max_retries": -1}, "max_retries must be a whole number >= 0"),
        ({"name": "taskq.echo", "max_retries": 1.5}, "max_retries must be a whole number >= 0"),
        ({"name": "taskq.echo", "dedup_key": 5}, "dedup_key must be a string"),
        ({"name": "taskq.echo", "timeout": 0}, "timeout must be positive"),
        ({"name": "taskq.echo", "delay": "soon"}, "invalid duration 'soon'"),
        ({"name": "taskq.echo", "delay": -3}, "must not be negative"),
        ({"name": "taskq.echo", "run_after": "yesterday"}, "invalid ISO 8601 time"),
        ({"name": "taskq.echo", "run_after": 5}, "run_after must be an ISO 8601 string"),
        ({"name": "taskq.echo", "delay": 1, "run_after": "2030-01-01T00:00:00"}, "not both"),
        ({"name": "taskq.echo", "prio": 1}, "unknown field 'prio'"),
    ],
)
def test_enqueue_rejects_bad_fields_with_400(client: TestClient, store: Store, body: Any, message: str) -> None:
    response = enqueue(client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert store.stats()["pending"] == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "taskq.echo",', "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b'["taskq.echo"]', "request body must be a JSON object, got list"),
        (b"\xff\xfe{", "not UTF-8"),
        (b'{"name": "taskq.echo", "args": [NaN]}', "args must be JSON-serialisable"),
        (b'{"name": "taskq.echo", "kwargs": {"x": Infinity}}', "kwargs must be JSON-serialisable"),
    ],
)
def test_enqueue_rejects_bad_json_bodies_with_400(client: TestClient, store: Store, raw: bytes, message: str) -> None:
    response = client.post("/api/tasks", content=raw, headers={**OURS, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sum(store.stats().values()) == 0


def test_enqueue_needs_a_json_content_type(client: TestClient, store: Store) -> None:
    response = client.post("/api/tasks", data={"name": "taskq.echo"}, headers=OURS)
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["error"]
    assert sum(store.stats().values()) == 0


# -- reading ------------------------------------------------------------------------------------------


def test_list_filters_by_status_name_queue_and_parent(client: TestClient, store: Store) -> None:
    running = store.enqueue("taskq.sleep", queue="b", priority=9).id
    assert store.claim("w") is not None
    parent = store.enqueue("taskq.echo", queue="a", priority=8).id
    assert store.claim("w") is not None
    children = store.wait_for_children(parent, [TaskRequest("taskq.echo", [i]) for i in range(2)])
    assert children is not None
    loose = store.enqueue("taskq.echo", queue="a").id

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()["tasks"]]

    child_ids = sorted((child.id for child in children), reverse=True)
    assert ids() == [loose, *child_ids, parent, running]
    assert ids(status="running") == [running]
    assert ids(name="taskq.sleep") == [running]
    assert ids(queue="a") == [loose, parent]
    assert ids(parent=parent) == child_ids
    assert ids(status="pending", queue="a") == [loose]
    assert "error_log" not in client.get("/api/tasks").json()["tasks"][0]


def test_list_pages_newest_first_by_cursor(client: TestClient, store: Store) -> None:
    made = [store.enqueue("taskq.echo", [i]).id for i in range(5)]
    first = client.get("/api/tasks", params={"limit": 2}).json()
    assert [t["id"] for t in first["tasks"]] == made[:-3:-1]
    second = client.get("/api/tasks", params={"limit": 2, "before_id": first["next_before_id"]}).json()
    assert [t["id"] for t in second["tasks"]] == [made[2], made[1]]
    last = client.get("/api/tasks", params={"limit": 2, "before_id": second["next_before_id"]}).json()
    assert [t["id"] for t in last["tasks"]] == [made[0]]
    assert last["next_before_id"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "done"}, "unknown status 'done'"),
        ({"limit": "0"}, "limit must be >= 1"),
        ({"limit": "501"}, "limit must be >= 1 and <= 500"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"before_id": "x"}, "before_id must be a whole number"),
        ({"parent": "-1"}, "parent must be a task id (1 to 9223372036854775807), got -1"),
    ],
)
def test_list_rejects_bad_parameters_with_400(client: TestClient, params: dict[str, str], message: str) -> None:
    response = client.get("/api/tasks", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_show_gives_the_task_and_its_children_by_status(client: TestClient, store: Store) -> None:
    parent = store.enqueue("taskq.echo", ["<b>x</b>"]).id
    assert store.claim("w") is not None
    spawned = store.wait_for_children(parent, [TaskRequest("taskq.echo", [i]) for i in range(3)])
    assert spawned is not None
    store.cancel(spawned[0].id)
    response = client.get(f"/api/tasks/{parent}")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["args"]) == (parent, "waiting_for_children", ["<b>x</b>"])
    assert body["children_by_status"] == {
        "pending": 2,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert body["error_log"] == []


def test_unknown_task_ids_are_404(client: TestClient) -> None:
    for response in (
        client.get("/api/tasks/999"),
        client.post("/api/tasks/999/cancel", headers=OURS),
        client.post("/api/tasks/999/retry", headers=OURS),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "no task with id 999"}
    not_a_number = client.get("/api/tasks/abc")
    assert not_a_number.status_code == 404
    assert "error" in not_a_number.json()


# -- operator actions ---------------------------------------------------------------------------------


def test_cancel_a_pending_task_at_once_and_a_running_one_cooperatively(client: TestClient, store: Store) -> None:
    running = store.enqueue("taskq.sleep").id
    assert store.claim("w") is not None
    pending = store.enqueue("taskq.echo").id
    response = client.post(f"/api/tasks/{pending}/cancel", headers=OURS)
    assert (response.status_code, response.json()) == (200, {"id": pending, "status": "cancelled"})
    response = client.post(f"/api/tasks/{running}/cancel", headers=OURS)
    assert (response.status_code, response.json()) == (200, {"id": running, "status": "running"})
    assert store.require(running).cancel_requested


def test_cancel_a_finished_task_is_409(client: TestClient, store: Store) -> None:
    task_id = store.enqueue("taskq.echo").id
    assert store.claim("w") is not None
    store.complete(task_id, {"ok": True})
    response = client.post(f"/api/tasks/{task_id}/cancel", headers=OURS)
    assert response.status_code == 409
    assert response.json() == {"error": f"task {task_id} is already completed"}


def test_retry_a_failed_task_and_refuse_an_active_one(client: TestClient, store: Store) -> None:
    task_id = store.enqueue("taskq.echo", max_retries=0).id
    assert store.claim("w") is not None
    assert store.fail(task_id, "Traceback: boom") is taskq.Status.FAILED
    response = client.post(f"/api/tasks/{task_id}/retry", headers=OURS)
    assert (response.status_code, response.json()) == (200, {"id": task_id, "status": "pending"})
    assert store.require(task_id).status is taskq.Status.PENDING
    again = client.post(f"/api/tasks/{task_id}/retry", headers=OURS)
    assert again.status_code == 409
    assert "only failed or cancelled tasks can be retried" in again.json()["error"]


def test_stats_counts_every_status(client: TestClient, store: Store) -> None:
    store.enqueue("taskq.echo")
    store.cancel(store.enqueue("taskq.echo").id)
    assert client.get("/api/stats").json() == {
        "pending": 1,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }


def test_workers_lists_those_with_a_recent_heartbeat(client: TestClient, store: Store) -> None:
    store.register_worker("h:1:worker-1", hostname="h", pid=1, name="worker-1", queues=["a"])
    store.register_worker(
        "h:2:worker-2", hostname="h", pid=2, name="worker-2", queues=[], now=utc_now() - timedelta(minutes=5)
    )
    live = client.get("/api/workers").json()["workers"]
    assert [(w["id"], w["queues"], w["current_task_id"]) for w in live] == [("h:1:worker-1", ["a"], None)]
    everyone = client.get("/api/workers", params={"alive_within": "10m"}).json()["workers"]
    assert [w["name"] for w in everyone] == ["worker-1", "worker-2"]
    bad = client.get("/api/workers", params={"alive_within": "a while"})
    assert bad.status_code == 400
    assert "alive_within" in bad.json()["error"]


# -- pages --------------------------------------------------------------------------------------------


def test_pages_are_shells_with_a_strict_content_security_policy(client: TestClient, store: Store) -> None:
    task_id = store.enqueue("taskq.echo", ["<script>alert(1)</script>"]).id
    for path in ("/", f"/tasks/{task_id}"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>alert" not in response.text
    assert f'data-task-id="{task_id}"' in client.get(f"/tasks/{task_id}").text
    assert client.get("/static/dashboard.js").status_code == 200
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")


# -- access rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no X-Taskq: what a cross-site <form> or a no-CORS fetch sends
        {**OURS, "Origin": "http://evil.example"},
        {**OURS, "Sec-Fetch-Site": "cross-site"},
        {**OURS, "Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_posts_are_refused(client: TestClient, store: Store, headers: dict[str, str]) -> None:
    task_id = store.enqueue("taskq.echo").id
    for path in ("/api/tasks", f"/api/tasks/{task_id}/cancel"):
        response = client.post(path, json={"name": "taskq.echo"}, headers=headers)
        assert response.status_code == 403
        assert "cross-site request refused" in response.json()["error"]
    assert store.stats()["pending"] == 1


def test_same_origin_posts_from_the_page_pass(client: TestClient) -> None:
    headers = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert enqueue(client, {"name": "taskq.echo"}, **headers).status_code == 201


def test_without_a_token_only_loopback_host_names_are_served(client: TestClient) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away.
    response = client.get("/api/stats", headers={"Host": "evil.example:8080"})
    assert response.status_code == 403
    assert "not a loopback name" in response.json()["error"]
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        assert client.get("/api/stats", headers={"Host": host}).status_code == 200


def test_with_a_token_every_request_needs_it(guarded: TestClient) -> None:
    for path in ("/", "/api/stats", "/static/dashboard.js"):
        response = guarded.get(path)
        assert response.status_code == 401
        assert "token" in response.json()["error"]
    assert guarded.get("/api/stats", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    assert guarded.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/api/stats", params={"token": TOKEN}).status_code == 200
    refused = guarded.post("/api/tasks", json={"name": "taskq.echo"}, headers={**OURS, "Authorization": "Bearer x"})
    assert refused.status_code == 401
    posted = guarded.post(
        "/api/tasks", json={"name": "taskq.echo"}, headers={**OURS, "Authorization": f"Bearer {TOKEN}"}
    )
    assert posted.status_code == 201


def test_a_token_in_the_query_becomes_a_cookie_for_the_browser(guarded: TestClient) -> None:
    response = guarded.get("/", params={"token": TOKEN, "status": "failed"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?status=failed"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert guarded.get("/?status=failed").status_code == 200  # the client kept the cookie
    assert guarded.get("/api/stats").status_code == 200
    assert guarded.post("/api/tasks", json={"name": "taskq.echo"}).status_code == 403  # still needs X-Taskq


@pytest.mark.parametrize(
    ("dashboard", "message"),
    [
        ({"token": "short"}, "at least 16 characters"),
        ({"token": 12345678901234567}, "expected a string"),
        ({"tokn": TOKEN}, "unknown key 'tokn'"),
    ],
)
def test_bad_dashboard_settings_are_refused(store: Store, dashboard: dict[str, Any], message: str) -> None:
    with pytest.raises(DashboardConfigError, match=message):
        create_app(store, Settings(dashboard=dashboard))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(DashboardConfigError, match="refusing to serve the dashboard"):
            check_bind(host, None)
        check_bind(host, TOKEN)
