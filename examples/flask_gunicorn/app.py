"""A Flask app that hands slow work to taskq and answers at once.

Run it from the repository root, in two terminals (the same database for both):

    export TASKQ_DATABASE_URL=sqlite:///$PWD/cover_letters.db
    gunicorn -k gthread --threads 4 -w 2 -b 127.0.0.1:8000 examples.flask_gunicorn.app:app
    python -m taskq --import examples.flask_gunicorn.tasks worker --workers 2

    curl -X POST localhost:8000/jobs/42/cover-letter -H 'content-type: application/json' -d '{"applicant": "Ada"}'
    # 202 {"task_id": 1, "deduplicated": false, "status_url": "/tasks/1"}; the same POST again while the
    # letter is being written returns the same task_id with "deduplicated": true
    curl localhost:8000/tasks/1        # status, progress (0-100 and a message), result when completed
    curl -X POST localhost:8000/tasks/1/cancel   # 202 {"id": 1, "status": "cancelled"}; 409 once finished

The request thread only inserts a row (a few milliseconds); the letter is written by the worker, so it
survives the user closing the tab, a Gunicorn worker timing out, or a redeploy of the web app.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, abort, jsonify, request
from werkzeug.exceptions import HTTPException

import taskq
from examples.flask_gunicorn.tasks import write_cover_letter
from taskq.model import InvalidTransition, TaskNotFound

app = Flask(__name__)


@app.errorhandler(HTTPException)
def json_error(error: HTTPException) -> tuple[Any, int]:
    # An API answers in JSON, errors included: a client parsing the body must not get Flask's HTML page.
    return jsonify({"error": error.description}), error.code or 500


@functools.cache
def store() -> taskq.Store:
    # Opened on first use in each Gunicorn worker process, never before the fork (--preload would
    # otherwise share one SQLite connection pool between processes).
    return taskq.open_store()  # TASKQ_DATABASE_URL, else sqlite:///taskq.db


@app.post("/jobs/<job_id>/cover-letter")
def request_cover_letter(job_id: str) -> tuple[Any, int, dict[str, str]]:
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    applicant = str(body.get("applicant", "a motivated applicant"))
    kwargs: dict[str, Any] = {}
    if "step_seconds" in body:  # a demo knob: how slow the pretend language model is
        step_seconds = body["step_seconds"]
        if not isinstance(step_seconds, (int, float)) or not 0 <= step_seconds <= 60:
            return jsonify({"error": "step_seconds must be a number of seconds from 0 to 60"}), 400, {}
        kwargs["step_seconds"] = float(step_seconds)
    # One cover letter per job at a time: while one is pending or running, the same POST returns it.
    enqueued = store().enqueue(write_cover_letter.name, [job_id, applicant], kwargs, dedup_key=f"cover-letter:{job_id}")
    status_url = f"/tasks/{enqueued.id}"
    payload = {"task_id": enqueued.id, "deduplicated": enqueued.deduplicated, "status_url": status_url}
    return jsonify(payload), 202, {"Location": status_url}


@app.get("/tasks/<int:task_id>")
def task_status(task_id: int) -> Any:
    task = store().get(task_id)
    if task is None:
        abort(404, description=f"no task with id {task_id}")
    return jsonify(
        {
            "id": task.id,
            "status": task.status.value,
            "progress": task.progress,
            "progress_message": task.progress_message,
            "result": task.result,
            "error": task.error,
        }
    )


@app.post("/tasks/<int:task_id>/cancel")
def cancel_task(task_id: int) -> tuple[Any, int]:
    """A pending task is cancelled at once; a running one is asked to stop (it finishes as cancelled)."""
    try:
        status = store().cancel(task_id)
    except TaskNotFound:
        abort(404, description=f"no task with id {task_id}")
    except InvalidTransition as error:
        return jsonify({"error": str(error)}), 409
    return jsonify({"id": task_id, "status": status.value}), 202


@app.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}
