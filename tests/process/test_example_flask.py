"""examples/flask_gunicorn: the real Gunicorn (gthread, 2 processes x 4 threads) and a real worker pool
on one SQLite file. 50 concurrent POSTs for 20 jobs: one task per job, the duplicates get its id."""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from example_processes import Service, example_env, http_json, listening_url, start_worker, wait_until

pytest.importorskip("flask")
gunicorn_config = pytest.importorskip("gunicorn.config")
KNOWN_SETTINGS = gunicorn_config.KNOWN_SETTINGS

REQUESTS = 50
JOBS = 20
STEP_SECONDS = 0.05  # four steps per letter: fast, yet each task reports progress four times


def start_gunicorn(tmp_path: Path, database_url: str) -> tuple[Service, str]:
    args = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "2"]
    args += ["-b", "127.0.0.1:0", "examples.flask_gunicorn.app:app"]
    if any(setting.name == "control_socket" for setting in KNOWN_SETTINGS):
        args.append("--no-control-socket")  # Gunicorn >= 25 would share one socket in $HOME between test runs
    server = Service("gunicorn", args, cwd=tmp_path, env=example_env(database_url))
    return server, listening_url(server, r"Listening at: http://127\.0\.0\.1:(\d+)")


def post_concurrently(base: str, job_ids: list[str]) -> list[tuple[str, int, Any]]:
    start = threading.Barrier(len(job_ids))

    def post(job_id: str) -> tuple[str, int, Any]:
        start.wait()
        body = {"applicant": "Ada", "step_seconds": STEP_SECONDS}
        return (job_id, *http_json("POST", f"{base}/jobs/{job_id}/cover-letter", body))

    with ThreadPoolExecutor(len(job_ids)) as pool:
        return list(pool.map(post, job_ids))


def test_fifty_concurrent_requests_one_task_per_job_all_completed(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'cover_letters.db'}"
    server, base = start_gunicorn(tmp_path, database_url)
    worker: Service | None = None
    try:
        # The burst lands before the worker starts, so every task is still pending while its duplicates
        # arrive: which request wins a job is a race, that exactly one does and the rest get its id is not.
        job_ids = [f"job-{i % JOBS}" for i in range(REQUESTS)]
        responses = post_concurrently(base, job_ids)
        assert all(status == 202 for _, status, _ in responses), responses
        by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for job_id, _, body in responses:
            by_job[job_id].append(body)
        assert len(by_job) == JOBS
        for job_id, bodies in by_job.items():
            assert len({body["task_id"] for body in bodies}) == 1, (job_id, bodies)
            assert sorted(body["deduplicated"] for body in bodies) == [False] + [True] * (len(bodies) - 1), bodies
        task_ids = {job_id: bodies[0]["task_id"] for job_id, bodies in by_job.items()}
        assert len(set(task_ids.values())) == JOBS

        worker = start_worker(tmp_path, database_url, "examples.flask_gunicorn.tasks")

        def all_finished() -> dict[str, dict[str, Any]] | None:
            statuses = {job_id: http_json("GET", f"{base}/tasks/{task_id}")[1] for job_id, task_id in task_ids.items()}
            return statuses if all(s["status"] in ("completed", "failed") for s in statuses.values()) else None

        statuses = wait_until(all_finished, timeout=40, what="all cover letters written", services=(server, worker))
        for job_id, status in statuses.items():
            assert status["status"] == "completed", status
            assert status["result"]["job_id"] == job_id
            assert (status["progress"], status["progress_message"]) == (100.0, "done")

        # "At a time": a finished letter releases its job, and a live duplicate is still refused.
        again = http_json("POST", f"{base}/jobs/job-0/cover-letter", {"step_seconds": 0.25})[1]
        duplicate = http_json("POST", f"{base}/jobs/job-0/cover-letter", {"step_seconds": 0.25})[1]
        assert again["deduplicated"] is False and again["task_id"] not in task_ids.values()
        assert duplicate == again | {"deduplicated": True}
        assert http_json("GET", f"{base}/tasks/999999") == (404, {"error": "no task with id 999999"})
        assert http_json("POST", f"{base}/tasks/999999/cancel")[0] == 404
        code, body = http_json("POST", f"{base}/tasks/{task_ids['job-0']}/cancel")  # finished already
        assert code == 409 and "already completed" in body["error"]
        code, body = http_json("POST", f"{base}/tasks/{again['task_id']}/cancel")
        assert code == 202 and body["status"] in ("cancelled", "running"), body  # running: asked to stop
        wait_until(
            lambda: http_json("GET", f"{base}/tasks/{again['task_id']}")[1]["status"] == "cancelled",
            timeout=20,
            what="the cancelled letter",
            services=(server, worker),
        )
        assert http_json("POST", f"{base}/jobs/job-1/cover-letter", {"step_seconds": "slow"})[0] == 400
    finally:
        server.stop()
        if worker is not None:
            worker.stop()
