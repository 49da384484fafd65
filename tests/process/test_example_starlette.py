"""examples/starlette_app.py: the job outlives the web process. uvicorn takes the POST and is SIGKILLed
at once, before any worker exists; a worker started afterwards completes the task, and a restarted
web process reports the result."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from example_processes import Service, example_env, http_json, listening_url, start_worker, wait_until

import taskq

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

DOCUMENT = "Taskq keeps jobs in the database. It is durable.\n\nWorkers run them. They retry on failure."


def start_uvicorn(tmp_path: Path, database_url: str) -> tuple[Service, str]:
    args = [sys.executable, "-m", "uvicorn", "examples.starlette_app:app", "--host", "127.0.0.1", "--port", "0"]
    server = Service("uvicorn", args, cwd=tmp_path, env=example_env(database_url))
    return server, listening_url(server, r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def test_job_survives_the_web_process_being_killed(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'documents.db'}"
    server, base = start_uvicorn(tmp_path, database_url)
    try:
        assert http_json("POST", f"{base}/documents", {"text": " "})[0] == 400
        status, body = http_json("POST", f"{base}/documents", {"text": DOCUMENT})
        assert status == 202, server.describe()
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        server.stop()

    store = taskq.open_store(database_url)
    worker = None
    try:
        assert store.require(body["task_id"]).status is taskq.Status.PENDING
        worker = start_worker(tmp_path, database_url, "examples.starlette_app", workers=1)
        task = wait_until(
            lambda: (t := store.require(body["task_id"])).is_active is False and t,
            timeout=30,
            what="the summary task finished",
            services=(worker,),
        )
    finally:
        if worker is not None:
            worker.stop()
        store.dispose()
    assert task.status is taskq.Status.COMPLETED, task.error
    summary = "Taskq keeps jobs in the database. Workers run them"
    assert task.result == {"paragraphs": 2, "words": 16, "summary": summary}

    restarted, base = start_uvicorn(tmp_path, database_url)
    try:
        assert http_json("GET", f"{base}{body['status_url']}") == (
            200,
            {"id": task.id, "status": "completed", "progress": 100.0, "result": task.result},
        )
    finally:
        restarted.stop()
