"""Enqueue checks a call against the task's signature and keeps `run_after` (a time) apart from `delay`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

import taskq
from taskq.model import InvalidTaskArguments
from taskq.store import Store


@taskq.task(name="args.resize")
def resize(path: str, width: int, *, quality: int = 90) -> dict:
    return {"path": path, "width": width, "quality": quality}


@taskq.task(name="args.with_ctx")
def with_ctx(ctx, folder: str) -> None:  # type: ignore[no-untyped-def]
    return None


def test_arguments_that_fit_the_signature_are_accepted(store: Store) -> None:
    assert store.enqueue("args.resize", ["cat.png", 640], {"quality": 50}).id
    assert store.enqueue("args.with_ctx", ["src"]).id  # ctx is the worker's to pass, not the caller's


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (["cat.png"], {}, "missing a required argument: 'width'"),
        (["cat.png", 640], {"nope": 1}, "unexpected keyword argument 'nope'"),
        (["cat.png", 640, 3], {}, "too many positional arguments"),
        (["cat.png", 640], {"width": 1}, "multiple values for argument 'width'"),
    ],
)
def test_a_call_that_does_not_fit_is_refused_naming_the_argument(
    store: Store, args: list, kwargs: dict, message: str
) -> None:
    with pytest.raises(InvalidTaskArguments, match=message) as raised:
        store.enqueue("args.resize", args, kwargs)
    assert "(path: str, width: int, *, quality: int = 90)" in str(raised.value)
    with pytest.raises(InvalidTaskArguments, match=message):
        store.enqueue_many([{"name": "args.resize", "args": args, "kwargs": kwargs}])
    assert sum(store.stats().values()) == 0


def test_the_context_parameter_is_not_part_of_the_call(store: Store) -> None:
    with pytest.raises(InvalidTaskArguments, match="too many positional arguments"):
        store.enqueue("args.with_ctx", ["ctx-value", "src"])


def test_a_task_this_process_has_not_imported_is_not_checked(store: Store) -> None:
    assert store.enqueue("elsewhere.defined", [1, 2, 3], {"any": "thing"}).id


def test_run_after_is_a_time_and_delay_is_seconds_or_a_timedelta(store: Store) -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    at = store.enqueue("taskq.echo", run_after=now + timedelta(hours=2), now=now).id
    by_seconds = store.enqueue("taskq.echo", delay=90, now=now).id
    by_timedelta = store.enqueue("taskq.echo", delay=timedelta(minutes=5), now=now).id
    assert store.require(at).run_after == now + timedelta(hours=2)
    assert store.require(by_seconds).run_after == now + timedelta(seconds=90)
    assert store.require(by_timedelta).run_after == now + timedelta(minutes=5)
    with pytest.raises(InvalidTaskArguments, match="not both"):
        store.enqueue("taskq.echo", run_after=now, delay=5)
    with pytest.raises(InvalidTaskArguments, match="must not be negative"):
        store.enqueue("taskq.echo", delay=-1)


def test_an_epoch_number_is_an_error_not_a_delay_until_2083(store: Store) -> None:
    with pytest.raises(InvalidTaskArguments, match="looks like a Unix timestamp"):
        store.enqueue("taskq.echo", delay=time.time() + 120)
    with pytest.raises(InvalidTaskArguments, match="looks like a Unix timestamp"), pytest.warns(DeprecationWarning):
        store.enqueue("taskq.echo", run_after=time.time() + 120)  # type: ignore[arg-type]
    assert sum(store.stats().values()) == 0


def test_a_number_as_run_after_still_means_a_delay_with_a_warning(store: Store) -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    with pytest.warns(DeprecationWarning, match="pass delay="):
        task_id = store.enqueue("taskq.echo", run_after=60, now=now).id  # type: ignore[arg-type]
    assert store.require(task_id).run_after == now + timedelta(seconds=60)


def test_a_schedule_whose_arguments_do_not_fit_is_reported_and_left_out() -> None:
    from taskq.scheduler import parse_schedules

    valid, errors = parse_schedules(
        {"ok": {"task": "args.resize", "every": "1h", "args": ["a", 1]}, "bad": {"task": "args.resize", "every": "1h"}}
    )
    assert [schedule.name for schedule in valid] == ["ok"]
    assert len(errors) == 1 and "schedule 'bad'" in errors[0] and "'path'" in errors[0]
