"""Periodic tasks from the `schedule:` section of settings.yaml.

    schedule:
      refresh_index: {task: myapp.refresh, every: 6h}
      nightly_report: {task: myapp.report, cron: "0 3 * * *", kwargs: {full: true}}

Semantics (docs/how-to/schedules.md says the same for users):

- One row per schedule. Each schedule is kept as exactly one active task row with dedup key
  `schedule:<name>`, however many pools on however many hosts call `run_once` at once: the partial unique
  index on active dedup keys guarantees it, and each pool locks the schedule's row in the `schedules`
  table before deciding, so the others see its decision instead of racing it.
- No overlap. While a schedule's row is running (or retrying, or waiting for children), no second one is
  made; the next occurrence is created once it has finished, whatever the outcome.
- Cadence. Cron expressions (five fields or @daily-style aliases) are evaluated in UTC. `every` slots lie
  on a grid from the previous slot, so the next occurrence is the previous occurrence's run_after plus the
  interval, not its finish time plus the interval: an `every: 1s` schedule keeps a ~1 s cadence.
- Missed slots run once. A slot counts as covered by the previous run if that run started at or after it.
  When the daemon was down, the overdue row runs once on start, and the next occurrence is the first slot
  after now rather than one per missed slot. A run that overlaps the next slot without covering it (it
  started before it) is followed by one catch-up run at once.
- Live edits. `update()` takes the new settings; the next `run_once` rewrites a pending row whose entry
  changed (task, args, options, and run_after recomputed from the previous slot under the new timing; an
  edit never makes a row due at once unless it was already due), deletes the pending row of an entry that
  was removed (a running one finishes), and creates the first row of a new entry at its first slot after
  now. All pools should see the same schedule section: a pool with an older one undoes the others' edits
  until it reloads.
- At-least-once, like every task: an occurrence whose worker dies is retried by lease recovery.

Time is an input: `run_once(now)` decides everything from `now`, so tests never sleep.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from taskq import registry
from taskq.clock import as_utc, parse_duration
from taskq.events import log_event
from taskq.model import ACTIVE_STATUSES, InvalidTaskArguments, Status, TaskRequest
from taskq.requests import parse_request
from taskq.settings import SettingValueError
from taskq.store import Store
from taskq.store.schedules import (
    ScheduleDecision,
    ScheduledTask,
    ScheduleState,
    ScheduleView,
    schedule_dedup_key,
)

log = logging.getLogger("taskq.scheduler")

ALLOWED_KEYS = ("task", "every", "cron", "args", "kwargs", "queue", "priority", "max_retries", "timeout")
_REQUEST_KEYS = ("args", "kwargs", "queue", "priority", "max_retries", "timeout")  # as enqueue takes them
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = 5  # croniter also reads a 6th field as seconds, which Quartz users would misread: refuse it


@dataclass(frozen=True)
class Schedule:
    """One valid entry of the `schedule:` section."""

    name: str
    task: str
    every: timedelta | None = None
    cron: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"schedule {self.name!r} needs exactly one of every and cron")

    @property
    def dedup_key(self) -> str:
        return schedule_dedup_key(self.name)

    @cached_property
    def spec_hash(self) -> str:
        """Changes whenever anything that shapes the schedule's rows changes."""
        spec = {
            "task": self.task,
            "every": None if self.every is None else self.every.total_seconds(),
            "cron": self.cron,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "queue": self.queue,
            "priority": self.priority,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def next_after(self, instant: datetime, *, anchor: datetime | None = None) -> datetime:
        """The first slot strictly after `instant`. Cron slots are fixed by the expression (UTC); `every`
        slots lie on the grid anchor + k * every, where the anchor defaults to `instant` itself."""
        if self.cron is not None:
            from croniter import croniter  # type: ignore[import-untyped]  # ships no type hints

            # croniter reads the expression in the start time's own zone: cron is UTC here.
            return croniter(self.cron, as_utc(instant)).get_next(datetime)
        assert self.every is not None
        start = instant if anchor is None else anchor
        steps = (instant - start) // self.every + 1
        return start + steps * self.every


def _parse_entry(name: Any, entry: Any) -> Schedule:
    """One entry -> Schedule; ValueError with the first problem found (a SettingValueError's `path` names
    the bad key, so the error can point at its line)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the name must be a non-empty string")
    if not isinstance(entry, Mapping):
        raise ValueError(f"expected a mapping such as {{task: myapp.refresh, every: 6h}}, got {entry!r}")
    unknown = sorted(str(key) for key in entry if key not in ALLOWED_KEYS)
    if unknown:
        raise SettingValueError(
            f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ALLOWED_KEYS)})", (unknown[0],)
        )
    task = entry.get("task")
    if not isinstance(task, str) or not task.strip():
        raise SettingValueError("missing task (the registered task name to run, e.g. task: myapp.refresh)", ("task",))
    if ("every" in entry) == ("cron" in entry):
        raise ValueError("give exactly one of every (e.g. every: 6h) and cron (e.g. cron: '0 3 * * *')")
    every = cron = None
    if "every" in entry:
        try:
            every = parse_duration(entry["every"])
        except ValueError as error:
            raise SettingValueError(f"every: {error}", ("every",)) from None
        if every <= timedelta(0):
            raise SettingValueError(f"every: must be longer than zero, got {entry['every']!r}", ("every",))
    else:
        try:
            cron = _parse_cron(entry["cron"])
        except ValueError as error:
            raise SettingValueError(str(error), ("cron",)) from None
    # The fields of the task rows it makes: checked (and the call against the task's signature) as every
    # enqueue is, once here rather than at every tick.
    try:
        request = parse_request(
            {"name": task, **{key: entry[key] for key in _REQUEST_KEYS if key in entry}},
            check_arguments=registry.check_arguments,
        )
    except InvalidTaskArguments as error:  # its message starts with the field it is about, when it is one
        field = next((key for key in _REQUEST_KEYS if str(error).startswith(key)), None)
        raise SettingValueError(str(error), (field,) if field else ()) from None
    return Schedule(
        name=name,
        task=task,
        every=every,
        cron=cron,
        args=tuple(request.args),
        kwargs=dict(request.kwargs or {}),
        queue=request.queue,
        priority=request.priority,
        max_retries=request.max_retries,
        timeout=request.timeout,
    )


def _parse_cron(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"cron: expected a cron expression such as '0 3 * * *', got {value!r}")
    expression = " ".join(value.split())
    if expression.startswith("@"):
        if expression.lower() not in CRON_ALIASES:
            raise ValueError(f"cron: unknown alias {value!r} (known: {', '.join(CRON_ALIASES)})")
        return expression.lower()
    if len(expression.split()) != CRON_FIELDS:
        raise ValueError(f"cron: {value!r} must have 5 fields: minute hour day-of-month month day-of-week (UTC)")
    # Imported here, where a cron entry is read: a pool without cron schedules never loads it (~15 ms).
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"cron: invalid expression {value!r}")
    return expression


def parse_schedules(
    mapping: Mapping[Any, Any] | None, locate: Callable[..., str] | None = None
) -> tuple[list[Schedule], list[str]]:
    """The valid schedules, and one message per invalid entry naming it and its problem.
    An invalid entry is left out; the others are unaffected. `locate` (Settings.where) puts the file and
    the line of the bad key in front: `settings.yaml:14: schedule 'nightly': every: invalid duration ...`."""
    valid: list[Schedule] = []
    errors: list[str] = []
    for name, entry in (mapping or {}).items():
        try:
            valid.append(_parse_entry(name, entry))
        except (ValueError, InvalidTaskArguments) as error:
            where = locate("schedule", name, *getattr(error, "path", ())) if locate is not None else ""
            errors.append(f"{where + ': ' if where else ''}schedule {name!r}: {error}")
    return valid, errors


class Scheduler:
    """Keeps one pending row per configured schedule. A maintenance duty: the pool calls `update` on each
    good settings load and `run_once(now)` about once a second, in every pool on every host.

    `update` may come from another thread than `run_once`: it swaps in a new mapping, and each tick works
    on the mapping it read when it began.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._schedules: dict[str, Schedule] = {}

    def update(self, schedules: list[Schedule]) -> None:
        """Take the configured schedules; the next run_once converges the database to them."""
        self._schedules = {schedule.name: schedule for schedule in schedules}

    def run_once(self, now: datetime) -> dict[str, int]:
        """Create, rewrite and delete schedule rows as needed. A tick with nothing to do only reads."""
        counts = {"created": 0, "rescheduled": 0, "removed": 0}
        configured = self._schedules
        states = self.store.schedule_states()
        for name in sorted(states.keys() - configured.keys()):
            deleted = self.store.remove_schedule(name)
            counts["removed"] += deleted
            log_event(log, logging.INFO, "schedule_removed", name=name, deleted_pending=deleted)
        schedules = list(configured.values())
        current = self.store.scheduled_tasks(
            [state.task_id for name, state in states.items() if name in configured and state.task_id is not None]
        )
        for schedule in schedules:
            if self._up_to_date(schedule, states.get(schedule.name), current):
                continue
            decide = functools.partial(self._decide, schedule, now)
            change = self.store.converge_schedule(schedule.name, schedule.dedup_key, decide, now=now)
            if change is None:
                continue
            counts[change.kind] += 1
            rescheduled = change.kind == "rescheduled"  # worth INFO: a pending run moved; a creation is routine
            log_event(
                log,
                logging.INFO if rescheduled else logging.DEBUG,
                "schedule_rescheduled" if rescheduled else "schedule_created",
                name=schedule.name,
                task_id=change.task_id,
                run_after=change.run_after,
            )
        return counts

    @staticmethod
    def _up_to_date(schedule: Schedule, state: ScheduleState | None, current: dict[int, ScheduledTask]) -> bool:
        """Nothing to do this tick: the schedule's row is active, and if still pending, made from this entry."""
        task = None if state is None or state.task_id is None else current.get(state.task_id)
        if task is None or task.status not in ACTIVE_STATUSES:
            return False
        return task.status != Status.PENDING or (state is not None and state.spec_hash == schedule.spec_hash)

    @classmethod
    def _decide(cls, schedule: Schedule, now: datetime, view: ScheduleView) -> ScheduleDecision | None:
        """What to do with the schedule, from what the store read under its lock: rewrite its pending row
        (edited entry, or a row another pool's state does not know), create its next row, or nothing (its
        row is running or already up to date). A pure function: the store applies the answer in the same
        transaction."""
        state, holder = view.state, view.holder
        if holder is not None:
            if holder.status != Status.PENDING:
                return None
            if state.task_id == holder.id and state.spec_hash == schedule.spec_hash:
                return None
            anchor = state.anchor if state.task_id == holder.id and state.anchor is not None else now
            run_after = cls._edited_slot(schedule, anchor, holder.run_after, now)
            return ScheduleDecision(cls._request(schedule, run_after), anchor, schedule.spec_hash, reschedule=holder.id)
        if state.run_after is None or state.task_id is None:
            anchor, run_after = now, schedule.next_after(now)
        else:
            anchor = state.run_after
            run_after = schedule.next_after(anchor)
            if run_after <= now:
                started = view.previous_started_at
                # Unknown start (cancelled before it ran, or purged): assume it covered the slot, so that
                # bookkeeping gaps can only skip a run, never add a burst of them.
                if started is None or started >= run_after:
                    run_after = schedule.next_after(now, anchor=anchor)
        return ScheduleDecision(cls._request(schedule, run_after), anchor, schedule.spec_hash)

    @staticmethod
    def _edited_slot(schedule: Schedule, anchor: datetime, current: datetime, now: datetime) -> datetime:
        """run_after of a pending row whose entry was edited: the new timing's first slot after the
        anchor; if that has passed, the row stays due when it already was, else waits for the next slot."""
        slot = schedule.next_after(anchor, anchor=anchor)
        if slot > now:
            return slot
        if current <= now:
            return current
        return schedule.next_after(now, anchor=anchor)

    @staticmethod
    def _request(schedule: Schedule, run_after: datetime) -> TaskRequest:
        return TaskRequest(
            schedule.task,
            list(schedule.args),
            dict(schedule.kwargs),
            schedule.priority,
            run_after,
            schedule.dedup_key,
            schedule.max_retries,
            schedule.queue,
            schedule.timeout,
        )
