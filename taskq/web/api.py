"""The JSON API: one handler per endpoint, each a thin call into the store run off the event loop."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from taskq import registry
from taskq.clock import parse_duration, utc_now
from taskq.events import log_event
from taskq.filters import parse_filter
from taskq.json_limits import MAX_JSON_DEPTH, JsonRefused, check_text
from taskq.maintenance import StatsRollup
from taskq.model import ClippedValue, InvalidTaskArguments, Status, TaskNotFound
from taskq.requests import MAX_TASK_ID, TEXT_LIMITS, check_stored_text, check_task_id, parse_request
from taskq.scheduler import parse_schedules
from taskq.store import Store
from taskq.store.metrics import RUN_OUTCOMES, percentile

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_ALIVE_WITHIN_SECONDS = 60.0
log = logging.getLogger("taskq.web")

ROLLUP_EVERY_SECONDS = 5.0  # how often reads of counts and charts let the rollup catch up, in the background
BULK_ACTIONS = ("retry", "cancel")
BULK_FIELDS = ("action", "ids", "filter")
LIST_PARAMETERS = ("limit", "before_id", "after_id")  # what GET /api/tasks takes besides the filter
# args, kwargs or result longer than this (bytes of JSON) come clipped in GET /api/tasks/ID: the task page
# polls it every second, and pretty-printing megabytes in a browser takes seconds anyway.
DETAIL_CLIP_BYTES = 64 * 1024
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


async def _json_object(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        # Before decoding (a deeper body could exhaust the handler's stack); the fields are one level in.
        check_text(text, MAX_JSON_DEPTH + 1)
        body = json.loads(text)
    except UnicodeDecodeError:
        raise InvalidTaskArguments("request body is not UTF-8") from None
    except JsonRefused as refused:  # check_text refuses only for depth, so it says how deep
        if refused.key is None:
            raise InvalidTaskArguments(
                f"request body is nested {refused.depth} levels deep (its fields may nest {MAX_JSON_DEPTH})"
            ) from None
        depth = (refused.depth or 0) - 1  # the field's own: the body's less the object around it
        raise InvalidTaskArguments(
            f"{refused.key} is nested {depth} levels deep (taskq keeps at most {MAX_JSON_DEPTH})"
        ) from None
    except json.JSONDecodeError as error:
        raise InvalidTaskArguments(f"request body is not valid JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(body, dict):
        raise InvalidTaskArguments(f"request body must be a JSON object, got {type(body).__name__}")
    return body


async def enqueue(request: Request) -> JSONResponse:
    task = parse_request(await _json_object(request))
    registry.lookup(task.name)  # workers could only fail a task nobody registered
    result = (await run_in_threadpool(_store(request).enqueue_many, [task]))[0]
    status_code = 200 if result.deduplicated else 201
    return JSONResponse({"id": result.id, "deduplicated": result.deduplicated}, status_code=status_code)


def _int_param(request: Request, key: str, *, minimum: int, maximum: int = MAX_TASK_ID) -> int | None:
    text = request.query_params.get(key)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidTaskArguments(f"{key} must be a whole number, got {text!r}") from None
    if not minimum <= value <= maximum:  # a cursor past 2**63 - 1 would fail in the driver, not match
        raise InvalidTaskArguments(f"{key} must be >= {minimum} and <= {maximum}, got {value}")
    return value


def _task_id(request: Request) -> int:
    """The path's task id; ids past what the database holds (the route takes any digits) are not found."""
    task_id: int = request.path_params["task_id"]
    if task_id > MAX_TASK_ID:
        raise TaskNotFound(f"no task with id {task_id}")
    return task_id


async def list_tasks(request: Request) -> JSONResponse:
    """Summaries (sizes of args, kwargs and result, the error's headline), never the values: this is
    polled every second by every open tab."""
    where = parse_filter(request.query_params, also=LIST_PARAMETERS)
    limit = _int_param(request, "limit", minimum=1, maximum=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
    before_id = _int_param(request, "before_id", minimum=1)
    after_id = _int_param(request, "after_id", minimum=0)
    _kick_rollup(request)  # name search resolves names through the rollup totals
    page = await run_in_threadpool(
        lambda: _store(request).summaries(where, before_id=before_id, after_id=after_id, limit=limit)
    )
    return JSONResponse(
        {
            "tasks": [task.to_dict() for task in page.tasks],
            "next_before_id": page.older_than,
            "newer_after_id": page.newer_than,
        }
    )


async def count_tasks(request: Request) -> JSONResponse:
    where = parse_filter(request.query_params)
    return JSONResponse({"count": await run_in_threadpool(_store(request).count, where)})


async def bulk_action(request: Request) -> JSONResponse:
    """{"action": "retry"|"cancel", "ids": [...]} or {"action": ..., "filter": {status, name_contains, ...}}:
    the page asks for the count first and shows it in its confirmation."""
    body = await _json_object(request)
    unknown = sorted(key for key in body if key not in BULK_FIELDS)
    if unknown:  # a misspelt or newer field: acting without it could act on more than was meant
        raise InvalidTaskArguments(f"unknown field {unknown[0]!r} (known: {', '.join(BULK_FIELDS)})")
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
    for task_id in ids or ():
        check_task_id("ids", task_id)
    if where is not None and not isinstance(where, dict):
        raise InvalidTaskArguments("filter must be a JSON object")
    # {} is allowed: an explicit "every task" (the page's "Retry all" with no filter set, after a count).
    parsed = None if where is None else parse_filter(where)
    store = _store(request)
    run = store.bulk_retry if action == "retry" else store.bulk_cancel
    result = await run_in_threadpool(lambda: run(ids=ids, where=parsed))
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
    """The task; args, kwargs or result longer than DETAIL_CLIP_BYTES of JSON come as null, with their
    size and first characters under "clipped", unless ?full=1 asks for them whole; `?values=text` gives
    args, kwargs and result as exact JSON text."""
    task_id = _task_id(request)
    as_text = _values_as_text(request)
    full = request.query_params.get("full")
    if full not in (None, "0", "1"):
        raise InvalidTaskArguments(f"full must be 0 or 1, got {full!r}")
    store = _store(request)
    clipped: dict[str, ClippedValue] = {}
    if full == "1":
        task = await run_in_threadpool(store.require, task_id)
    else:
        task, clipped = await run_in_threadpool(lambda: store.require_clipped(task_id, max_bytes=DETAIL_CLIP_BYTES))
    data = task.to_dict()
    for key in clipped:
        data[key] = None
    data["clipped"] = {key: value.to_dict() for key, value in clipped.items()}
    data["children_by_status"] = await run_in_threadpool(store.children_counts, task_id)
    return JSONResponse(as_exact_text(data) if as_text else data)


async def cancel_task(request: Request) -> JSONResponse:
    task_id = _task_id(request)
    status = await run_in_threadpool(_store(request).cancel, task_id)
    return JSONResponse({"id": task_id, "status": status.value})


async def retry_task(request: Request) -> JSONResponse:
    task_id = _task_id(request)
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
    """Finished tasks per step and outcome (RUN_OUTCOMES: completed, failed), queue depth per step and
    runtime percentiles per task name over the last hour or day, from the per-minute rollups (plus the
    few rows not rolled up yet)."""
    window = request.query_params.get("window") or "hour"
    if window not in CHART_WINDOWS:
        raise InvalidTaskArguments(f"window must be one of {', '.join(CHART_WINDOWS)}, got {window!r}")
    queue = request.query_params.get("queue") or None
    name = request.query_params.get("name") or None
    for key, value in (("queue", queue), ("name", name)):
        if value is not None:  # a NUL would reach PostgreSQL and come back as a 503
            check_stored_text(key, value, TEXT_LIMITS[key])
    _kick_rollup(request)
    length, step = CHART_WINDOWS[window]
    now = utc_now()
    step_seconds = step.total_seconds()
    start = datetime.fromtimestamp((now - length).timestamp() // step_seconds * step_seconds, tz=UTC)
    slots = int((now - start) / step) + 1
    store = _store(request)
    window_data = await run_in_threadpool(lambda: store.chart_window(since=start, queue=queue, name=name))
    samples = await run_in_threadpool(lambda: store.queue_history(since=start, queue=queue))

    def slot(moment: datetime) -> int:
        return min(slots - 1, max(0, int((moment - start) / step)))

    throughput = {outcome: [0] * slots for outcome in RUN_OUTCOMES}
    for minute, counts in window_data.finished.items():
        for outcome, count in zip(RUN_OUTCOMES, counts, strict=True):
            throughput[outcome][slot(minute)] += count
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
            "throughput": throughput,
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
    Route("/api/tasks/{task_id:task_id}", show_task, methods=["GET"]),
    Route("/api/tasks/{task_id:task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/api/tasks/{task_id:task_id}/retry", retry_task, methods=["POST"]),
    Route("/api/stats", stats, methods=["GET"]),
    Route("/api/workers", list_workers, methods=["GET"]),
    Route("/api/queues", queues, methods=["GET"]),
    Route("/api/facets", facets, methods=["GET"]),
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/charts", charts, methods=["GET"]),
]
