"""What a worker tells its supervisor, one JSON line per message on the status pipe; both ends use this module.

The messages let the supervisor settle a dead worker's tasks exactly: the task that had started and not
ended was executing (it alone may have been cut short), a task that ended with a success not yet
recorded is recorded by the supervisor from the result carried here, and every other task the worker
still held in the database had not started. A pipe write that returned is in the kernel's buffer, so
the supervisor reads it even when the worker is SIGKILLed right after.

A busy worker sends two or three lines per task, so both ends keep them cheap: `encode` formats the
per-task lines directly (the same bytes `json.dumps` would make), and the supervisor reads them with
`read`, which takes a start or an end line apart with one regular expression and keeps a
success ("done") line undecoded: its result is needed only if the worker dies before recording it, and
`decode` reads it then.
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
class DeferredLine:
    """A success ("done") line as `read` left it: only its task id is taken out. `decode(line)` makes the
    Deferred, or the Unreadable, it stands for, when the worker died before recording it."""

    task_id: int
    line: bytes


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


Message = Ready | Started | Ended | Deferred | DeferredLine | Recorded | CancelSeen | UnknownName | Unreadable
# A deferred success carries its result one level inside the message object.
LINE_MAX_DEPTH = MAX_JSON_DEPTH + 1
_HEAD = re.compile(rb'\{"e":"(\w+)"(?:,"id":(\d+))?')  # how `encode` starts every line
# The lines `read` takes apart itself, exactly as `encode` writes them (anything else goes to `decode`):
# a timeout is a float's repr or an int, as json writes them (not inf or nan, which `decode` reads).
# Integers of at most 20 digits (a 64-bit id has 19): int() refuses very long ones, and `read` never raises.
_START = re.compile(
    rb'\{"e":"start","id":(\d{1,20}),"a":(\d{1,20}),"t":(null|-?\d{1,20}(?:\.\d{1,20})?(?:e[-+]\d{1,3})?)(,"w":true)?\}'
)
_END = re.compile(rb'\{"e":"end","id":(\d{1,20})\}')
_DONE = re.compile(rb'\{"e":"done","id":(\d{1,20}),"a":\d{1,20},"r":')
_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps with these separators, without building one per call


def _json(value: Any) -> str:
    return "null" if value is None else _JSON.encode(value)


def encode(message: Message) -> bytes:
    """The message's line, newline included. The per-task lines are formatted here, with the bytes
    `json.dumps` makes of the message's fields (test_protocol.py compares them)."""
    if isinstance(message, Started):
        head = f'{{"e":"start","id":{message.task_id},"a":{message.attempt},"t":{_json(message.timeout)}'
        return f'{head},"w":true}}\n'.encode() if message.worker_enforces_timeout else f"{head}}}\n".encode()
    if isinstance(message, Ended):
        return f'{{"e":"end","id":{message.task_id}}}\n'.encode()
    if isinstance(message, Deferred):
        c = message.completion
        started = f'"{c.started_at.isoformat()}"' if c.started_at else "null"
        return (
            f'{{"e":"done","id":{c.task_id},"a":{c.attempt},"r":{_json(c.result)},"f":"{c.finished_at.isoformat()}",'
            f'"s":{started},"u":{"true" if c.has_follow_up else "false"},"c":{_json(c.continuation)}}}\n'
        ).encode()
    return (json.dumps(_fields(message), separators=(",", ":")) + "\n").encode()


def _fields(message: Message) -> dict[str, Any]:
    """A message as the object its line holds (the lines `encode` formats itself are made from this in tests)."""
    if isinstance(message, Ready):
        return {"e": "ready"}
    if isinstance(message, Started):
        fields: dict[str, Any] = {"e": "start", "id": message.task_id, "a": message.attempt, "t": message.timeout}
        if message.worker_enforces_timeout:
            fields["w"] = True
        return fields
    if isinstance(message, Ended):
        return {"e": "end", "id": message.task_id}
    if isinstance(message, Deferred):
        c = message.completion
        return {
            "e": "done",
            "id": c.task_id,
            "a": c.attempt,
            "r": c.result,
            "f": c.finished_at.isoformat(),
            "s": c.started_at.isoformat() if c.started_at else None,
            "u": c.has_follow_up,
            "c": c.continuation,
        }
    if isinstance(message, Recorded):
        return {"e": "recorded", "ids": list(message.task_ids)}
    if isinstance(message, UnknownName):
        return {"e": "unknown", "name": message.name}
    if isinstance(message, CancelSeen):
        return {"e": "cancel", "id": message.task_id}
    raise TypeError(f"{type(message).__name__} is not sent by workers")


def read(line: bytes) -> Message:
    """The supervisor's `decode`: the same message for a start or an end line, a DeferredLine for a success
    (decoded only if needed), `decode` for anything else (a recorded line comes once per batch). Never raises."""
    if match := _START.fullmatch(line):
        timeout = match[3]
        return Started(int(match[1]), int(match[2]), None if timeout == b"null" else float(timeout), bool(match[4]))
    if match := _END.fullmatch(line):
        return Ended(int(match[1]))
    if match := _DONE.match(line):
        return DeferredLine(int(match[1]), line)
    return decode(line)


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
