"""The JSON API: one handler per endpoint, each a thin call into the store run off the event loop."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from taskq import registry
from taskq.clock import parse_duration, utc_now
from taskq.events import log_event
from taskq.maintenance import StatsRollup
from taskq.model import InvalidTaskArguments, Status, Task, TaskFilter
from taskq.requests import parse_request
from taskq.scheduler import parse_schedules
from taskq.store import Store
from taskq.store.metrics import percentile

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_ALIVE_WITHIN_SECONDS = 60.0
log = logging.getLogger("taskq.web")

ROLLUP_EVERY_SECONDS = 5.0  # how often reads of counts and charts let the rollup catch up, in the background
BULK_ACTIONS = ("retry", "cancel")
MAX_BULK_IDS = 10_000
# window -> (length, chart step): a point per minute for the hour, per quarter hour for the day
CHART_WINDOWS = {"hour": (timedelta(hours=1), timedelta(minutes=1)), "day": (timedelta(days=1), timedelta(minutes=15))}


class UnsupportedMediaType(InvalidTaskArguments):
    """The body is not declared as JSON (415): a form post from another site cannot declare it."""


class RollupTicker:
    """Runs the StatsRollup duty in a background thread at most every ROLLUP_EVERY_SECONDS, when a read
    asks for it: a dashboard keeps its rollups current without a pool's help, and no request waits for
    a catch-up (the first run on a big table folds its rows over several ticks)."""

    def __init__(self, store: Store) -> None:
        self.duty = StatsRollup(store)
        self._lock = threading.Lock()
        self._next = 0.0

    def kick(self) -> None:
        if time.monotonic() < self._next or not self._lock.acquire(blocking=False):
            return
        self._next = time.monotonic() + ROLLUP_EVERY_SECONDS
        threading.Thread(target=self._run, name="taskq-rollup", daemon=True).start()

    def _run(self) -> None:
        try:
            self.duty.run_once(utc_now())
        except Exception:  # reads stay exact without the rollup, only slower: log and try next tick
            log_event(log, logging.ERROR, "rollup_error", exc_info=True)
        finally:
            self._lock.release()


def _store(request: Request) -> Store:
    return request.app.state.store


def _kick_rollup(request: Request) -> None:
    ticker: RollupTicker | None = getattr(request.app.state, "rollup", None)
    if ticker is not None:
        ticker.kick()


def error_headline(error: str | None) -> str | None:
    """The line of an error a list shows: a traceback's last line (the exception), else the first line."""
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return None
    return lines[-1].strip() if lines[0].startswith("Traceback") else lines[0].strip()


def _summary(task: Task) -> dict[str, Any]:
    """A task for lists: the error's headline instead of the error and its log, which can be large and
    are polled every second (the task view has them)."""
    data = task.to_dict()
    del data["error_log"]
    data["error_line"] = error_headline(data.pop("error"))
    return data


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
    task = parse_request(await _json_object(request))
    registry.lookup(task.name)  # workers could only fail a task nobody registered
    result = await run_in_threadpool(_store(request).enqueue, **vars(task))
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


def _filter(params: Any) -> TaskFilter:
    """A TaskFilter from query parameters (or a bulk body's "filter" object), each checked."""

    def text(key: str) -> str | None:
        value = params.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidTaskArguments(f"{key} must be a string, got {json.dumps(value)}")
        return value.strip() or None

    status = text("status")
    if status is not None and status not in {s.value for s in Status}:
        raise InvalidTaskArguments(f"unknown status {status!r} (one of {', '.join(s.value for s in Status)})")
    parent = params.get("parent")
    if parent not in (None, ""):
        try:
            parent = int(parent)
        except (TypeError, ValueError):
            raise InvalidTaskArguments(f"parent must be a whole number, got {parent!r}") from None
        if parent < 1:
            raise InvalidTaskArguments(f"parent must be >= 1, got {parent}")
    return TaskFilter(
        status=None if status is None else Status(status),
        name=text("name"),
        name_contains=text("name_contains"),
        queue=text("queue"),
        parent_id=parent or None,
        error_contains=text("error"),
        args_contains=text("args"),
    )


async def list_tasks(request: Request) -> JSONResponse:
    limit = _int_param(request, "limit", minimum=1, maximum=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    _kick_rollup(request)  # name search resolves names through the rollup totals
    page = await run_in_threadpool(
        _store(request).page,
        _filter(request.query_params),
        before_id=_int_param(request, "before_id", minimum=1),
        after_id=_int_param(request, "after_id", minimum=0),
        limit=limit,
    )
    return JSONResponse(
        {
            "tasks": [_summary(task) for task in page.tasks],
            "next_before_id": page.older_than,
            "newer_after_id": page.newer_than,
        }
    )


async def count_tasks(request: Request) -> JSONResponse:
    return JSONResponse({"count": await run_in_threadpool(_store(request).count, _filter(request.query_params))})


async def bulk_action(request: Request) -> JSONResponse:
    """{"action": "retry"|"cancel", "ids": [...]} or {"action": ..., "filter": {status, name_contains, ...}}:
    the page asks for the count first and shows it in its confirmation."""
    body = await _json_object(request)
    action = body.get("action")
    if action not in BULK_ACTIONS:
        raise InvalidTaskArguments(f"action must be one of {', '.join(BULK_ACTIONS)}, got {json.dumps(action)}")
    ids, where = body.get("ids"), body.get("filter")
    if (ids is None) == (where is None):
        raise InvalidTaskArguments("give ids or filter, not both")
    if ids is not None and (
        not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise InvalidTaskArguments("ids must be a JSON array of task ids")
    if ids is not None and len(ids) > MAX_BULK_IDS:
        raise InvalidTaskArguments(f"at most {MAX_BULK_IDS} ids at once; act on a filter instead")
    if where is not None and not isinstance(where, dict):
        raise InvalidTaskArguments("filter must be a JSON object")
    store = _store(request)
    run = store.bulk_retry if action == "retry" else store.bulk_cancel
    result = await run_in_threadpool(lambda: run(ids=ids, where=None if where is None else _filter(where)))
    return JSONResponse(
        {"action": action, "matched": result.matched, "changed": result.changed, "skipped": result.skipped}
    )


EXACT_TEXT_FIELDS = ("args", "kwargs", "result")


def _values_as_text(request: Request) -> bool:
    values = request.query_params.get("values")
    if values not in (None, "text"):
        raise InvalidTaskArguments(f"values must be 'text' (or left out), got {values!r}")
    return values == "text"


def as_exact_text(data: dict[str, Any]) -> dict[str, Any]:
    """args, kwargs and result as the JSON text Python writes for them (indented; a null result stays
    null). For the dashboard: JavaScript's JSON.parse reads numbers as doubles, so 2**53 + 1 or
    18446744073709551616 would show rounded and 1.0 as 1; text written here is shown as it is, in every
    browser (JSON.parse's source-text access, the other way, is not in all of them yet)."""
    for field in EXACT_TEXT_FIELDS:
        if data[field] is not None:
            data[field] = json.dumps(data[field], indent=2, ensure_ascii=False)
    return data


async def show_task(request: Request) -> JSONResponse:
    """One task, every field; `?values=text` gives args, kwargs and result as exact JSON text."""
    task_id: int = request.path_params["task_id"]
    as_text = _values_as_text(request)
    store = _store(request)
    task = await run_in_threadpool(store.require, task_id)
    data = task.to_dict()
    data["children_by_status"] = await run_in_threadpool(store.children_counts, task_id)
    return JSONResponse(as_exact_text(data) if as_text else data)


async def cancel_task(request: Request) -> JSONResponse:
    task_id: int = request.path_params["task_id"]
    status = await run_in_threadpool(_store(request).cancel, task_id)
    return JSONResponse({"id": task_id, "status": status.value})


async def retry_task(request: Request) -> JSONResponse:
    task_id: int = request.path_params["task_id"]
    await run_in_threadpool(_store(request).retry, task_id)
    return JSONResponse({"id": task_id, "status": Status.PENDING.value})


async def stats(request: Request) -> JSONResponse:
    _kick_rollup(request)
    return JSONResponse(await run_in_threadpool(_store(request).stats))


async def queues(request: Request) -> JSONResponse:
    now = utc_now()
    depths = await run_in_threadpool(lambda: _store(request).queue_depths(now=now))
    return JSONResponse({"now": now.isoformat(), "queues": [depth.to_dict(now) for depth in depths]})


async def facets(request: Request) -> JSONResponse:
    """Known queues and task names, for the filter pickers."""
    store = _store(request)
    known_queues = await run_in_threadpool(store.known_queues)
    known_names = await run_in_threadpool(store.known_names) or []
    names = sorted(set(known_names) | set(registry.registered_names()))
    return JSONResponse({"queues": known_queues, "names": names})


async def list_schedules(request: Request) -> JSONResponse:
    configured, _errors = parse_schedules(request.app.state.settings.schedule)
    specs = {s.name: s for s in configured}
    rows = []
    for overview in await run_in_threadpool(_store(request).schedule_overview):
        spec = specs.get(overview.name)
        every = None if spec is None or spec.every is None else spec.every.total_seconds()
        rows.append(
            {
                **overview.to_dict(),
                "task": None if spec is None else spec.task,
                "every_seconds": every,
                "cron": None if spec is None else spec.cron,
            }
        )
    return JSONResponse({"schedules": rows})


async def charts(request: Request) -> JSONResponse:
    """Completed and failed per step, queue depth per step and runtime percentiles per task name over
    the last hour or day, from the per-minute rollups (plus the few rows not rolled up yet)."""
    window = request.query_params.get("window") or "hour"
    if window not in CHART_WINDOWS:
        raise InvalidTaskArguments(f"window must be one of {', '.join(CHART_WINDOWS)}, got {window!r}")
    queue = request.query_params.get("queue") or None
    name = request.query_params.get("name") or None
    _kick_rollup(request)
    length, step = CHART_WINDOWS[window]
    now = utc_now()
    step_seconds = step.total_seconds()
    start = datetime.fromtimestamp((now - length).timestamp() // step_seconds * step_seconds, tz=timezone.utc)
    slots = int((now - start) / step) + 1
    store = _store(request)
    window_data = await run_in_threadpool(lambda: store.chart_window(since=start, queue=queue, name=name))
    samples = await run_in_threadpool(lambda: store.queue_history(since=start, queue=queue))

    def slot(moment: datetime) -> int:
        return min(slots - 1, max(0, int((moment - start) / step)))

    completed, failed = [0] * slots, [0] * slots
    for minute, (done, broke) in window_data.finished.items():
        completed[slot(minute)] += done
        failed[slot(minute)] += broke
    by_name = window_data.runtimes
    latest: dict[tuple[int, str], dict[str, Any]] = {}  # the last sample of each queue in each slot
    for sample in samples:
        latest[(slot(sample["minute"]), sample["queue"])] = sample
    depth = {key: [0] * slots for key in ("ready", "pending", "running")}
    for (index, _queue), sample in latest.items():
        for key in depth:
            depth[key][index] += int(sample[key])
    runtimes = [
        {
            "name": task_name,
            "count": sum(buckets),
            **{f"p{q}": percentile(buckets, q / 100) for q in (50, 95, 99)},
        }
        for task_name, buckets in sorted(by_name.items())
        if sum(buckets)
    ]
    return JSONResponse(
        {
            "window": window,
            "step_seconds": step.total_seconds(),
            "start": start.isoformat(),
            "now": now.isoformat(),
            "throughput": {"completed": completed, "failed": failed},
            "depth": depth,
            "runtimes": runtimes,
        }
    )


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
    Route("/api/tasks/count", count_tasks, methods=["GET"]),
    Route("/api/tasks/bulk", bulk_action, methods=["POST"]),
    Route("/api/tasks/{task_id:int}", show_task, methods=["GET"]),
    Route("/api/tasks/{task_id:int}/cancel", cancel_task, methods=["POST"]),
    Route("/api/tasks/{task_id:int}/retry", retry_task, methods=["POST"]),
    Route("/api/stats", stats, methods=["GET"]),
    Route("/api/workers", list_workers, methods=["GET"]),
    Route("/api/queues", queues, methods=["GET"]),
    Route("/api/facets", facets, methods=["GET"]),
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/charts", charts, methods=["GET"]),
]
