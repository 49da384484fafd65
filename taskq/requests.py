"""One validation of an enqueue request, whichever way it comes in: the Python API (the store checks every
TaskRequest before any SQL runs), `taskq enqueue`, POST /api/tasks and the `schedule:` entries of
settings.yaml. Each raises InvalidTaskArguments with a message that names the field and the bad value.

`check_request` checks a TaskRequest as Python code makes it; `parse_request` first turns raw input (a
JSON body, a YAML entry, command-line text) into one: durations may be text ('30s'), run_after is ISO 8601
text, unknown fields are refused. The store runs `check_request` on its hottest path (a single enqueue on
SQLite): it costs a handful of isinstance checks, what the store checked before it existed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, String

from taskq.clock import parse_duration, parse_instant, utc_now
from taskq.model import MAX_DELAY_SECONDS, InvalidTaskArguments, TaskRequest, check_json
from taskq.schema import tasks

# The fields raw input may give (TaskRequest's parent_id and continuation are set by taskq itself).
ENQUEUE_FIELDS = (
    "name",
    "args",
    "kwargs",
    "priority",
    "delay",
    "run_after",
    "dedup_key",
    "max_retries",
    "queue",
    "timeout",
)

# A check of a call against the task's signature (registry.check_arguments: the store never imports the
# registry); raises InvalidTaskArguments naming the argument.
ArgumentCheck = Callable[[str, Sequence[Any], Mapping[str, Any]], None]


def _refuse(field: str, expected: str, value: Any) -> InvalidTaskArguments:
    return InvalidTaskArguments(f"{field} must be {expected}, got {value!r}")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the limits of the strictest dialect ----------------------------------------------------------------
# SQLite keeps what PostgreSQL refuses (a 300-character name, priority 2**40): code that works on one would
# break on the other, with a raw driver error. Each limit is checked here, before any SQL runs.

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # PostgreSQL's INTEGER (priority, max_retries)
MAX_TASK_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: no row has a larger id
MAX_TIMEOUT_SECONDS = MAX_DELAY_SECONDS  # as for delays: longer is a mistake, and overflows date arithmetic


def _varchar_length(column: Column[Any]) -> int:
    assert isinstance(column.type, String) and column.type.length is not None
    return column.type.length


# The VARCHAR lengths of schema.py, which PostgreSQL enforces.
TEXT_LIMITS = {name: _varchar_length(tasks.c[name]) for name in ("name", "queue", "dedup_key", "continuation")}


def check_int32(field: str, value: int, minimum: int = INT32_MIN) -> None:
    if not minimum <= value <= INT32_MAX:
        raise InvalidTaskArguments(f"{field} must be between {minimum} and {INT32_MAX}, got {value}")


def check_stored_text(field: str, text: str, max_chars: int | None) -> None:
    """Text PostgreSQL can store: no NUL, valid UTF-8 (a lone surrogate is not), at most `max_chars`."""
    if "\x00" in text:
        raise InvalidTaskArguments(f"{field} must not contain a NUL character: {text[:100]!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidTaskArguments(
            f"{field} must be valid Unicode: {text[error.start : error.end]!r} at position {error.start}"
            " is a lone surrogate"
        ) from None
    if max_chars is not None and len(text) > max_chars:
        raise InvalidTaskArguments(f"{field} must be at most {max_chars} characters, got {len(text)}")


def check_task_id(field: str, value: int) -> None:
    if not 1 <= value <= MAX_TASK_ID:
        raise InvalidTaskArguments(f"{field} must be a task id (1 to {MAX_TASK_ID}), got {value}")


def _check_option_limits(priority: Any, max_retries: Any, queue: Any, timeout: Any) -> None:
    """The ranges of options whose types check_options has already checked (@task's among them)."""
    if queue is not None:
        check_stored_text("queue", queue, TEXT_LIMITS["queue"])
    if priority is not None:
        check_int32("priority", priority)
    if max_retries is not None:
        check_int32("max_retries", max_retries, minimum=0)
    if timeout is not None and not timeout <= MAX_TIMEOUT_SECONDS:  # `not <=`: also refuses inf
        raise _refuse("timeout", f"at most {MAX_TIMEOUT_SECONDS:.0f} seconds", timeout)


def _check_request_limits(request: TaskRequest) -> None:
    """The text fields (already known to be strings or None) and parent_id against the column limits."""
    for field, max_chars in TEXT_LIMITS.items():
        text = getattr(request, field)
        if text is not None:
            check_stored_text(field, text, max_chars)
    if request.parent_id is not None:
        check_task_id("parent_id", request.parent_id)
    delay = request.delay if request.delay is not None else request.run_after
    if isinstance(delay, float) and not math.isfinite(delay):
        raise InvalidTaskArguments(f"delay must be a finite number of seconds, got {delay}")


def _run_at(request: TaskRequest, now: datetime) -> datetime:
    """request.run_at(now), with a time that leaves datetime's range once its offset is applied (year 9999
    at -05:00, year 1 at +01:00) a clear error rather than an OverflowError."""
    try:
        return request.run_at(now)
    except OverflowError:
        field = "delay" if request.delay is not None else "run_after"
        value = request.delay if request.delay is not None else request.run_after
        raise InvalidTaskArguments(f"{field} {value!s} is out of range once converted to UTC") from None


def check_options(*, priority: Any = None, max_retries: Any = None, queue: Any = None, timeout: Any = None) -> None:
    """The options a request and @task share (None: not given)."""
    if priority is not None and not _whole(priority):
        raise _refuse("priority", "a whole number", priority)
    if max_retries is not None and not (_whole(max_retries) and max_retries >= 0):
        raise _refuse("max_retries", "a whole number >= 0", max_retries)
    if queue is not None and not (isinstance(queue, str) and queue.strip()):
        raise _refuse("queue", "a non-empty string", queue)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise _refuse("timeout", "a number of seconds", timeout)
        if not timeout > 0:
            raise _refuse("timeout", "positive", timeout)
    _check_option_limits(priority, max_retries, queue, timeout)


def check_request(request: TaskRequest, now: datetime, check_arguments: ArgumentCheck | None = None) -> datetime:
    """Check every field of `request`; returns when the task may first run (`request.run_at(now)`, which
    checks delay and run_after). `check_arguments` also checks the call against the task's signature."""
    name = request.name
    if not isinstance(name, str) or not name.strip():
        raise _refuse("name", "a non-empty string", name)
    check_options(
        priority=request.priority, max_retries=request.max_retries, queue=request.queue, timeout=request.timeout
    )
    for field, text in (
        ("name", name),
        ("queue", request.queue),
        ("dedup_key", request.dedup_key),
        ("continuation", request.continuation),
    ):
        if text is None:
            continue
        if not isinstance(text, str):
            raise _refuse(field, "a string", text)
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL; refused on every dialect so both behave alike.
            raise InvalidTaskArguments(f"{field} must not contain a NUL character: {text!r}")
    args, kwargs = request.args, request.kwargs
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise InvalidTaskArguments(f"args must be a JSON array (a list), got {type(args).__name__}")
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            raise InvalidTaskArguments(f"kwargs must be a JSON object (a mapping), got {type(kwargs).__name__}")
        for key in kwargs:
            if not isinstance(key, str):
                raise InvalidTaskArguments(f"kwargs keys must be strings, got {key!r}")
    check_json("args", args)
    check_json("kwargs", kwargs)
    if request.parent_id is not None and not _whole(request.parent_id):
        raise _refuse("parent_id", "a task id", request.parent_id)
    _check_request_limits(request)
    when = _run_at(request, now)
    if check_arguments is not None:
        check_arguments(name, args, kwargs or {})
    return when


def _seconds(field: str, value: Any) -> float | Any:
    """A duration given as text ('90', '30s', '1h30m') -> seconds; anything else is left to check_request."""
    if not isinstance(value, str):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        return parse_duration(value).total_seconds()
    except ValueError as error:
        raise InvalidTaskArguments(f"{field}: {error}") from None


def parse_request(
    fields: Mapping[str, Any], *, now: datetime | None = None, check_arguments: ArgumentCheck | None = None
) -> TaskRequest:
    """Raw input -> a checked TaskRequest. Refuses fields other than ENQUEUE_FIELDS; `delay` and `timeout`
    are seconds or duration text ('30s'), `run_after` ISO 8601 text (UTC without an offset) or a datetime."""
    unknown = sorted(str(key) for key in fields if key not in ENQUEUE_FIELDS)
    if unknown:
        raise InvalidTaskArguments(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(ENQUEUE_FIELDS))})")
    delay, run_after = fields.get("delay"), fields.get("run_after")
    if delay is not None and not (isinstance(delay, (int, float, str)) and not isinstance(delay, bool)):
        raise _refuse("delay", "seconds or a duration such as '30s'", delay)
    if run_after is not None and not isinstance(run_after, datetime):
        if not isinstance(run_after, str):
            raise _refuse("run_after", "an ISO 8601 string", run_after)
        try:
            run_after = parse_instant(run_after)
        except ValueError as error:
            raise InvalidTaskArguments(f"run_after: {error}") from None
        except OverflowError:
            raise InvalidTaskArguments(f"run_after {run_after!r} is out of range once converted to UTC") from None
    request = TaskRequest(
        name=fields.get("name"),  # type: ignore[arg-type]  # checked below
        args=fields.get("args", ()),
        kwargs=fields.get("kwargs"),
        priority=fields.get("priority"),
        run_after=run_after,
        dedup_key=fields.get("dedup_key"),
        max_retries=fields.get("max_retries"),
        queue=fields.get("queue"),
        timeout=_seconds("timeout", fields.get("timeout")),
        delay=None if delay is None else _seconds("delay", delay),
    )
    check_request(request, now or utc_now(), check_arguments)
    return request
