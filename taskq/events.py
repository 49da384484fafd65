"""Log events: every line taskq logs has a stable machine name and fields (DESIGN.md rule 10).

`log_event(log, logging.INFO, "task_completed", task_id=1, name="t.add", attempt=1, seconds=0.002)` logs one
record that carries `record.event` and `record.fields` (passed as `extra=`, so caplog and any handler see
them) and whose message is the text people read: `task_completed task_id=1 name=t.add attempt=1
seconds=0.002`. The free-text fields (`FREE_TEXT`: an error line, a traceback, a remark for people) come
last, after ": ", so a line reads as it did before events had names. taskq/logformat.py turns a record into
a JSON line instead when `log_format: json`.

EVENTS declares each event once, with its fields and meaning: the docs' "Log events" table
(docs/reference/log-events.md) is generated from it, and a test checks it against the names and fields the
code passes to `log_event`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Rendered last in the text form, after ": " (":\n" when multi-line), and never as key=value: prose and
# exception text would make a key=value line ambiguous to read. In JSON they are ordinary keys.
FREE_TEXT = ("error", "detail", "traceback")
# Keys of a JSON line that are not fields (logformat.py); a field by one of these names would be shadowed.
RESERVED = ("time", "level", "logger", "process", "event", "message", "exception")


@dataclass(frozen=True)
class Event:
    name: str
    fields: tuple[str, ...]  # every field some call passes (one call may pass fewer)
    meaning: str  # one line, for the docs' table


def _events(*events: Event) -> dict[str, Event]:
    return {event.name: event for event in events}


_TASK = ("task_id", "name", "attempt", "seconds")  # the one line each task execution ends with
EVENTS: dict[str, Event] = _events(
    # -- the supervisor (logger taskq.pool) --
    Event("pool_started", ("workers", "database"), "The supervisor started; database URL with the password masked."),
    Event("pool_ready", ("workers",), "Every wanted worker has started (systemd READY=1 is sent with it)."),
    Event("pool_paused", ("workers", "detail"), "`workers: 0`: nothing is claimed until it is raised."),
    Event("worker_spawned", ("name", "pid"), "A worker process was started."),
    Event("worker_retiring", ("name", "wanted", "detail"), "A scale-down asks this worker to finish and exit."),
    Event("worker_exited", ("name", "pid", "returncode", "detail"), "A worker exited (ERROR when unexpected)."),
    Event(
        "worker_crash_loop",
        ("name", "deaths", "within_seconds", "respawn_in"),
        "A slot's worker keeps dying young: it is respawned after a back-off.",
    ),
    Event(
        "worker_tasks_settled",
        ("name", "recorded", "interrupted", "released"),
        "What a dead worker held, settled by the supervisor.",
    ),
    Event("task_released", ("task_id", "detail"), "A dead worker's task went back to pending, no attempt counted."),
    Event("task_worker_died", ("task_id", "worker"), "The worker died while running this task (a failed attempt)."),
    Event(
        "task_settle_failed",
        ("worker", "error", "detail"),
        "A dead worker's tasks could not be settled (database away); their leases recover them.",
    ),
    Event(
        "worker_message_unreadable",
        ("worker", "kind", "task_id", "error"),
        "A line from a worker's pipe could not be read; settled as that task's problem.",
    ),
    Event(
        "task_unknown",
        ("name", "imports", "tries", "detail"),
        "No worker of this pool knows this task name (logged once per name).",
    ),
    Event(
        "task_timeout",
        ("task_id", "timeout", "worker", "worker_id", "detail"),
        "A task ran past its timeout: its worker is killed (by itself when orphaned).",
    ),
    Event(
        "task_cancel_forced",
        ("task_id", "worker", "worker_id", "detail"),
        "A cancelled task ignored it past the cancel grace: its worker is killed (by itself when orphaned).",
    ),
    Event(
        "shutdown_grace_expired",
        ("worker", "worker_id", "detail"),
        "A stopping worker still ran tasks after shutdown_grace: stopped, its tasks released.",
    ),
    Event("shutdown_started", ("signal", "grace", "detail"), "SIGTERM/SIGINT: running tasks may finish."),
    Event("second_interrupt", ("detail",), "A second SIGINT: the pool stops at once."),
    Event("shutdown_complete", (), "Every worker has exited; the supervisor exits 0."),
    Event("sighup", ("detail",), "SIGHUP: the settings are read again."),
    Event("settings_reloaded", ("workers",), "An edit of settings.yaml (or SIGHUP) was applied."),
    Event("settings_invalid", ("error", "detail"), "A broken edit: the pool keeps its last good settings."),
    Event(
        "setting_flag_replaced",
        ("key", "value", "flag", "replaced"),
        "An edit of the file replaces the value its command-line flag gave (`workers`).",
    ),
    Event(
        "setting_needs_pool_restart",
        ("key", "detail"),
        "This setting changed in the file but takes a restart of the pool; the old value is kept.",
    ),
    Event("workers_restarting", ("settings",), "Worker settings changed: every worker is replaced gracefully."),
    Event("schedule_invalid", ("error",), "A schedule entry is left out (the others keep running)."),
    Event("orphan_killed", ("worker_id", "tasks_recovered"), "A worker orphaned by a dead supervisor was killed."),
    # -- maintenance, scheduler, store, wake-ups (in the supervisor) --
    Event("maintenance", ("duty",), "A maintenance duty changed something; its counts are the other fields."),
    Event("maintenance_error", ("duty",), "A maintenance duty raised (the exception follows); it runs again."),
    Event("schedule_created", ("name", "task_id", "run_after"), "A schedule's next task was created (DEBUG)."),
    Event("schedule_rescheduled", ("name", "task_id", "run_after"), "A schedule's pending task was moved."),
    Event("schedule_removed", ("name", "deleted_pending"), "A schedule left the settings: its pending task deleted."),
    Event("database_retrying", ("error", "retry_for"), "The database is locked or away: retrying."),
    Event("database_recovered", ("seconds",), "The database answers again after database_retrying."),
    Event("listen_failed", ("error", "retry_in"), "PostgreSQL LISTEN could not connect: retrying."),
    Event("listen_lost", ("error",), "The LISTEN connection was lost; it reconnects."),
    Event("rollup_error", (), "The dashboard's statistics rollup raised (the exception follows)."),
    # -- a worker (logger taskq.worker, taskq.executor) --
    Event(
        "task_unreadable",
        ("task_id", "name", "error"),
        "A claimed row's arguments cannot be read back: the task fails for good, attempt 1.",
    ),
    Event(
        "task_result_refused",
        ("task_id", "error"),
        "The database refused a task's result: the task fails for good.",
    ),
    Event("worker_started", ("worker_id", "queues", "concurrency", "database"), "A worker is ready to claim."),
    Event("worker_stopped", ("worker_id", "tasks_done"), "A worker finished and exits."),
    Event(
        "worker_recycle",
        ("worker_id", "reason", "tasks_done", "rss_mb"),
        "--max-tasks-per-worker or --max-memory-per-worker: the worker exits to be replaced.",
    ),
    Event("worker_crashed", (), "A worker process raised out of its loop (the exception follows)."),
    Event("task_started", ("task_id", "name", "attempt", "worker_id"), "A task starts (DEBUG)."),
    Event("task_completed", _TASK, "The task returned; its result is stored."),
    Event("task_retry", (*_TASK, "error"), "The task raised and will be retried."),
    Event("task_retry_requested", (*_TASK, "error"), "The task raised taskq.Retry."),
    Event("task_failed", (*_TASK, "error"), "The task failed for good."),
    Event("task_cancelled", _TASK, "The task stopped on a cancellation."),
    Event("task_waiting", _TASK, "The task spawned children and waits for them."),
    Event("task_passed_on", _TASK, "This worker does not know the task: back to pending for one that does."),
    Event(
        "task_lost",
        (*_TASK, "detail"),
        "The task's lease was recovered elsewhere before its outcome was stored.",
    ),
    Event("task_traceback", ("task_id", "attempt", "traceback"), "A failure's traceback (DEBUG)."),
    Event("task_error_after_spawn", ("task_id", "error"), "A task raised after spawning children: it waits for them."),
    Event("task_cancel_requested", ("task_id", "worker_id"), "The worker told a running task it is cancelled."),
    Event("heartbeat_error", ("worker_id", "duty"), "A heartbeat duty raised (the exception follows)."),
    Event(
        "supervisor_lost",
        ("worker_id", "shutdown_grace", "detail"),
        "The supervisor died: the worker claims nothing more and exits after its tasks.",
    ),
    Event(
        "orphan_exiting",
        ("worker_id", "reason", "task_id", "recorded", "interrupted", "released"),
        "An orphaned worker settled its tasks and kills itself.",
    ),
    Event(
        "orphan_settle_failed", ("worker_id",), "An orphaned worker could not settle its tasks (the exception follows)."
    ),
)


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def render_text(event: str, fields: dict[str, Any]) -> str:
    """`event k=v k=v: free text`, the message of the text format."""
    pair_texts = []  # a loop, not a generator: a worker renders a line per task
    has_free = False
    for key, value in fields.items():
        if key in FREE_TEXT:
            has_free = True
        else:
            pair_texts.append(f" {key}={_value(value)}")
    pairs = "".join(pair_texts)
    free = "; ".join(str(fields[key]) for key in FREE_TEXT if fields.get(key) not in (None, "")) if has_free else ""
    if not free:
        return event + pairs
    return f"{event}{pairs}{':' if pairs else ''}{chr(10) if chr(10) in free else ' '}{free}"


def log_event(logger: logging.Logger, level: int, event: str, /, *, exc_info: bool = False, **fields: Any) -> None:
    """Log `event` with `fields`; `exc_info` adds the exception being handled (as logger.exception)."""
    if not logger.isEnabledFor(level):  # a disabled DEBUG event costs no rendering
        return
    # An absent free text (a success's error) is left out rather than written as null on every line.
    fields = {key: value for key, value in fields.items() if value is not None or key not in FREE_TEXT}
    # What logger.log(..., stacklevel=2) does, less its search of the stack for the caller (a worker logs a
    # line per task): the record names the caller's file, line and function, not this helper's.
    caller = sys._getframe(1)
    record = logger.makeRecord(
        logger.name,
        level,
        caller.f_code.co_filename,
        caller.f_lineno,
        render_text(event, fields),
        (),
        sys.exc_info() if exc_info else None,
        caller.f_code.co_name,
        {"event": event, "fields": fields},
    )
    logger.handle(record)


def table(events: Sequence[Event] | None = None) -> str:
    """The "Log events" table of the docs (Markdown; docs/hooks.py puts it in the page), one row per event."""
    rows = ["| event | fields | meaning |", "|---|---|---|"]
    for event in events if events is not None else EVENTS.values():
        fields = ", ".join(f"`{name}`" for name in dict.fromkeys(event.fields)) or "-"
        rows.append(f"| `{event.name}` | {fields} | {event.meaning} |")
    return "\n".join(rows) + "\n"
