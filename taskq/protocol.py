"""What a worker tells its supervisor, one JSON line per message on the status pipe; both ends use this module.

The messages let the supervisor settle a dead worker's tasks exactly: the task that had started and not
ended was executing (it alone may have been cut short), a task that ended with a success not yet
recorded is recorded by the supervisor from the result carried here, and every other task the worker
still held in the database had not started. A pipe write that returned is in the kernel's buffer, so
the supervisor reads it even when the worker is SIGKILLed right after.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskq.clock import as_utc
from taskq.json_limits import MAX_JSON_DEPTH, JsonRefused
from taskq.json_limits import decode as decode_json
from taskq.model import Completion

# A deferred success travels to the supervisor with its result; bigger results are recorded at once
# instead (a pipe is not the place for megabytes, and such tasks are not the quick ones batching serves).
DEFERRED_RESULT_MAX_BYTES = 32_768


class KillReason(str, enum.Enum):
    """Why the supervisor killed a worker; decides how the task it was running is settled."""

    TIMEOUT = "timeout"  # the task ran past its timeout: a failed attempt (TimeoutError)
    CANCEL = "cancel"  # the task ignored its cancellation: cancelled
    SHUTDOWN = "shutdown"  # the shutdown grace expired: back to pending, attempt not counted


def timeout_message(seconds: float) -> str:
    """The error of a task that ran past its timeout, whichever end enforced it."""
    return f"TimeoutError: task exceeded its timeout of {seconds:g} s"


@dataclass(frozen=True)
class Ready:
    """Task modules imported and registered in the database: the pool counts it as up (systemd READY=1)."""


@dataclass(frozen=True)
class Started:
    """The worker is about to call the task's function."""

    task_id: int
    attempt: int
    timeout: float | None
    # A coroutine's timeout is enforced on the worker's loop (cancelling it alone); the supervisor's kill
    # is then only a backstop, after the cancel grace, for a loop that never got control back.
    worker_enforces_timeout: bool = False


@dataclass(frozen=True)
class Ended:
    """The task's outcome is recorded in the database (or the task was no longer this worker's)."""

    task_id: int


@dataclass(frozen=True)
class Deferred:
    """The task's function returned; its success will be recorded with the worker's next transaction."""

    completion: Completion


@dataclass(frozen=True)
class Recorded:
    """These deferred successes are now committed."""

    task_ids: tuple[int, ...]


@dataclass(frozen=True)
class CancelSeen:
    """The worker told the running task it was cancelled; the supervisor starts the cancel grace."""

    task_id: int


@dataclass(frozen=True)
class UnknownName:
    """The worker claimed a task of a name it does not know and passed it on (sent once per name): the
    supervisor says so once for the whole pool."""

    name: str


@dataclass(frozen=True)
class Unreadable:
    """A line the supervisor could not decode (not made by `encode`, or a result nested past the depth
    limit): what could be made out of it, and why. Decoding never raises, so no line kills the supervisor."""

    kind: str | None  # the message's "e", when its start could be read
    task_id: int | None
    reason: str


Message = Ready | Started | Ended | Deferred | Recorded | CancelSeen | UnknownName | Unreadable
# A deferred success carries its result one level inside the message object.
LINE_MAX_DEPTH = MAX_JSON_DEPTH + 1
_HEAD = re.compile(rb'\{"e":"(\w+)"(?:,"id":(\d+))?')  # how `encode` starts every line


def encode(message: Message) -> bytes:
    if isinstance(message, Ready):
        fields: dict[str, Any] = {"e": "ready"}
    elif isinstance(message, Started):
        fields = {"e": "start", "id": message.task_id, "a": message.attempt, "t": message.timeout}
        if message.worker_enforces_timeout:
            fields["w"] = True
    elif isinstance(message, Ended):
        fields = {"e": "end", "id": message.task_id}
    elif isinstance(message, Deferred):
        c = message.completion
        fields = {
            "e": "done",
            "id": c.task_id,
            "a": c.attempt,
            "r": c.result,
            "f": c.finished_at.isoformat(),
            "s": c.started_at.isoformat() if c.started_at else None,
            "u": c.has_follow_up,
            "c": c.continuation,
        }
    elif isinstance(message, Recorded):
        fields = {"e": "recorded", "ids": list(message.task_ids)}
    elif isinstance(message, UnknownName):
        fields = {"e": "unknown", "name": message.name}
    else:
        fields = {"e": "cancel", "id": message.task_id}
    return (json.dumps(fields, separators=(",", ":")) + "\n").encode()


def decode(line: bytes) -> Message:
    """The message on `line`; an Unreadable one when it cannot be read (never an exception)."""
    try:
        return _decode(line)
    except (JsonRefused, LookupError, TypeError, ValueError) as error:
        head = _HEAD.match(line)
        kind = head.group(1).decode() if head else None
        task_id = int(head.group(2)) if head and head.group(2) else None
        reason = error.reason if isinstance(error, JsonRefused) else f"{type(error).__name__}: {error}"
        return Unreadable(kind, task_id, reason)


def _decode(line: bytes) -> Message:
    fields = decode_json(line, LINE_MAX_DEPTH)
    kind = fields["e"]
    if kind == "ready":
        return Ready()
    if kind == "start":
        return Started(fields["id"], fields["a"], fields["t"], fields.get("w", False))
    if kind == "end":
        return Ended(fields["id"])
    if kind == "done":
        started = fields["s"]
        return Deferred(
            Completion(
                fields["id"],
                fields["a"],
                fields["r"],
                as_utc(datetime.fromisoformat(fields["f"])),
                fields["u"],
                fields["c"],
                as_utc(datetime.fromisoformat(started)) if started else None,
            )
        )
    if kind == "recorded":
        return Recorded(tuple(fields["ids"]))
    if kind == "cancel":
        return CancelSeen(fields["id"])
    if kind == "unknown":
        return UnknownName(fields["name"])
    raise ValueError(f"unknown worker message {kind!r}")
