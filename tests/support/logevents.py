"""Log events as tests read them: from caplog's records (`record.event`, `record.fields`) or from the JSON
lines of a pool's log (`--log-format json`). Tests assert on event names and fields, not on wording."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any


def recorded(records: Iterable[logging.LogRecord], event: str) -> list[dict[str, Any]]:
    """The fields of each record of `event` (caplog.records), in order."""
    return [record.fields for record in records if getattr(record, "event", None) == event]  # type: ignore[attr-defined]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object line of a log; other lines (a task's print(), Python's own fatal output) are skipped."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill is no event
                continue
    return lines


def events(text: str, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
    """The JSON lines of `event` (every event when None) whose fields equal `fields`."""
    return [
        line
        for line in json_lines(text)
        if line.get("event") is not None
        and (event is None or line["event"] == event)
        and all(line.get(key) == value for key, value in fields.items())
    ]
