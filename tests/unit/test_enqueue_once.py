"""One validation of an enqueue request on one object, from each door to the INSERT (a real SQLite file):
the CLI and the Python API check a request once, the store takes a parsed request as it is and checks
only its call against the task's signature, and the signature check remembers the call shapes that bound."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import taskq
from taskq import registry, requests
from taskq.cli import main
from taskq.model import InvalidTaskArguments, TaskRequest
from taskq.requests import parse_request
from taskq.store import Store

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the requests validated: every validation ends by making its CheckedRequest."""
    made: list[str] = []
    make = requests._new_checked

    def counting(fields: tuple[Any, ...]) -> Any:
        made.append(fields[0])
        return make(fields)

    monkeypatch.setattr(requests, "_new_checked", counting)
    return made


@pytest.fixture
def needs_two(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))

    @taskq.task(name="once.needs_two")
    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    return add.name


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = taskq.open_store(f"sqlite:///{tmp_path / 'once.db'}")
    yield opened
    opened.dispose()


def test_the_cli_checks_a_request_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]) -> None:
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(main, ["--db", url, "enqueue", "taskq.echo", "--args", "[1]"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert checks == ["taskq.echo"]
    store = taskq.open_store(url)
    assert store.require(int(result.stdout)).args == [1]
    store.dispose()


def test_the_python_api_checks_each_request_once(store: Store, checks: list[str]) -> None:
    store.enqueue("taskq.echo", [1])
    store.enqueue("taskq.echo", [2], dedup_key="k")  # the Core path
    store.enqueue_many([TaskRequest("taskq.echo", [3]), {"name": "taskq.echo", "args": [4]}])
    assert checks == ["taskq.echo"] * 4


def test_a_parsed_request_is_not_checked_again_but_its_call_is(store: Store, needs_two: str, checks: list[str]) -> None:
    parsed = parse_request({"name": needs_two, "args": [1]}, now=NOW)  # the CLI parses before importing tasks
    with pytest.raises(InvalidTaskArguments, match=r"once.needs_two.*missing a required argument: 'b'"):
        store.enqueue_many([parsed])
    assert checks == [needs_two]


def test_a_parsed_delay_counts_from_the_enqueue(store: Store) -> None:
    parsed = parse_request({"name": "taskq.echo", "delay": "1m"}, now=NOW - timedelta(days=1))
    task = store.require(store.enqueue_many([parsed], now=NOW)[0].id)
    assert (task.created_at, task.run_after) == (NOW, NOW + timedelta(minutes=1))


def test_the_signature_check_remembers_only_calls_that_bound(store: Store, needs_two: str) -> None:
    for _ in range(2):  # the second time from the remembered shapes
        assert store.enqueue(needs_two, [1, 2]).id
        assert store.enqueue(needs_two, [1], {"b": 2, "scale": 3}).id
        with pytest.raises(InvalidTaskArguments, match="too many positional arguments"):
            store.enqueue(needs_two, [1, 2, 3])
        with pytest.raises(InvalidTaskArguments, match="unexpected keyword argument 'c'"):
            store.enqueue(needs_two, [1, 2], {"c": 1})
        with pytest.raises(InvalidTaskArguments, match="missing a required argument: 'b'"):
            store.enqueue(needs_two, [], {"a": 1})
