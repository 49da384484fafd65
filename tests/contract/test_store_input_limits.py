"""The store's own checks of what callers give it (issue 20, point 6), on SQLite and PostgreSQL: enqueue fields
past the strictest dialect's limits are refused naming the field before any SQL runs; ids past BIGINT are not
found; argument search finds non-ASCII words and takes quotes, backslashes and LIKE wildcards literally."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from taskq.model import InvalidTaskArguments, TaskFilter, TaskNotFound, TaskRequest
from taskq.store import Store

BIG = 2**63


@pytest.fixture
def statements(store: Store) -> Iterator[list[str]]:
    """Every statement the store's engine sends to the driver while the test runs (on SQLite a plain
    enqueue takes the hot path's own connection: the PostgreSQL runs are the ones that prove it here)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield sent
    event.remove(store.engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 2**31}, "priority must be between -2147483648 and 2147483647, got 2147483648"),
        ({"priority": -(2**31) - 1}, "priority must be between -2147483648 and 2147483647"),
        ({"max_retries": 2**31}, "max_retries must be between 0 and 2147483647, got 2147483648"),
        ({"name": "n" * 201}, "name must be at most 200 characters, got 201"),
        ({"queue": "q" * 101}, "queue must be at most 100 characters, got 101"),
        ({"dedup_key": "k" * 501}, "dedup_key must be at most 500 characters, got 501"),
        ({"continuation": "c" * 201}, "continuation must be at most 200 characters, got 201"),
        ({"name": "caf\udce9"}, "name must be valid Unicode: '\\udce9' at position 3 is a lone surrogate"),
        ({"queue": "\ud800"}, "queue must be valid Unicode"),
        ({"dedup_key": "k\udfff"}, "dedup_key must be valid Unicode"),
        ({"delay": math.nan}, "delay must be a finite number of seconds, got nan"),
        ({"delay": math.inf}, "delay must be a finite number of seconds, got inf"),
        (
            {"run_after": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))},
            "run_after 9999-12-31 23:00:00-05:00 is out of range once converted to UTC",
        ),
        (
            {"run_after": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))},
            "run_after 0001-01-01 00:30:00+01:00 is out of range",
        ),
        ({"timeout": math.inf}, "timeout must be at most 315360000 seconds, got inf"),
        ({"timeout": 1e12}, "timeout must be at most 315360000 seconds"),
        ({"parent_id": BIG}, "parent_id must be a task id (1 to 9223372036854775807)"),
    ],
)
def test_enqueue_refuses_each_field_past_the_strictest_dialect_before_any_sql(
    store: Store, statements: list[str], options: dict[str, Any], message: str
) -> None:
    fields = {"name": "taskq.echo", **options}
    for attempt in (
        lambda: store.enqueue(**fields),
        lambda: store.enqueue(**{"dedup_key": "a key", **fields}),  # the path beside SQLite's hot one
        lambda: store.enqueue_many([TaskRequest(**fields)]),
    ):
        with pytest.raises(InvalidTaskArguments) as raised:
            attempt()
        assert message in str(raised.value)
    assert statements == []
    assert store.stats()["pending"] == 0


def test_the_limits_themselves_are_accepted_on_every_dialect(store: Store) -> None:
    at_limits = {
        "name": "n" * 200,
        "queue": "q" * 100,
        "dedup_key": "k" * 500,
        "priority": 2**31 - 1,
        "max_retries": 2**31 - 1,
        "run_after": datetime(9999, 12, 31, 18, tzinfo=timezone(timedelta(hours=-5))),
    }
    task = store.require(store.enqueue(**at_limits).id)
    assert (task.name, task.queue, task.dedup_key) == (at_limits["name"], at_limits["queue"], at_limits["dedup_key"])
    assert (task.priority, task.max_retries) == (2**31 - 1, 2**31 - 1)
    low = store.require(store.enqueue("taskq.echo", priority=-(2**31)).id)
    assert low.priority == -(2**31)


def test_ids_past_bigint_are_not_found(store: Store, statements: list[str]) -> None:
    for task_id in (BIG, 10**30, -BIG - 1):
        assert store.get(task_id) is None
        for action in (store.require, store.cancel, store.retry):
            with pytest.raises(TaskNotFound, match=f"no task with id {task_id}"):
                action(task_id)
    with pytest.raises(InvalidTaskArguments, match="ids must be a task id"):
        store.bulk_retry(ids=[1, BIG])
    with pytest.raises(InvalidTaskArguments, match="parent_id must be a task id"):
        store.count(TaskFilter(parent_id=BIG))
    for cursor in ({"before_id": BIG}, {"after_id": BIG}):
        with pytest.raises(InvalidTaskArguments, match="_id must be at most 9223372036854775807"):
            store.page(TaskFilter(), **cursor)
    with pytest.raises(InvalidTaskArguments, match="before_id must be at most 9223372036854775807"):
        store.list(before_id=BIG)
    assert statements == []


# -- argument search -------------------------------------------------------------------------------------


@pytest.fixture
def searched(store: Store) -> dict[str, int]:
    made = {
        "cafe_arg": store.enqueue("taskq.echo", ["un café noir"]).id,
        "the_kwarg": store.enqueue("taskq.echo", [], {"drink": "thé vert"}).id,
        "emoji": store.enqueue("taskq.echo", ["ok 😀 done"]).id,
        "quoted": store.enqueue("taskq.echo", ['he said "hi"', {"k": 'a "b"'}]).id,
        "backslash": store.enqueue("taskq.echo", ["C:\\temp"]).id,
        "percent": store.enqueue("taskq.echo", ["100% sure"]).id,
        "underscore": store.enqueue("taskq.echo", ["snake_case"]).id,
        "plain": store.enqueue("taskq.echo", ["cafe", "100 percent", "snakeXcase"]).id,
    }
    return made


def found(store: Store, term: str) -> set[int]:
    where = TaskFilter(args_contains=term)
    ids = {task.id for task in store.page(where, limit=100).tasks}
    assert {task.id for task in store.summaries(where, limit=100).tasks} == ids
    assert store.count(where) == len(ids)
    return ids


def test_argument_search_finds_non_ascii_words(store: Store, searched: dict[str, int]) -> None:
    assert found(store, "café") == {searched["cafe_arg"]}
    assert found(store, "thé") == {searched["the_kwarg"]}
    assert found(store, "😀") == {searched["emoji"]}
    assert found(store, "cafe") == {searched["plain"]}


def test_argument_search_takes_backslashes_quotes_and_wildcards_literally(
    store: Store, searched: dict[str, int]
) -> None:
    assert found(store, "\\") == {searched["backslash"]}  # not every escaped quote
    assert found(store, "C:\\temp") == {searched["backslash"]}
    assert found(store, '"hi"') == {searched["quoted"]}
    assert found(store, '"') == {searched["quoted"]}  # a quote in a value, not the JSON's own quotes
    assert found(store, "%") == {searched["percent"]}
    assert found(store, "_") == {searched["underscore"]}
    assert found(store, "e_c") == {searched["underscore"]}
