"""How the supervisor and its workers write their log lines: `log_format: text` (for people, the default)
or `json` (one JSON object a line, for log pipelines).

A JSON line: {"time": "2026-12-06T08:00:00.123Z", "level": "INFO", "logger": "taskq.worker",
"process": {"name": "worker-1", "pid": 4242}, "event": "task_completed", "message": "task_completed task_id=1
...", "task_id": 1, ...the other fields, "exception": "Traceback ..." (when there is one)}. Records logged by
other code (a task's own logging, a library) have "event": null and their message.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process  # "supervisor" or the worker's name

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "process": {"name": self.process, "pid": os.getpid()},
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            # The reserved keys above win: taskq's own events never use them (a test checks EVENTS).
            line.update((key, value) for key, value in fields.items() if key not in line)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        # default=str: a datetime or a Path field is written as text rather than losing the whole line.
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """logging's own text format, with the local time formatted once per second rather than once per line
    (a busy worker logs thousands of lines a second; the offset from UTC changes on a whole second only)."""

    _second: tuple[int, str] = (-1, "")  # a whole second and its text, replaced in one assignment (threads)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt or self.default_msec_format is None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)


def formatter(log_format: str, process: str) -> logging.Formatter:
    """The formatter of a process's log handler; `process` is "supervisor" or a worker's name."""
    if log_format == "json":
        return JsonFormatter(process)
    return TextFormatter(f"%(asctime)s %(levelname)s [{process} pid {os.getpid()}] %(message)s")


def use_format(log_format: str, process: str) -> None:
    """Switch the handlers of this process's root logger to `log_format` (a reload of the settings)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format, process))
