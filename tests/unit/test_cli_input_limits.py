"""The command line at the edges, through click's CliRunner on a real SQLite file: a
blank --name or --queue never widens a bulk action, out-of-range input is one readable line naming the field
and a non-zero exit, and `taskq list` gives summaries, not 50 MB results."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from taskq.cli import main
from taskq.model import Status
from taskq.store import Store

BIG = 2**63


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, *args], env={"COLUMNS": "120"})
    return result.exit_code, result.output


def failed_task(store: Store, queue: str = "default") -> int:
    task_id = store.enqueue("taskq.echo", queue=queue, max_retries=0).id
    assert store.claim("w", [queue]) is not None
    store.fail(task_id, "ValueError: boom", worker_id="w")
    return task_id


@pytest.mark.parametrize(
    "args",
    [
        ("retry", "--all", "--name", ""),
        ("retry", "--all", "--queue", "   "),
        ("cancel", "--all", "--queue", " "),
        ("cancel", "--all", "--name", ""),
        ("list", "--queue", " "),
    ],
)
def test_a_blank_name_or_queue_is_an_error_and_changes_nothing(db: tuple[str, Store], args: tuple[str, ...]) -> None:
    url, store = db
    failed = [failed_task(store, "mail") for _ in range(2)]
    pending = [store.enqueue("taskq.echo", queue="mail").id for _ in range(2)]
    code, out = run(url, *args, "--yes") if args[0] != "list" else run(url, *args)
    assert code == 2, out
    assert "is blank: leave it out to match every task" in out and f"--{args[-2].lstrip('-')}" in out
    assert [store.require(i).status for i in failed] == [Status.FAILED] * 2
    assert [store.require(i).status for i in pending] == [Status.PENDING] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enqueue", "taskq.echo", "--priority", str(2**31)), "priority must be between -2147483648 and 2147483647"),
        (("enqueue", "taskq.echo", "--max-retries", str(2**31)), "max_retries must be between 0 and 2147483647"),
        (("enqueue", "taskq.echo", "--queue", "q" * 101), "queue must be at most 100 characters, got 101"),
        (("enqueue", "taskq.echo", "--dedup-key", "k" * 501), "dedup_key must be at most 500 characters"),
        (("enqueue", "n" * 201), "name must be at most 200 characters, got 201"),
        (("enqueue", "taskq.echo", "--delay", "nan"), "delay: duration must be a finite number: 'nan'"),
        (("enqueue", "taskq.echo", "--timeout", "inf"), "timeout: duration must be a finite number: 'inf'"),
        (("enqueue", "taskq.echo", "--run-after", "9999-12-31T23:00:00-05:00"), "run_after '9999-12-31T23:00"),
    ],
)
def test_enqueue_input_past_the_strictest_dialect_is_one_line_naming_the_field(
    db: tuple[str, Store], args: tuple[str, ...], message: str
) -> None:
    url, store = db
    code, out = run(url, *args)
    assert code == 1, out
    assert out.startswith("Error: ") and message in out and out.count("\n") == 1
    assert store.stats()["pending"] == 0


@pytest.mark.parametrize(
    "args",
    [("show", str(BIG)), ("cancel", str(BIG)), ("retry", str(BIG)), ("wait", str(BIG)), ("list", "--parent", str(BIG))],
)
def test_ids_past_bigint_are_a_usage_error(db: tuple[str, Store], args: tuple[str, ...]) -> None:
    url, _store = db
    code, out = run(url, *args)
    assert code == 2, out
    assert f"{BIG} is not in the range 1<=x<=9223372036854775807" in out
    assert "Traceback" not in out and "OverflowError" not in out


def test_list_json_gives_sizes_and_the_error_headline_not_the_values(db: tuple[str, Store]) -> None:
    url, store = db
    task_id = store.enqueue("taskq.echo", ["a"]).id
    assert store.claim("w") is not None
    store.complete(task_id, "x" * 2_000_000, worker_id="w")
    failed = failed_task(store)
    code, out = run(url, "list", "--json")
    assert code == 0
    assert len(out) < 5_000
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows[task_id]["result_size"] == 2_000_002 and rows[task_id]["args_size"] == len('["a"]')
    assert rows[failed]["error_line"] == "ValueError: boom"
    assert "result" not in rows[task_id] and "error" not in rows[failed]
    code, out = run(url, "list", "--json", "--full")
    assert code == 0 and len(out) > 2_000_000
    assert {row["id"]: row for row in json.loads(out)}[task_id]["result"] == "x" * 2_000_000
    code, out = run(url, "list")
    assert code == 0 and f"{task_id} " in out and "xxxx" not in out
