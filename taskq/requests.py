"""One validation of an enqueue request, whichever way it comes in: the Python API, `taskq enqueue`,
POST /api/tasks and the `schedule:` entries of settings.yaml. Each raises InvalidTaskArguments with a
message that names the field and the bad value.

`validate_request` checks a request's fields as Python code gives them and returns a `CheckedRequest`, the
one object that travels on to the INSERT; `parse_request` first turns raw input (a JSON body, a YAML entry,
command-line text) into those fields: durations may be text ('30s'), run_after is ISO 8601 text, unknown
fields are refused. The store checks what it is given as a TaskRequest (or as keyword arguments) and
takes a CheckedRequest as it is, checking only its call against the task's signature (the CLI parses a
request before it imports the task modules). A single enqueue on SQLite runs the check on the store's
hottest path: a field left out costs a comparison with None, and args and kwargs are encoded to JSON once,
here, for the check and the INSERT.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import Column, String

from taskq.clock import parse_duration, parse_instant, utc_now
from taskq.json_limits import EncodedJson, JsonRefused, encode
from taskq.model import MAX_DELAY_SECONDS, InvalidTaskArguments, TaskRequest, timing
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


class CheckedRequest(NamedTuple):
    """An enqueue request every field of which has been checked, as the store inserts it: made only by
    `validate_request` (and `parse_request`, for raw input), so that a request checked where it came in
    (the CLI, the web API) is not checked again by the store. args and kwargs are also kept as the JSON
    text the check encoded (`args_json`, `kwargs_json`): the INSERT binds that text, so each is encoded
    once. The time is kept as given (run_after, or a delay from the enqueue's `now`), so a request parsed
    before it is enqueued still runs relative to its enqueue."""

    name: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any] | None
    args_json: str
    kwargs_json: str
    priority: int | None
    max_retries: int | None
    queue: str | None
    timeout: float | None
    dedup_key: str | None
    parent_id: int | None
    continuation: str | None
    run_after: datetime | None  # the first run time, in UTC
    delay: float | None  # seconds from the enqueue's now (None: now)

    def run_at(self, now: datetime) -> datetime:
        if self.run_after is not None:
            return self.run_after
        return now if self.delay is None else now + timedelta(seconds=self.delay)


# CheckedRequest from a tuple without the Python-level __new__ a NamedTuple adds: one frame less per enqueue.
_new_checked = functools.partial(tuple.__new__, CheckedRequest)
_NO_ARGS = EncodedJson("[]")
_NO_KWARGS = EncodedJson("{}")
_NO_KWARGS_VALUE: Mapping[str, Any] = MappingProxyType({})
_NAME_LIMIT = TEXT_LIMITS["name"]


def _text_field(field: str, text: Any) -> None:
    if not isinstance(text, str):
        raise _refuse(field, "a string", text)
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; refused on every dialect so both behave alike.
        raise InvalidTaskArguments(f"{field} must not contain a NUL character: {text!r}")


def _json_field(field: str, value: Any) -> EncodedJson:
    """The JSON text stored for args or kwargs (already known to be a sequence or a mapping)."""
    try:
        return EncodedJson(encode(value))
    except JsonRefused as refused:
        raise InvalidTaskArguments(f"{field} {refused.reason}") from None


def validate_request(
    name: Any,
    args: Any = (),
    kwargs: Any = None,
    priority: Any = None,
    run_after: Any = None,
    dedup_key: Any = None,
    max_retries: Any = None,
    queue: Any = None,
    timeout: Any = None,
    parent_id: Any = None,
    continuation: Any = None,
    delay: Any = None,
    *,
    now: datetime,
    check_arguments: ArgumentCheck | None = None,
) -> CheckedRequest:
    """Check every field of a request (TaskRequest's fields, in its order); `check_arguments` also checks
    the call against the task's signature. The one validation every enqueue goes through, and on the
    store's hottest path (a single enqueue): a field left out costs one comparison with None."""
    if not isinstance(name, str) or not name.strip():
        raise _refuse("name", "a non-empty string", name)
    if priority is not None or max_retries is not None or queue is not None or timeout is not None:
        check_options(priority=priority, max_retries=max_retries, queue=queue, timeout=timeout)
    if "\x00" in name:
        raise InvalidTaskArguments(f"name must not contain a NUL character: {name!r}")
    if queue is not None:
        _text_field("queue", queue)
    if dedup_key is not None:
        _text_field("dedup_key", dedup_key)
    if continuation is not None:
        _text_field("continuation", continuation)
    # list, tuple and dict first: the ABC checks cost more than the rest of a plain request's check.
    if (
        type(args) is not list
        and type(args) is not tuple
        and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence))
    ):
        raise InvalidTaskArguments(f"args must be a JSON array (a list), got {type(args).__name__}")
    if kwargs is not None and type(kwargs) is not dict and not isinstance(kwargs, Mapping):
        raise InvalidTaskArguments(f"kwargs must be a JSON object (a mapping), got {type(kwargs).__name__}")
    if kwargs:
        for key in kwargs:
            if not isinstance(key, str):
                raise InvalidTaskArguments(f"kwargs keys must be strings, got {key!r}")
    args_json = _json_field("args", args) if args else _NO_ARGS
    kwargs_json = _json_field("kwargs", kwargs) if kwargs else _NO_KWARGS
    if parent_id is not None and not _whole(parent_id):
        raise _refuse("parent_id", "a task id", parent_id)
    # The column limits: name's in full only when it is not plain ASCII under the limit (nearly always).
    if not (name.isascii() and len(name) <= _NAME_LIMIT):
        check_stored_text("name", name, _NAME_LIMIT)
    if dedup_key is not None:
        check_stored_text("dedup_key", dedup_key, TEXT_LIMITS["dedup_key"])
    if continuation is not None:
        check_stored_text("continuation", continuation, TEXT_LIMITS["continuation"])
    if parent_id is not None:
        check_task_id("parent_id", parent_id)
    at, seconds = None, None
    if run_after is not None or delay is not None:
        given = delay if delay is not None else run_after
        if isinstance(given, float) and not math.isfinite(given):
            raise InvalidTaskArguments(f"delay must be a finite number of seconds, got {given}")
        at, seconds = _timing(run_after, delay, now)
    if check_arguments is not None:
        check_arguments(name, args, kwargs or _NO_KWARGS_VALUE)
    return _new_checked(
        (
            name,
            args,
            kwargs,
            args_json,
            kwargs_json,
            priority,
            max_retries,
            queue,
            timeout,
            dedup_key,
            parent_id,
            continuation,
            at,
            seconds,
        )
    )


def _timing(run_after: Any, delay: Any, now: datetime) -> tuple[datetime | None, float | None]:
    """model.timing, with a time that leaves datetime's range once its offset is applied (year 9999 at
    -05:00, year 1 at +01:00) a clear error rather than an OverflowError."""
    try:
        at, seconds = timing(run_after, delay)
        if seconds is not None:
            now + timedelta(seconds=seconds)
    except OverflowError:
        field = "delay" if delay is not None else "run_after"
        value = delay if delay is not None else run_after
        raise InvalidTaskArguments(f"{field} {value!s} is out of range once converted to UTC") from None
    return at, seconds


def check(request: TaskRequest, now: datetime, check_arguments: ArgumentCheck | None = None) -> CheckedRequest:
    """`validate_request` of a TaskRequest."""
    return validate_request(
        request.name,
        request.args,
        request.kwargs,
        request.priority,
        request.run_after,
        request.dedup_key,
        request.max_retries,
        request.queue,
        request.timeout,
        request.parent_id,
        request.continuation,
        request.delay,
        now=now,
        check_arguments=check_arguments,
    )


def _seconds(field: str, value: Any) -> float | Any:
    """A duration given as text ('90', '30s', '1h30m') -> seconds; anything else is left to validate_request."""
    if not isinstance(value, str):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        return parse_duration(value).total_seconds()
    except ValueError as error:
        raise InvalidTaskArguments(f"{field}: {error}") from None


def parse_request(
    fields: Mapping[str, Any], *, now: datetime | None = None, check_arguments: ArgumentCheck | None = None
) -> CheckedRequest:
    """Raw input -> a checked request, which the store does not check again. Refuses fields other than
    ENQUEUE_FIELDS; `delay` and `timeout` are seconds or duration text ('30s'), `run_after` ISO 8601 text
    (UTC without an offset) or a datetime."""
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
    return validate_request(
        fields.get("name"),
        fields.get("args", ()),
        fields.get("kwargs"),
        fields.get("priority"),
        run_after,
        fields.get("dedup_key"),
        fields.get("max_retries"),
        fields.get("queue"),
        _seconds("timeout", fields.get("timeout")),
        delay=None if delay is None else _seconds("delay", delay),
        now=now or utc_now(),
        check_arguments=check_arguments,
    )
