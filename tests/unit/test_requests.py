"""One validation of an enqueue request (taskq/requests.py), as the store, the CLI, the web API and the
scheduler use it. No database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskq.model import InvalidTaskArguments, TaskRequest
from taskq.requests import check as check_request
from taskq.requests import check_options, parse_request

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def check(**fields: Any) -> datetime:
    return check_request(TaskRequest(**{"name": "t", **fields}), NOW).run_at(NOW)


def test_a_plain_request_runs_now_and_delay_or_run_after_move_it() -> None:
    assert check() == NOW
    assert check(delay=90) == NOW + timedelta(seconds=90)
    assert check(delay=timedelta(minutes=5)) == NOW + timedelta(minutes=5)
    assert check(run_after=NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name must be a non-empty string, got ''"),
        ({"name": 3}, "name must be a non-empty string, got 3"),
        ({"name": "a\x00b"}, "name must not contain a NUL character"),
        ({"queue": "q\x00"}, "queue must not contain a NUL character"),
        ({"dedup_key": "k\x00"}, "dedup_key must not contain a NUL character"),
        ({"dedup_key": 5}, "dedup_key must be a string, got 5"),
        ({"queue": ""}, "queue must be a non-empty string, got ''"),
        ({"queue": 1}, "queue must be a non-empty string, got 1"),
        ({"args": "abc"}, "args must be a JSON array (a list), got str"),
        ({"args": {"a": 1}}, "args must be a JSON array (a list), got dict"),
        ({"kwargs": [1]}, "kwargs must be a JSON object (a mapping), got list"),
        ({"kwargs": {1: "x"}}, "kwargs keys must be strings, got 1"),
        ({"args": [math.nan]}, "args must be JSON-serialisable"),
        ({"kwargs": {"when": NOW}}, "kwargs must be JSON-serialisable"),
        ({"priority": "high"}, "priority must be a whole number, got 'high'"),
        ({"priority": True}, "priority must be a whole number, got True"),
        ({"priority": 1.5}, "priority must be a whole number, got 1.5"),
        ({"max_retries": -1}, "max_retries must be a whole number >= 0, got -1"),
        ({"max_retries": 1.5}, "max_retries must be a whole number >= 0, got 1.5"),
        ({"timeout": 0}, "timeout must be positive, got 0"),
        ({"timeout": math.nan}, "timeout must be positive, got nan"),
        ({"timeout": "30s"}, "timeout must be a number of seconds, got '30s'"),
        ({"delay": 5, "run_after": NOW}, "not both"),
        ({"delay": -1}, "delay must not be negative"),
        ({"delay": "5"}, "delay must be seconds or a timedelta"),
        ({"delay": 2e9}, "looks like a Unix timestamp"),
        ({"parent_id": "7"}, "parent_id must be a task id, got '7'"),
        # the limits of the strictest dialect (PostgreSQL's INTEGER and VARCHAR(n)), checked before any SQL
        ({"priority": 2**31}, "priority must be between -2147483648 and 2147483647, got 2147483648"),
        ({"priority": -(2**31) - 1}, "priority must be between -2147483648 and 2147483647"),
        ({"max_retries": 2**31}, "max_retries must be between 0 and 2147483647, got 2147483648"),
        ({"name": "n" * 201}, "name must be at most 200 characters, got 201"),
        ({"queue": "q" * 101}, "queue must be at most 100 characters, got 101"),
        ({"dedup_key": "k" * 501}, "dedup_key must be at most 500 characters, got 501"),
        ({"continuation": "c" * 201}, "continuation must be at most 200 characters, got 201"),
        ({"name": "a\ud800"}, "name must be valid Unicode: '\\ud800' at position 1 is a lone surrogate"),
        ({"queue": "\udc00"}, "queue must be valid Unicode"),
        ({"dedup_key": "\udfff"}, "dedup_key must be valid Unicode"),
        ({"delay": math.nan}, "delay must be a finite number of seconds, got nan"),
        ({"delay": math.inf}, "delay must be a finite number of seconds, got inf"),
        ({"run_after": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))}, "run_after 9999-12-31"),
        ({"run_after": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, "is out of range once converted"),
        ({"timeout": math.inf}, "timeout must be at most 315360000 seconds, got inf"),
        ({"parent_id": 2**63}, "parent_id must be a task id (1 to 9223372036854775807)"),
        ({"parent_id": 0}, "parent_id must be a task id (1 to 9223372036854775807), got 0"),
    ],
)
def test_check_request_refuses_each_bad_field_by_name(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskArguments) as raised:
        check(**fields)
    assert message in str(raised.value)


def test_the_signature_check_runs_last_and_only_when_given() -> None:
    calls: list[tuple[str, Any, Any]] = []

    def signature(name: str, args: Any, kwargs: Any) -> None:
        calls.append((name, args, kwargs))

    check_request(TaskRequest("t", [1]), NOW, signature)
    assert calls == [("t", [1], {})]
    with pytest.raises(InvalidTaskArguments, match="args must be"):
        check_request(TaskRequest("t", "x"), NOW, signature)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_task_options_share_the_rules() -> None:
    check_options(priority=-5, max_retries=0, queue="slow", timeout=0.5)
    with pytest.raises(InvalidTaskArguments, match="max_retries must be a whole number >= 0"):
        check_options(max_retries=-1)
    # @task's options meet the same limits of the strictest dialect as an enqueue's
    with pytest.raises(InvalidTaskArguments, match="priority must be between -2147483648 and 2147483647"):
        check_options(priority=2**31)
    with pytest.raises(InvalidTaskArguments, match="queue must be at most 100 characters, got 101"):
        check_options(queue="q" * 101)
    with pytest.raises(InvalidTaskArguments, match="timeout must be at most 315360000 seconds, got inf"):
        check_options(timeout=math.inf)


def test_parse_request_reads_text_durations_iso_times_and_refuses_unknown_fields() -> None:
    request = parse_request(
        {"name": "t", "args": [1], "kwargs": {"a": 1}, "delay": "1m30s", "timeout": "2m", "queue": "q"}, now=NOW
    )
    assert (request.args, request.kwargs, request.delay, request.timeout, request.queue) == (
        [1],
        {"a": 1},
        90.0,
        120.0,
        "q",
    )
    at = parse_request({"name": "t", "run_after": "2031-02-03T04:05:06+02:00"}, now=NOW).run_after
    assert at == datetime(2031, 2, 3, 2, 5, 6, tzinfo=UTC)
    assert parse_request({"name": "t", "timeout": 12}, now=NOW).timeout == 12.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "t", "prio": 1}, "unknown field 'prio' (known: args, dedup_key,"),
        ({"name": "t", "delay": "soon"}, "delay: invalid duration 'soon'"),
        ({"name": "t", "delay": "-3"}, "must not be negative"),
        ({"name": "t", "delay": [1]}, "delay must be seconds or a duration such as '30s', got [1]"),
        ({"name": "t", "run_after": "yesterday"}, "run_after: invalid ISO 8601 time 'yesterday'"),
        ({"name": "t", "run_after": 5}, "run_after must be an ISO 8601 string, got 5"),
        ({"name": "t", "delay": 1, "run_after": "2030-01-01T00:00:00"}, "not both"),
        ({"name": "t", "timeout": "0s"}, "timeout must be positive, got 0.0"),
        ({"name": "t", "args": None}, "args must be a JSON array (a list), got NoneType"),
        ({}, "name must be a non-empty string, got None"),
    ],
)
def test_parse_request_refuses_bad_raw_input(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTaskArguments) as raised:
        parse_request(fields, now=NOW)
    assert message in str(raised.value)


def test_parse_request_checks_the_call_when_asked() -> None:
    def refuse(name: str, args: Any, kwargs: Any) -> None:
        raise InvalidTaskArguments(f"task {name!r}: missing a required argument")

    with pytest.raises(InvalidTaskArguments, match="missing a required argument"):
        parse_request({"name": "t"}, now=NOW, check_arguments=refuse)
