"""Periodic schedules: their state rows, and the pending task row each one keeps.

The scheduler (taskq/scheduler.py) decides when occurrences fall; these functions read and write the
rows. `converge_schedule` is one step of the scheduler: in the facade's write transaction it locks the
schedule's row (which serialises every pool working on that schedule), reads what the decision needs, asks
the scheduler's pure `decide` what to do, and applies the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from taskq.clock import as_utc
from taskq.lifecycle import Event
from taskq.model import ACTIVE_STATUSES, TERMINAL_STATUSES, Status, TaskRequest
from taskq.requests import ArgumentCheck
from taskq.schema import schedules, tasks
from taskq.store.base import StoreContext, _from, _status_is
from taskq.store.enqueue import insert_many, row_values

SCHEDULE_KEY_PREFIX = "schedule:"

# Columns of a pending row that follow the schedule's settings entry when it is edited.
_RESCHEDULED_COLUMNS = ("name", "queue", "args", "kwargs", "priority", "max_retries", "timeout", "continuation")


def schedule_dedup_key(name: str) -> str:
    return f"{SCHEDULE_KEY_PREFIX}{name}"


@dataclass(frozen=True)
class ScheduleState:
    """What the database remembers about one schedule between ticks (and across restarts)."""

    name: str
    spec_hash: str | None  # of the settings entry the current occurrence was made from
    task_id: int | None  # the current occurrence's task row
    run_after: datetime | None  # the current occurrence's slot; None before the first one
    anchor: datetime | None  # the instant that slot follows: the previous slot, or when the schedule appeared

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ScheduleState:
        def when(value: datetime | None) -> datetime | None:
            return None if value is None else as_utc(value)

        return cls(row["name"], row["spec_hash"], row["task_id"], when(row["run_after"]), when(row["anchor"]))


@dataclass(frozen=True)
class ScheduledTask:
    """The active task row holding a schedule's dedup key."""

    id: int
    status: Status
    run_after: datetime


@dataclass(frozen=True)
class ScheduleView:
    """What one schedule's next step is decided from, read under the schedule's lock."""

    state: ScheduleState
    holder: ScheduledTask | None  # the active row holding the schedule's dedup key
    previous_started_at: datetime | None  # without a holder: when the state's last row started (None: never, or purged)


@dataclass(frozen=True)
class ScheduleDecision:
    """What to do: rewrite the pending row `reschedule` from `request`, or (None) create a row from it.
    `request.run_after` is the occurrence's slot, `anchor` the instant that slot follows."""

    request: TaskRequest
    anchor: datetime
    spec_hash: str
    reschedule: int | None = None


@dataclass(frozen=True)
class ScheduleChange:
    """What a converge step did: `created` a row, or `rescheduled` the pending one."""

    kind: str  # "created" or "rescheduled": the scheduler's count names
    task_id: int
    run_after: datetime


Decide = Callable[[ScheduleView], ScheduleDecision | None]


# -- a read-only look at every schedule, once per tick --------------------------------------------------


def schedule_states(conn: Connection) -> dict[str, ScheduleState]:
    rows = conn.execute(select(schedules)).mappings().all()
    return {row["name"]: ScheduleState.from_row(row) for row in rows}


def scheduled_tasks(conn: Connection, task_ids: Sequence[int]) -> dict[int, ScheduledTask]:
    """Status of each schedule's current row, by primary key. Looking rows up by dedup key instead
    would need the partial dedup index, which SQLite's planner passes over for a long IN list in
    favour of walking every pending row by status."""
    query = select(tasks.c.id, tasks.c.status, tasks.c.run_after).where(tasks.c.id.in_(list(task_ids)))
    rows = conn.execute(query).all()
    return {row.id: ScheduledTask(row.id, Status(row.status), as_utc(row.run_after)) for row in rows}


# -- one schedule's step, in one write transaction --------------------------------------------------------


def converge_schedule(
    conn: Connection,
    ctx: StoreContext,
    name: str,
    dedup_key: str,
    decide: Decide,
    now: datetime,
    check_arguments: ArgumentCheck | None,
) -> ScheduleChange | None:
    """Lock the schedule, read its view, apply `decide`'s answer. None when there was nothing to do, or
    the row moved meanwhile (no longer pending, or another pool's row took the key)."""
    state = _lock_schedule(conn, ctx, name)
    holder = _active_task_for_key(conn, dedup_key)
    started = None if holder is not None or state.task_id is None else _task_started_at(conn, state.task_id)
    decision = decide(ScheduleView(state, holder, started))
    if decision is None:
        return None
    run_after = decision.request.run_after
    assert isinstance(run_after, datetime), "a schedule's request names its slot"
    if decision.reschedule is not None:
        if not _reschedule_pending(conn, ctx, decision.reschedule, decision.request, now):
            return None
        change = ScheduleChange("rescheduled", decision.reschedule, run_after)
    else:
        enqueued = insert_many(conn, ctx, [row_values(ctx, decision.request, now, check_arguments)])[0]
        if enqueued.deduplicated:
            return None
        change = ScheduleChange("created", enqueued.id, run_after)
    _save_schedule(conn, ScheduleState(name, decision.spec_hash, change.task_id, run_after, decision.anchor))
    return change


def _lock_schedule(conn: Connection, ctx: StoreContext, name: str) -> ScheduleState:
    """The schedule's state row, created empty if missing, locked until the transaction ends."""
    conn.execute(ctx.dialect.insert_if_absent(schedules).values(name=name))
    row = conn.execute(select(schedules).where(schedules.c.name == name).with_for_update()).mappings().one()
    return ScheduleState.from_row(row)


def _active_task_for_key(conn: Connection, dedup_key: str) -> ScheduledTask | None:
    row = conn.execute(
        select(tasks.c.id, tasks.c.status, tasks.c.run_after)
        .where(tasks.c.dedup_key == dedup_key, _status_is(*ACTIVE_STATUSES))
        .with_for_update()
    ).first()
    return None if row is None else ScheduledTask(row.id, Status(row.status), as_utc(row.run_after))


def _task_started_at(conn: Connection, task_id: int) -> datetime | None:
    """When the task's last attempt started; None if it never started or was purged."""
    value = conn.execute(select(tasks.c.started_at).where(tasks.c.id == task_id)).scalar_one_or_none()
    return None if value is None else as_utc(value)


def _reschedule_pending(conn: Connection, ctx: StoreContext, task_id: int, request: TaskRequest, now: datetime) -> bool:
    """Rewrite a pending row from `request` (task, arguments, options, run_after); False if it is no
    longer pending. The row keeps its id and attempt count."""
    values = row_values(ctx, request, now)
    changed = {column: values[column] for column in _RESCHEDULED_COLUMNS}
    statement = (
        update(tasks)
        .where(tasks.c.id == task_id, _from(Event.RESCHEDULE))
        .values(**changed, run_after=values["run_after"])
    )
    if not conn.execute(statement).rowcount:
        return False
    ctx.dialect.notify_new_tasks(conn)
    return True


def _save_schedule(conn: Connection, state: ScheduleState) -> None:
    conn.execute(
        update(schedules)
        .where(schedules.c.name == state.name)
        .values(spec_hash=state.spec_hash, task_id=state.task_id, run_after=state.run_after, anchor=state.anchor)
    )


# -- a schedule leaves the settings ---------------------------------------------------------------------


def remove_schedule(conn: Connection, name: str) -> int:
    """Forget the schedule and delete its pending row; a running one is left to finish.
    Returns the number of task rows deleted."""
    # Schedule row first, as the scheduler's transactions lock it, so the two never deadlock.
    conn.execute(select(schedules.c.name).where(schedules.c.name == name).with_for_update()).first()
    deleted = conn.execute(
        # The active-statuses term adds nothing logically; it lets SQLite use the partial dedup index
        # instead of walking every pending row.
        delete(tasks).where(
            tasks.c.dedup_key == schedule_dedup_key(name),
            _status_is(*ACTIVE_STATUSES),
            _status_is(Status.PENDING),
        )
    ).rowcount
    conn.execute(delete(schedules).where(schedules.c.name == name))
    return int(deleted)


@dataclass(frozen=True)
class ScheduleOverview:
    """One schedule as the dashboard shows it: its next occurrence and how the last finished one went."""

    name: str
    next_task_id: int | None
    next_status: Status | None
    next_run_after: datetime | None
    last_task_id: int | None
    last_status: Status | None
    last_finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name,
            "next_task_id": self.next_task_id,
            "next_status": None if self.next_status is None else self.next_status.value,
            "next_run_after": iso(self.next_run_after),
            "last_task_id": self.last_task_id,
            "last_status": None if self.last_status is None else self.last_status.value,
            "last_finished_at": iso(self.last_finished_at),
        }


def schedule_overview(conn: Connection) -> list[ScheduleOverview]:
    """Every schedule with a state row, by name: two probes of ix_tasks_dedup_key each (the active
    occurrence, the newest finished one), however many occurrences the table keeps."""
    found = []
    for state in conn.execute(select(schedules).order_by(schedules.c.name)).mappings().all():
        key = schedule_dedup_key(state["name"])
        keyed = and_(tasks.c.dedup_key == key, tasks.c.dedup_key.is_not(None))
        current = conn.execute(
            select(tasks.c.id, tasks.c.status, tasks.c.run_after)
            .where(keyed, _status_is(*ACTIVE_STATUSES))
            .order_by(tasks.c.id.desc())
            .limit(1)
        ).first()
        last = conn.execute(
            select(tasks.c.id, tasks.c.status, tasks.c.finished_at)
            .where(keyed, _status_is(*TERMINAL_STATUSES))
            .order_by(tasks.c.id.desc())
            .limit(1)
        ).first()
        found.append(
            ScheduleOverview(
                state["name"],
                None if current is None else current.id,
                None if current is None else Status(current.status),
                None if current is None else as_utc(current.run_after),
                None if last is None else last.id,
                None if last is None else Status(last.status),
                None if last is None or last.finished_at is None else as_utc(last.finished_at),
            )
        )
    return found
