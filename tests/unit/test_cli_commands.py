"""The `taskq` commands in this process through click's CliRunner, against a real SQLite file: what each
prints, its exit code, and that bad input is one line that writes nothing. (tests/process/test_cli.py runs the
command as a real subprocess for what only a process shows: imports from the working directory, run.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import taskq
from taskq.cli import main

Invoke = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path, sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    url = sqlite_db
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--db", url, *args], catch_exceptions=False)

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def stored(cli: Invoke) -> taskq.Store:
    return taskq.open_store(cli.url)  # type: ignore[attr-defined]


def test_enqueue_prints_the_id_and_json_says_deduplicated(cli: Invoke) -> None:
    first = cli("enqueue", "taskq.echo", "--args", "[1, 2]", "--kwargs", '{"a": 1}', "--dedup-key", "k")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip().isdigit()
    again = cli("enqueue", "taskq.echo", "--dedup-key", "k", "--json")
    assert json.loads(again.stdout) == {"id": int(first.stdout), "deduplicated": True}


def test_enqueue_options_reach_the_row(cli: Invoke) -> None:
    result = cli(
        "enqueue", "taskq.echo", "--priority", "7", "--delay", "1h", "--max-retries", "5", "--queue", "slow",
        "--timeout", "12",
    )  # fmt: skip
    task = stored(cli).require(int(result.stdout))
    assert (task.priority, task.max_retries, task.queue, task.timeout) == (7, 5, "slow", 12.0)
    assert (task.run_after - task.created_at).total_seconds() == pytest.approx(3600, abs=1)
    at = cli("enqueue", "taskq.echo", "--run-after", "2030-01-01T12:00:00+02:00")
    assert stored(cli).require(int(at.stdout)).run_after.isoformat() == "2030-01-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "taskq.echo", "--args", "[1,"], "not valid JSON"),
        (["enqueue", "taskq.echo", "--args", '{"a": 1}'], "args must be a JSON array (a list), got dict"),
        (["enqueue", "taskq.echo", "--kwargs", "[1]"], "kwargs must be a JSON object (a mapping), got list"),
        (["enqueue", "no.such.task"], "unknown task 'no.such.task'"),
        (["enqueue", "taskq.echo", "--delay", "soon"], "invalid duration"),
        (["enqueue", "taskq.echo", "--run-after", "tomorrow"], "invalid ISO 8601"),
        (["show", "999"], "no task with id 999"),
        (["cancel", "999"], "no task with id 999"),
        (["retry", "999"], "no task with id 999"),
        (["purge", "--older-than", "7 parsecs"], "invalid duration"),
        (["list", "--status", "bogus"], "Invalid value"),
    ],
)
def test_bad_input_is_one_clear_line_non_zero_and_writes_nothing(cli: Invoke, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    # One error line (click's usage errors add the usage and a --help hint above it), never a traceback.
    assert next(line for line in result.stderr.splitlines() if message in line).startswith("Error: ")
    assert "Traceback" not in result.stderr
    assert sum(stored(cli).stats().values()) == 0


def test_show_list_stats_cancel_retry_purge(cli: Invoke) -> None:
    task_id = cli("enqueue", "taskq.echo", "--args", '["<hello>"]').stdout.strip()
    shown = json.loads(cli("show", task_id, "--json").stdout)
    assert shown["args"] == ["<hello>"] and shown["status"] == "pending"
    assert "taskq.echo" in cli("show", task_id).stdout
    listed = json.loads(cli("list", "--status", "pending", "--json").stdout)
    assert [t["id"] for t in listed] == [int(task_id)]
    assert "taskq.echo" in cli("list").stdout
    assert json.loads(cli("stats", "--json").stdout) == {
        "pending": 1,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert "pending" in cli("stats").stdout
    assert cli("cancel", task_id).exit_code == 0
    again = cli("cancel", task_id)
    assert again.exit_code == 1 and "already cancelled" in again.stderr
    assert cli("retry", task_id).exit_code == 0
    assert json.loads(cli("show", task_id, "--json").stdout)["status"] == "pending"
    not_retryable = cli("retry", task_id)
    assert not_retryable.exit_code == 1 and "only failed or cancelled" in not_retryable.stderr
    cli("cancel", task_id)
    assert cli("purge", "--older-than", "1h").stdout.strip() == "purged 0 tasks"
    assert cli("purge", "--older-than", "0s").stdout.strip() == "purged 1 tasks"


def test_wait_exit_codes(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("taskq.cli.WAIT_POLL_SECONDS", 0.02)  # the timeout below is waited out, in these steps
    store = stored(cli)
    done = store.enqueue("taskq.echo").id
    store.claim("w")
    store.complete(done, 1, worker_id="w")
    assert cli("wait", str(done)).exit_code == 0
    cancelled = store.enqueue("taskq.echo").id
    store.cancel(cancelled)
    assert cli("wait", str(cancelled)).exit_code == 1
    pending = store.enqueue("taskq.echo").id
    assert cli("wait", str(pending), "--timeout", "0.1").exit_code == 2


def test_db_upgrade_creates_the_schema_on_an_empty_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "fresh.db"
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{database}", "db", "upgrade"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "revision" in result.stdout and database.exists()
    again = CliRunner().invoke(main, ["db", "upgrade", "--db", f"sqlite:///{database}"], catch_exceptions=False)
    assert again.exit_code == 0
