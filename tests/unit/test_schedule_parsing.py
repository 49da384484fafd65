"""Periodic schedules, parsed: each invalid entry is refused with its name and problem, the valid ones keep
every option, and `next_after` follows the anchor grid and cron in UTC. The schedules' rows in the store:
tests/contract/test_scheduler.py; two real pools: tests/process/test_scheduler_pools.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskq.scheduler import Schedule, parse_schedules

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"every": "1h"}, "missing task"),
        ({"task": "", "every": "1h"}, "missing task"),
        ({"task": "t"}, "exactly one of every"),
        ({"task": "t", "every": "1h", "cron": "0 3 * * *"}, "exactly one of every"),
        ({"task": "t", "every": "soon"}, "every: invalid duration 'soon'"),
        ({"task": "t", "every": "0s"}, "every: must be longer than zero"),
        ({"task": "t", "every": -5}, "every: duration must not be negative"),
        ({"task": "t", "cron": "61 * * * *"}, "cron: invalid expression '61 * * * *'"),
        ({"task": "t", "cron": "0 3 * *"}, "must have 5 fields"),
        ({"task": "t", "cron": "0 0 3 * * *"}, "must have 5 fields"),
        ({"task": "t", "cron": "@sometimes"}, "unknown alias"),
        ({"task": "t", "cron": 3}, "cron: expected a cron expression"),
        ({"task": "t", "every": "1h", "evry": "2h", "kwarg": {}}, "unknown key(s) evry, kwarg (allowed: task,"),
        ({"task": "t", "every": "1h", "args": "x"}, "args must be a JSON array (a list), got str"),
        ({"task": "t", "every": "1h", "args": [{1, 2}]}, "args must be JSON-serialisable"),
        ({"task": "t", "every": "1h", "kwargs": {"day": datetime(2026, 1, 1)}}, "kwargs must be JSON-serialisable"),
        ({"task": "t", "every": "1h", "kwargs": [1]}, "kwargs must be a JSON object (a mapping), got list"),
        ({"task": "t", "every": "1h", "priority": "high"}, "priority must be a whole number, got 'high'"),
        ({"task": "t", "every": "1h", "max_retries": -1}, "max_retries must be a whole number >= 0, got -1"),
        ({"task": "t", "every": "1h", "timeout": "0s"}, "timeout must be positive, got 0.0"),
        ({"task": "t", "every": "1h", "queue": ""}, "queue must be a non-empty string, got ''"),
        # the limits of the strictest dialect (PostgreSQL), as for every enqueue
        ({"task": "t", "every": "1h", "priority": 2**31}, "priority must be between -2147483648 and 2147483647"),
        ({"task": "t", "every": "1h", "max_retries": 2**40}, "max_retries must be between 0 and 2147483647"),
        ({"task": "t", "every": "1h", "queue": "q" * 101}, "queue must be at most 100 characters, got 101"),
        ({"task": "t" * 201, "every": "1h"}, "name must be at most 200 characters, got 201"),
        ({"task": "t", "every": "1h", "timeout": "inf"}, "timeout: duration must be a finite number"),
        ({"task": "t", "every": "nan"}, "every: duration must be a finite number"),
        ("myapp.refresh every 6h", "expected a mapping"),
    ],
)
def test_invalid_entry_is_rejected_with_its_name_and_problem(entry: Any, problem: str) -> None:
    valid, errors = parse_schedules({"broken": entry, "fine": {"task": "taskq.echo", "every": "6h"}})
    assert [schedule.name for schedule in valid] == ["fine"]
    assert len(errors) == 1
    assert errors[0].startswith("schedule 'broken': ")
    assert problem in errors[0]


def test_valid_entries_parse_with_all_options() -> None:
    valid, errors = parse_schedules(
        {
            "refresh_index": {"task": "myapp.refresh", "every": "6h"},
            "nightly_report": {
                "task": "myapp.report",
                "cron": "0  3 * * *",
                "args": [1, "a"],
                "kwargs": {"full": True},
                "queue": "reports",
                "priority": 5,
                "max_retries": 0,
                "timeout": "10m",
            },
            "hourly": {"task": "myapp.tick", "cron": "@HOURLY"},
        }
    )
    assert errors == []
    refresh, report, hourly = valid
    assert refresh.every == timedelta(hours=6) and refresh.cron is None
    assert report.cron == "0 3 * * *" and report.args == (1, "a") and report.kwargs == {"full": True}
    assert (report.queue, report.priority, report.max_retries, report.timeout) == ("reports", 5, 0, 600.0)
    assert hourly.cron == "@hourly"
    assert refresh.dedup_key == "schedule:refresh_index"


def test_next_after_follows_the_anchor_grid_and_cron_in_utc() -> None:
    every = Schedule("s", "t", every=timedelta(seconds=10))
    assert every.next_after(at(3)) == at(13)
    assert every.next_after(at(3), anchor=at(0)) == at(10)
    assert every.next_after(at(20), anchor=at(0)) == at(30)  # strictly after
    nightly = Schedule("n", "t", cron="0 3 * * *")
    assert nightly.next_after(T0) == datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    assert nightly.next_after(datetime(2026, 1, 2, 4, 30, tzinfo=plus_two)) == datetime(
        2026, 1, 2, 3, 0, tzinfo=UTC
    )
