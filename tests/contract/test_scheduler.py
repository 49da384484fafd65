"""Periodic schedules in the store, on SQLite and PostgreSQL: one row per schedule under concurrent schedulers,
cadence, missed slots, live edits. (Parsing: tests/unit/test_schedule_parsing.py; two real pools:
tests/process/test_scheduler_pools.py.)

Time is an input: every test passes `now` to run_once, claim and complete, and never sleeps.
"""

from __future__ import annotations

import itertools
import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import taskq
from taskq.model import Status, Task
from taskq.scheduler import Schedule, Scheduler, parse_schedules
from taskq.store import Store

SPAWN = multiprocessing.get_context("spawn")
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def schedules(mapping: dict[str, Any]) -> list[Schedule]:
    valid, errors = parse_schedules(mapping)
    assert errors == []
    return valid


def scheduler_for(store: Store, mapping: dict[str, Any]) -> Scheduler:
    scheduler = Scheduler(store)
    scheduler.update(schedules(mapping))
    return scheduler


def schedule_rows(store: Store, name: str) -> list[Task]:
    """Every task row a schedule has made, oldest first."""
    return sorted((t for t in store.list(limit=10_000) if t.dedup_key == f"schedule:{name}"), key=lambda t: t.id)


def active_row(store: Store, name: str) -> Task:
    active = [task for task in schedule_rows(store, name) if task.is_active]
    assert len(active) == 1, active
    return active[0]


def run_due(store: Store, now: datetime, *, duration: float = 0.1) -> list[Task]:
    """A worker claims every due task at `now` and completes each `duration` seconds later."""
    done = []
    while (task := store.claim("worker-1", now=now)) is not None:
        assert store.complete(task.id, worker_id="worker-1", now=now + timedelta(seconds=duration))
        done.append(task)
    return done


def counts(created: int = 0, rescheduled: int = 0, removed: int = 0) -> dict[str, int]:
    return {"created": created, "rescheduled": rescheduled, "removed": removed}


def test_an_invalid_entry_does_not_stop_the_others(store: Store) -> None:
    valid, errors = parse_schedules(
        {"good": {"task": "taskq.echo", "every": "10s"}, "bad": {"task": "taskq.echo", "every": "10 parsecs"}}
    )
    assert len(errors) == 1 and "'bad'" in errors[0]
    scheduler = Scheduler(store)
    scheduler.update(valid)
    assert scheduler.run_once(T0) == counts(created=1)
    assert active_row(store, "good").run_after == at(10)
    assert schedule_rows(store, "bad") == []


# -- one row per schedule, however many pools --------------------------------------------------------------

MANY = {f"s{i}": {"task": "taskq.echo", "every": f"{i + 1}s", "args": [i]} for i in range(5)}


def test_two_pools_with_the_same_now_keep_one_row_per_schedule(database_url: str) -> None:
    first_store, second_store = taskq.open_store(database_url), taskq.open_store(database_url)
    try:
        first, second = scheduler_for(first_store, MANY), scheduler_for(second_store, MANY)
        created = 0
        for step in range(12):
            now = at(step)
            for scheduler in (first, second, second, first):
                created += scheduler.run_once(now)["created"]
            for name in MANY:
                active_row(first_store, name)
            run_due(first_store, now)
        made = sum(len(schedule_rows(first_store, name)) for name in MANY)
        assert created == made
        for i, name in enumerate(MANY):
            run_afters = [task.run_after for task in schedule_rows(first_store, name)]
            assert len(run_afters) == len(set(run_afters))
            assert all(b - a == timedelta(seconds=i + 1) for a, b in itertools.pairwise(run_afters))
    finally:
        first_store.dispose()
        second_store.dispose()


ROUNDS = (at(0), at(30))


def _tick_concurrently(url: str, start: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    scheduler = scheduler_for(store, MANY)
    for now in ROUNDS:
        start.wait()
        total = counts()
        for _ in range(10):
            for key, value in scheduler.run_once(now).items():
                total[key] += value
        results.put(total)
    store.dispose()


def test_four_processes_ticking_at_once_keep_one_row_per_schedule(database_url: str) -> None:
    store = taskq.open_store(database_url)
    start, results = SPAWN.Barrier(5), SPAWN.Queue()
    children = [SPAWN.Process(target=_tick_concurrently, args=(database_url, start, results)) for _ in range(4)]
    for child in children:
        child.start()
    try:
        for round_number, now in enumerate(ROUNDS):
            start.wait(timeout=120)
            totals = [results.get(timeout=120) for _ in children]
            assert sum(total["created"] for total in totals) == len(MANY)
            assert sum(total["rescheduled"] + total["removed"] for total in totals) == 0
            for name in MANY:
                assert len(schedule_rows(store, name)) == round_number + 1
                active_row(store, name)
            assert len(run_due(store, now + timedelta(seconds=10))) == len(MANY)
        for child in children:
            child.join(timeout=30)
            assert child.exitcode == 0
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
        store.dispose()


# -- cadence ---------------------------------------------------------------------------------------------


def test_every_keeps_its_cadence_from_the_previous_slot_not_the_finish_time(store: Store) -> None:
    scheduler = scheduler_for(store, {"tick": {"task": "taskq.echo", "every": "10s"}})
    assert scheduler.run_once(T0) == counts(created=1)
    assert scheduler.run_once(T0) == counts()
    now = T0
    for _ in range(4):
        now = active_row(store, "tick").run_after + timedelta(seconds=2)  # claimed 2 s late, runs 3 s
        assert len(run_due(store, now, duration=3)) == 1
        assert scheduler.run_once(now + timedelta(seconds=4)) == counts(created=1)
    assert [task.run_after for task in schedule_rows(store, "tick")] == [at(10), at(20), at(30), at(40), at(50)]


def test_a_scheduler_tick_that_comes_after_the_next_slot_still_runs_it(store: Store) -> None:
    scheduler = scheduler_for(store, {"tick": {"task": "taskq.echo", "every": "1s"}})
    scheduler.run_once(T0)
    run_due(store, at(1), duration=0.2)  # started on time at its slot
    assert scheduler.run_once(at(2.5)) == counts(created=1)  # the pool's tick saw it finished only now
    row = active_row(store, "tick")
    assert row.run_after == at(2)  # due at once: slot 2 was not covered by the run that started at 1
    assert [task.id for task in run_due(store, at(2.5))] == [row.id]
    assert scheduler.run_once(at(2.7)) == counts(created=1)
    assert active_row(store, "tick").run_after == at(3)


def test_cron_runs_at_each_utc_slot(store: Store) -> None:
    scheduler = scheduler_for(store, {"nightly": {"task": "taskq.echo", "cron": "0 3 * * *", "kwargs": {"x": 1}}})
    scheduler.run_once(T0)
    for day in (2, 3, 4):
        row = active_row(store, "nightly")
        assert row.run_after == datetime(2026, 1, day, 3, 0, tzinfo=UTC)
        assert row.kwargs == {"x": 1}
        assert run_due(store, row.run_after - timedelta(seconds=1)) == []
        assert len(run_due(store, row.run_after + timedelta(seconds=1), duration=60)) == 1
        assert scheduler.run_once(row.run_after + timedelta(minutes=2)) == counts(created=1)


# -- missed occurrences ----------------------------------------------------------------------------------


def test_missed_occurrences_run_once_then_the_cadence_resumes(store: Store) -> None:
    scheduler = scheduler_for(
        store, {"hourly": {"task": "taskq.echo", "every": "1h"}, "nightly": {"task": "taskq.echo", "cron": "0 3 * * *"}}
    )
    scheduler.run_once(T0)
    back = T0 + timedelta(days=3, minutes=30)  # the daemon was down for three days
    assert scheduler.run_once(back) == counts()  # each overdue row is still there, once
    ran = run_due(store, back, duration=5)
    assert sorted(task.name for task in ran) == ["taskq.echo", "taskq.echo"]
    assert scheduler.run_once(back + timedelta(seconds=10)) == counts(created=2)
    assert active_row(store, "hourly").run_after == T0 + timedelta(days=3, hours=1)
    assert active_row(store, "nightly").run_after == datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    assert run_due(store, back + timedelta(seconds=10)) == []
    assert len(schedule_rows(store, "hourly")) == 2 and len(schedule_rows(store, "nightly")) == 2


def test_a_running_occurrence_gets_no_second_row_until_it_finishes(store: Store) -> None:
    scheduler = scheduler_for(store, {"slow": {"task": "taskq.echo", "every": "10s", "max_retries": 2}})
    scheduler.run_once(T0)
    first = store.claim("worker-1", now=at(10))
    assert first is not None
    for later in (11, 25, 45):
        assert scheduler.run_once(at(later)) == counts()
    assert store.fail(first.id, "boom", worker_id="worker-1", now=at(46)) == Status.PENDING  # retrying
    retrying = active_row(store, "slow")
    assert scheduler.run_once(at(47)) == counts()
    assert active_row(store, "slow").run_after == retrying.run_after  # its retry backoff is left alone
    assert store.claim("worker-1", now=retrying.run_after) is not None
    assert store.complete(first.id, worker_id="worker-1", now=retrying.run_after + timedelta(seconds=1))
    assert scheduler.run_once(retrying.run_after + timedelta(seconds=2)) == counts(created=1)
    # the retried run started at 48, covering slots 20..40: the next row is the first slot after now, not a burst
    assert active_row(store, "slow").run_after == at(60)  # now is 50: strictly after it
    assert len(schedule_rows(store, "slow")) == 2


# -- live edits ------------------------------------------------------------------------------------------


def test_editing_an_entry_rewrites_its_pending_row(store: Store) -> None:
    scheduler = scheduler_for(store, {"tick": {"task": "taskq.echo", "every": "10s"}})
    scheduler.run_once(T0)
    run_due(store, at(10))
    scheduler.run_once(at(11))
    pending = active_row(store, "tick")
    assert pending.run_after == at(20)

    scheduler.update(schedules({"tick": {"task": "taskq.echo", "every": "20s"}}))
    assert scheduler.run_once(at(12)) == counts(rescheduled=1)
    assert scheduler.run_once(at(12)) == counts()
    row = active_row(store, "tick")
    assert (row.id, row.run_after) == (pending.id, at(30))  # previous slot 10 + the new 20 s

    scheduler.update(schedules({"tick": {"task": "taskq.sleep", "every": "20s", "args": [0], "queue": "q2"}}))
    assert scheduler.run_once(at(13)) == counts(rescheduled=1)
    row = active_row(store, "tick")
    assert (row.name, row.args, row.queue, row.run_after) == ("taskq.sleep", [0], "q2", at(30))

    scheduler.update(schedules({"tick": {"task": "taskq.echo", "every": "3s"}}))
    assert scheduler.run_once(at(15)) == counts(rescheduled=1)
    assert active_row(store, "tick").run_after == at(16)  # slot 13 has passed: an edit never runs a row early

    scheduler.update(schedules({"tick": {"task": "taskq.echo", "cron": "*/5 * * * *"}}))
    assert scheduler.run_once(at(15)) == counts(rescheduled=1)
    assert active_row(store, "tick").run_after == at(300)
    assert len(schedule_rows(store, "tick")) == 2


def test_removing_an_entry_deletes_its_pending_row_but_not_a_running_one(store: Store) -> None:
    keep = {"task": "taskq.echo", "every": "1h"}
    scheduler = scheduler_for(
        store,
        {
            "waiting": {"task": "taskq.echo", "every": "10s"},
            "busy": {"task": "taskq.echo", "every": "5s"},
            "keep": keep,
        },
    )
    scheduler.run_once(T0)
    busy = store.claim("worker-1", now=at(5))
    assert busy is not None and busy.dedup_key == "schedule:busy"

    scheduler.update(schedules({"keep": keep}))
    assert scheduler.run_once(at(6)) == counts(removed=1)
    assert scheduler.run_once(at(7)) == counts()
    assert schedule_rows(store, "waiting") == []
    assert store.require(busy.id).status == Status.RUNNING
    assert store.complete(busy.id, worker_id="worker-1", now=at(8))
    assert scheduler.run_once(at(9)) == counts()
    assert [task.status for task in schedule_rows(store, "busy")] == [Status.COMPLETED]
    assert set(store.schedule_states()) == {"keep"}
    active_row(store, "keep")


def test_a_row_holding_the_key_already_is_adopted_and_rewritten(store: Store) -> None:
    foreign = store.enqueue("taskq.sleep", [5], dedup_key="schedule:tick", run_after=at(1000), now=T0)
    scheduler = scheduler_for(store, {"tick": {"task": "taskq.echo", "every": "10s"}})
    assert scheduler.run_once(T0) == counts(rescheduled=1)
    row = active_row(store, "tick")
    assert (row.id, row.name, row.args, row.run_after) == (foreign.id, "taskq.echo", [], at(10))
    assert scheduler.run_once(at(1)) == counts()


def test_a_new_entry_appears_at_its_first_slot(store: Store) -> None:
    scheduler = scheduler_for(store, {"old": {"task": "taskq.echo", "every": "1h"}})
    scheduler.run_once(T0)
    scheduler.update(
        schedules({"old": {"task": "taskq.echo", "every": "1h"}, "new": {"task": "taskq.echo", "every": "5m"}})
    )
    assert scheduler.run_once(at(30)) == counts(created=1)
    assert active_row(store, "new").run_after == at(330)
    assert active_row(store, "old").run_after == at(3600)
