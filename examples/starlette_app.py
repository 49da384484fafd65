"""A Starlette app whose route enqueues through taskq instead of starting a `BackgroundTask`.

`JSONResponse(..., background=BackgroundTask(summarise, text))` runs the job inside the web process: a
restart, a deploy or a crash loses it without a trace. Enqueued through taskq, the job is a row in the
database from the moment the route answers, and a worker runs it whether or not the web process lives.

Run it from the repository root, in two terminals (the same database for both):

    export TASKQ_DATABASE_URL=sqlite:///$PWD/documents.db
    uvicorn examples.starlette_app:app --port 8001
    python -m taskq --import examples.starlette_app worker

    curl -X POST localhost:8001/documents -H 'content-type: application/json' -d '{"text": "a long report ..."}'
    # 202 {"task_id": 1, "status_url": "/tasks/1"}; kill uvicorn now if you like, the worker still summarises
    curl localhost:8001/tasks/1

FastHTML apps are Starlette apps: the same two lines go in an `@rt` route
(`enqueued = await store().enqueue_async("documents.summarise", [text])`: the store call runs in a thread, never
on the event loop).
"""

from __future__ import annotations

import functools
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import taskq
from taskq.context import TaskContext

SECONDS_PER_PARAGRAPH = 0.2  # stands in for a slow model call per paragraph


@taskq.task(name="documents.summarise", max_retries=3, timeout=600)
def summarise_document(ctx: TaskContext, text: str) -> dict[str, object]:
    paragraphs = [paragraph for paragraph in text.split("\n\n") if paragraph.strip()] or [text]
    firsts = []
    for done, paragraph in enumerate(paragraphs, start=1):
        ctx.check_cancelled()
        time.sleep(SECONDS_PER_PARAGRAPH)
        firsts.append(paragraph.strip().split(".")[0])
        ctx.progress(100.0 * done / len(paragraphs), f"paragraph {done} of {len(paragraphs)}")
    return {"paragraphs": len(paragraphs), "words": len(text.split()), "summary": ". ".join(firsts)}


@functools.cache
def store() -> taskq.Store:
    return taskq.open_store()  # TASKQ_DATABASE_URL, else sqlite:///taskq.db


async def submit_document(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": 'the body must be JSON: {"text": "..."}'}, status_code=400)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return JSONResponse({"error": "text must be a non-empty string"}, status_code=400)
    # The store is synchronous (a short INSERT); a worker thread keeps the event loop free meanwhile.
    enqueued = await store().enqueue_async(summarise_document.name, [text])
    return JSONResponse({"task_id": enqueued.id, "status_url": f"/tasks/{enqueued.id}"}, status_code=202)


async def task_status(request: Request) -> JSONResponse:
    task = await store().get_async(request.path_params["task_id"])
    if task is None:
        return JSONResponse({"error": "no such task"}, status_code=404)
    return JSONResponse({"id": task.id, "status": task.status.value, "progress": task.progress, "result": task.result})


app = Starlette(
    routes=[
        Route("/documents", submit_document, methods=["POST"]),
        Route("/tasks/{task_id:int}", task_status),
    ]
)
