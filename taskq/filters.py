"""One validation of a task filter, whichever way it comes in: the query of GET /api/tasks and
/api/tasks/count, the "filter" object of POST /api/tasks/bulk, the CLI's --name and --queue, a TaskFilter
given to the store. A filter picks the rows a bulk retry or cancel acts on, so a misspelt key or a blank
value must never widen it to every row: both are refused, naming the key (the web API's 400).

`parse_filter` turns raw fields (the web API's keys: `error`, `args`, `parent`) into a TaskFilter;
`check_filter` checks a TaskFilter however it was made (the store runs it before every read that takes one).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from taskq.model import InvalidTaskArguments, Status, TaskFilter
from taskq.requests import TEXT_LIMITS, check_stored_text, check_task_id

# The web API's filter keys -> TaskFilter's fields.
FILTER_FIELDS = {
    "status": "status",
    "name": "name",
    "name_contains": "name_contains",
    "queue": "queue",
    "parent": "parent_id",
    "error": "error_contains",
    "args": "args_contains",
}
# A search term is matched with LIKE: SQLite refuses patterns over 50,000 bytes ("LIKE or GLOB pattern too
# complex"), and no one searches for more than a line of text.
MAX_SEARCH_CHARS = 1000
_TEXT_LIMITS = {
    "name": TEXT_LIMITS["name"],
    "queue": TEXT_LIMITS["queue"],
    "name_contains": TEXT_LIMITS["name"],
    "error_contains": MAX_SEARCH_CHARS,
    "args_contains": MAX_SEARCH_CHARS,
}


def parse_filter(fields: Mapping[str, Any], *, also: Collection[str] = ()) -> TaskFilter:
    """Raw fields (query parameters, or a JSON object) -> a checked TaskFilter. Keys other than
    FILTER_FIELDS and `also` (the caller's own parameters, such as a list's cursors) are refused, and so
    is a blank value; text is stripped of surrounding spaces (a search box's stray space)."""
    unknown = sorted(str(key) for key in fields if key not in FILTER_FIELDS and key not in also)
    if unknown:
        known = ", ".join([*FILTER_FIELDS, *also])
        raise InvalidTaskArguments(f"unknown filter {unknown[0]!r} (known: {known})")
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, field in FILTER_FIELDS.items():
        if key not in fields:
            continue
        values[field] = _value(key, fields[key])
        labels[field] = key
    status = values.get("status")
    if status is not None and status not in {s.value for s in Status}:
        raise InvalidTaskArguments(f"unknown status {status!r} (one of {', '.join(s.value for s in Status)})")
    if status is not None:
        values["status"] = Status(status)
    where = TaskFilter(**values)
    check_filter(where, labels)
    return where


def _value(key: str, value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise InvalidTaskArguments(f"filter {key} is blank: leave it out to match every task")
    if key == "parent":
        return _task_id(key, value)
    if not isinstance(value, str):
        raise InvalidTaskArguments(f"filter {key} must be a string, got {value!r}")
    return value.strip()


def _task_id(key: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTaskArguments(f"filter {key} must be a task id, got {value!r}")
    check_task_id(key, value)
    return value


def check_filter(where: TaskFilter, labels: Mapping[str, str] | None = None) -> None:
    """Refuse a filter that would select more than it says, or that the database would fail on: blank
    text (which reads as "any"), NUL or a lone surrogate, text longer than any stored value or a search
    term longer than MAX_SEARCH_CHARS, a parent id out of range. `labels`: the names the caller's user
    gave the fields (the web API's `error` for error_contains)."""
    labels = labels or {}
    for field, max_chars in _TEXT_LIMITS.items():
        text = getattr(where, field)
        if text is None:
            continue
        label = labels.get(field, field)
        if not isinstance(text, str):
            raise InvalidTaskArguments(f"filter {label} must be a string, got {text!r}")
        if not text.strip():
            raise InvalidTaskArguments(f"filter {label} is blank: leave it out to match every task")
        check_stored_text(f"filter {label}", text, max_chars)
    if where.parent_id is not None:
        _task_id(labels.get("parent_id", "parent_id"), where.parent_id)
