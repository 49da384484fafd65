"""The JSON API: one handler per endpoint, each a thin call into the store run off the event loop."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from taskq import registry
from taskq.clock import parse_duration, parse_instant
from taskq.model import InvalidTaskArguments, Status, Task
from taskq.store import Store

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_ALIVE_WITHIN_SECONDS = 60.0
ENQUEUE_FIELDS = frozenset(
    {"name", "args", "kwargs", "priority", "delay", "run_after", "dedup_key", "max_retries", "queue", "timeout"}
)


class UnsupportedMediaType(InvalidTaskArguments):
    """The body is not declared as JSON (415): a form post from another site cannot declare it."""


def _store(request: Request) -> Store:
    return request.app.state.store


def _summary(task: Task) -> dict[str, Any]:
    """A task for lists: everything but the error log, which can be large and is polled every second."""
    data = task.to_dict()
    del data["error_log"]
    return data


def _optional(body: dict[str, Any], key: str, kinds: tuple[type, ...], label: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise InvalidTaskArguments(f"{key} must be {label}, got {json.dumps(value)}")
    return value


def _run_after(body: dict[str, Any]) -> datetime | float | None:
    delay, run_after = body.get("delay"), body.get("run_after")
    if delay is not None and run_after is not None:
        raise InvalidTaskArguments("give delay or run_after, not both")
    try:
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, (int, float, str)):
                raise ValueError(f"delay must be seconds or a duration such as '30s', got {json.dumps(delay)}")
            return parse_duration(delay).total_seconds()
        if run_after is not None:
            if not isinstance(run_after, str):
                raise ValueError(f"run_after must be an ISO 8601 string, got {json.dumps(run_after)}")
            return parse_instant(run_after)
    except ValueError as error:
        raise InvalidTaskArguments(str(error)) from None
    return None


async def _json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidTaskArguments("request body is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidTaskArguments(f"request body is not valid JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(body, dict):
        raise InvalidTaskArguments(f"request body must be a JSON object, got {type(body).__name__}")
    return body


async def enqueue(request: Request) -> JSONResponse:
    body = await _json_object(request)
    unknown = sorted(set(body) - ENQUEUE_FIELDS)
    if unknown:
        raise InvalidTaskArguments(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(ENQUEUE_FIELDS))})")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidTaskArguments("name must be a non-empty string")
    registry.lookup(name)  # workers could only fail a task nobody registered
    args = body.get("args", [])
    if not isinstance(args, list):
        raise InvalidTaskArguments(f"args must be a JSON array, got {json.dumps(args)}")
    kwargs = body.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise InvalidTaskArguments(f"kwargs must be a JSON object, got {json.dumps(kwargs)}")
    max_retries = _optional(body, "max_retries", (int,), "a whole number >= 0")
    if max_retries is not None and max_retries < 0:
        raise InvalidTaskArguments("max_retries must be a whole number >= 0")
    result = await run_in_threadpool(
        _store(request).enqueue,
        name,
        args,
        kwargs,
        priority=_optional(body, "priority", (int,), "a whole number"),
        run_after=_run_after(body),
        dedup_key=_optional(body, "dedup_key", (str,), "a string"),
        max_retries=max_retries,
        queue=_optional(body, "queue", (str,), "a string") or None,
        timeout=_optional(body, "timeout", (int, float), "a number of seconds"),
    )
    status_code = 200 if result.deduplicated else 201
    return JSONResponse({"id": result.id, "deduplicated": result.deduplicated}, status_code=status_code)


def _int_param(request: Request, key: str, *, minimum: int, maximum: int | None = None) -> int | None:
    text = request.query_params.get(key)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidTaskArguments(f"{key} must be a whole number, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise InvalidTaskArguments(f"{key} must be >= {minimum}{upper}, got {value}")
    return value


async def list_tasks(request: Request) -> JSONResponse:
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        raise InvalidTaskArguments(f"unknown status {status!r} (one of {', '.join(s.value for s in Status)})")
    limit = _int_param(request, "limit", minimum=1, maximum=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    rows = await run_in_threadpool(
        _store(request).list,
        status=status,
        name=params.get("name") or None,
        queue=params.get("queue") or None,
        parent_id=_int_param(request, "parent", minimum=1),
        before_id=_int_param(request, "before_id", minimum=1),
        limit=limit,
    )
    next_before_id = rows[-1].id if len(rows) == limit else None
    return JSONResponse({"tasks": [_summary(task) for task in rows], "next_before_id": next_before_id})


async def show_task(request: Request) -> JSONResponse:
    task_id: int = request.path_params["task_id"]
    store = _store(request)
    task = await run_in_threadpool(store.require, task_id)
    data = task.to_dict()
    data["children_by_status"] = await run_in_threadpool(store.children_counts, task_id)
    return JSONResponse(data)


async def cancel_task(request: Request) -> JSONResponse:
    task_id: int = request.path_params["task_id"]
    status = await run_in_threadpool(_store(request).cancel, task_id)
    return JSONResponse({"id": task_id, "status": status.value})


async def retry_task(request: Request) -> JSONResponse:
    task_id: int = request.path_params["task_id"]
    await run_in_threadpool(_store(request).retry, task_id)
    return JSONResponse({"id": task_id, "status": Status.PENDING.value})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_store(request).stats))


async def list_workers(request: Request) -> JSONResponse:
    text = request.query_params.get("alive_within")
    alive_within = DEFAULT_ALIVE_WITHIN_SECONDS
    if text:
        try:
            alive_within = parse_duration(text).total_seconds()
        except ValueError as error:
            raise InvalidTaskArguments(f"alive_within: {error}") from None
    workers = await run_in_threadpool(_store(request).list_workers, alive_within=alive_within)
    return JSONResponse({"workers": [worker.to_dict() for worker in workers]})


routes = [
    Route("/api/tasks", enqueue, methods=["POST"]),
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/tasks/{task_id:int}", show_task, methods=["GET"]),
    Route("/api/tasks/{task_id:int}/cancel", cancel_task, methods=["POST"]),
    Route("/api/tasks/{task_id:int}/retry", retry_task, methods=["POST"]),
    Route("/api/stats", stats, methods=["GET"]),
    Route("/api/workers", list_workers, methods=["GET"]),
]
