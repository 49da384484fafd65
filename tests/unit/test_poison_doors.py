"""Arguments nested too deep, at the doors: every way in (the Python API, `taskq enqueue`, the `schedule:` entries;
POST /api/tasks is in tests/contract/test_web_poison.py) refuses arguments nested past the depth limit
with an error naming the field, however deep (before, a value ~970 deep passed: it was encoded in the
caller's shallow stack; 10,000 deep was a RecursionError). And the CLI shows a row that cannot be read back
(`taskq list`, `taskq show`) instead of failing on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from poison_rows import POISON_DEPTH, insert_raw, nested, nested_text

import taskq
from taskq.cli import main
from taskq.json_limits import MAX_JSON_DEPTH
from taskq.model import InvalidTaskArguments, Status
from taskq.requests import parse_request
from taskq.scheduler import parse_schedules
from taskq.settings import SettingsError, load_settings
from taskq.store import Store

TOO_DEEP = [MAX_JSON_DEPTH + 1, POISON_DEPTH, 10_000]


@pytest.mark.parametrize("depth", TOO_DEEP)
def test_the_python_api_refuses_arguments_too_deep_naming_the_field(sqlite_store: Store, depth: int) -> None:
    with pytest.raises(InvalidTaskArguments, match=f"^args is nested .*taskq keeps at most {MAX_JSON_DEPTH}"):
        sqlite_store.enqueue("taskq.echo", nested(depth))
    with pytest.raises(InvalidTaskArguments, match=r"^kwargs is nested"):
        sqlite_store.enqueue_many([{"name": "taskq.echo", "kwargs": {"tree": nested(depth)}}])
    assert sqlite_store.list() == []


def test_the_limit_itself_is_accepted_and_runs(sqlite_store: Store) -> None:
    task = sqlite_store.require(sqlite_store.enqueue("taskq.echo", nested(MAX_JSON_DEPTH)).id)
    assert task.args == nested(MAX_JSON_DEPTH) and task.unreadable is None


@pytest.mark.parametrize("depth", TOO_DEEP)
def test_raw_requests_and_schedules_refuse_it_naming_the_field(depth: int) -> None:
    with pytest.raises(InvalidTaskArguments, match=r"^args is nested"):
        parse_request({"name": "taskq.echo", "args": nested(depth)})
    valid, errors = parse_schedules({"deep": {"task": "taskq.echo", "every": "1h", "kwargs": {"k": nested(depth)}}})
    assert valid == [] and len(errors) == 1 and errors[0].startswith("schedule 'deep': kwargs is nested"), errors


@pytest.fixture
def cli(tmp_path: Path, sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, CliRunner]:
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return sqlite_db, CliRunner()


@pytest.mark.parametrize("depth", TOO_DEEP)
def test_taskq_enqueue_refuses_it_naming_the_option(cli: tuple[str, CliRunner], depth: int) -> None:
    url, runner = cli
    for option in ("--args", "--kwargs"):
        text = nested_text(depth) if option == "--args" else '{"k": ' + nested_text(depth) + "}"
        result = runner.invoke(main, ["--db", url, "enqueue", "taskq.echo", option, text])
        assert result.exit_code == 2, result.output
        field = option.lstrip("-")
        assert f"Invalid value for {option}: {field} is nested" in result.output
        assert f"taskq keeps at most {MAX_JSON_DEPTH}" in result.output


def test_taskq_list_and_show_show_a_poison_row(cli: tuple[str, CliRunner]) -> None:
    url, runner = cli
    store = taskq.open_store(url)
    try:
        poison = insert_raw(store, args=nested_text(POISON_DEPTH), result=nested_text(960), status="completed")
    finally:
        store.dispose()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--db", url, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert f"{poison} " in run("list") and Status.COMPLETED.value in run("list")
    listed = json.loads(run("list", "--json", "--full"))
    assert listed[0]["args"].startswith(f"<undecodable: nested {POISON_DEPTH} levels deep")
    assert listed[0]["result"].startswith("<undecodable: nested 960 levels deep")
    shown = run("show", str(poison))
    lines = {line.split()[0]: line.split(None, 1)[1].strip() for line in shown.splitlines() if line.strip()}
    assert lines["args"].startswith(f"<undecodable: nested {POISON_DEPTH} levels deep")  # a note, not a JSON string
    assert lines["result"].startswith("<undecodable: nested 960 levels deep")
    assert json.loads(run("show", str(poison), "--json"))["id"] == poison


def test_a_settings_file_nested_too_deep_for_yaml_is_a_settings_error(tmp_path: Path) -> None:
    # PyYAML composes nested nodes recursively: before, this was a RecursionError out of `taskq worker`.
    # As deep as the recursion limit is enough (each level takes a frame or more); PyYAML's scanner takes
    # time quadratic in the depth, so deeper only makes the test slower.
    path = tmp_path / "settings.yaml"
    depth = sys.getrecursionlimit()
    path.write_text("schedule:\n  deep: {task: taskq.echo, every: 1h, args: " + nested_text(depth) + "}\n")
    with pytest.raises(SettingsError, match=r"settings\.yaml: invalid YAML: nested too deeply to read"):
        load_settings(path)
