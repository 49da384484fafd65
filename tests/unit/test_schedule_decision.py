"""The scheduler's decision as the pure function the store applies (Store.converge_schedule): no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskq.model import Status
from taskq.scheduler import Schedule, Scheduler
from taskq.store.schedules import ScheduledTask, ScheduleState, ScheduleView

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVERY = Schedule("tick", "taskq.echo", every=timedelta(minutes=10))


def state(run_after: datetime | None = None, task_id: int | None = None, spec_hash: str | None = None) -> ScheduleState:
    return ScheduleState("tick", spec_hash, task_id, run_after, run_after)


def test_a_new_schedule_gets_its_first_row_at_the_first_slot_after_now() -> None:
    decision = Scheduler._decide(EVERY, NOW, ScheduleView(state(), None, None))
    assert decision is not None and decision.reschedule is None
    assert (decision.request.run_after, decision.anchor) == (NOW + timedelta(minutes=10), NOW)
    assert decision.request.dedup_key == "schedule:tick" and decision.spec_hash == EVERY.spec_hash


def test_a_running_row_or_an_up_to_date_pending_one_means_nothing_to_do() -> None:
    running = ScheduledTask(7, Status.RUNNING, NOW)
    assert Scheduler._decide(EVERY, NOW, ScheduleView(state(NOW, 7, "old"), running, None)) is None
    pending = ScheduledTask(7, Status.PENDING, NOW)
    assert Scheduler._decide(EVERY, NOW, ScheduleView(state(NOW, 7, EVERY.spec_hash), pending, None)) is None


def test_an_edited_entry_rewrites_the_pending_row_in_place() -> None:
    pending = ScheduledTask(7, Status.PENDING, NOW + timedelta(minutes=5))
    anchor = NOW - timedelta(minutes=5)
    view = ScheduleView(ScheduleState("tick", "old", 7, NOW + timedelta(minutes=5), anchor), pending, None)
    decision = Scheduler._decide(EVERY, NOW, view)
    assert decision is not None and decision.reschedule == 7
    assert (decision.request.run_after, decision.anchor) == (anchor + timedelta(minutes=10), anchor)


def test_a_missed_slot_runs_once_unless_the_previous_run_covered_it() -> None:
    previous = NOW - timedelta(minutes=25)  # slots at -15 and -5 were missed
    uncovered = ScheduleView(state(previous, 7, EVERY.spec_hash), None, previous)
    decision = Scheduler._decide(EVERY, NOW, uncovered)
    assert decision is not None and decision.request.run_after == previous + timedelta(minutes=10)  # catch-up
    covered = ScheduleView(state(previous, 7, EVERY.spec_hash), None, NOW - timedelta(minutes=14))
    decision = Scheduler._decide(EVERY, NOW, covered)
    assert decision is not None and decision.request.run_after == NOW + timedelta(minutes=5)  # next slot on the grid
