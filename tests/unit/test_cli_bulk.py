"""taskq workers / tasks / queues and bulk retry/cancel, through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskq import cli as cli_module
from taskq import registry
from taskq.cli import main
from taskq.model import Status, TaskFilter
from taskq.store import Store


@pytest.fixture
def sqlite_store(db: tuple[str, Store], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Store]:
    monkeypatch.setattr("taskq.store.facade.BULK_BATCH", 3)  # several batches even for a handful of tasks
    return db


def run(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, *args], input=input, env={"COLUMNS": "120"})
    return result.exit_code, result.output


def failed_task(store: Store, name: str = "taskq.echo", **options: object) -> int:
    task_id = store.enqueue(name, max_retries=0, **options).id  # type: ignore[arg-type]
    claimed = store.claim("w", [str(options.get("queue", "default"))])
    assert claimed is not None and claimed.id == task_id
    store.fail(task_id, "ValueError: boom", worker_id="w")
    return task_id


def test_retry_all_moves_matching_failed_tasks_in_batches_and_reports_the_count(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    mail = [failed_task(store, queue="mail") for _ in range(7)]
    other = failed_task(store, queue="reports")
    single = failed_task(store, queue="mail-single")
    code, out = run(url, "retry", "--all", "--queue", "mail")
    assert code == 0 and out.strip() == "retried 7 tasks"
    assert all(store.require(task_id).status is Status.PENDING for task_id in mail)
    assert store.require(other).status is Status.FAILED
    # The bulk reset is the single retry's reset, field by field.
    store.retry(single)
    bulk_row, single_row = store.require(mail[0]).to_dict(), store.require(single).to_dict()
    for key in ("id", "queue", "run_after", "created_at", "error_log", "error"):
        bulk_row.pop(key), single_row.pop(key)
    assert bulk_row == single_row
    assert run(url, "retry", "--all", "--queue", "mail") == (0, "no failed tasks match; nothing to retry\n")


def test_retry_all_skips_a_task_whose_dedup_key_is_held_by_an_active_one(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    held = failed_task(store, dedup_key="k1")
    free = [failed_task(store, dedup_key=f"free{n}") for n in range(4)]
    store.enqueue("taskq.echo", dedup_key="k1")  # active again under the same key
    code, out = run(url, "retry", "--all")
    assert code == 0 and out.strip() == "retried 4 tasks (1 skipped: changed meanwhile or dedup key held)"
    assert store.require(held).status is Status.FAILED
    assert all(store.require(task_id).status is Status.PENDING for task_id in free)


def test_cancel_all_defaults_to_pending_and_filters_by_name(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    echoes = [store.enqueue("taskq.echo").id for _ in range(5)]
    sleeper = store.enqueue("taskq.sleep").id
    running = store.enqueue("taskq.echo", priority=9).id
    assert store.claim("w").id == running  # type: ignore[union-attr]
    code, out = run(url, "cancel", "--all", "--name", "taskq.echo")
    assert code == 0 and out.strip() == "cancelled 5 tasks"
    assert all(store.require(task_id).status is Status.CANCELLED for task_id in echoes)
    assert store.require(sleeper).status is Status.PENDING
    assert store.require(running).status is Status.RUNNING and not store.require(running).cancel_requested
    code, out = run(url, "cancel", "--all", "--status", "running")
    assert code == 0 and out.strip() == "cancelled 1 tasks" and store.require(running).cancel_requested


def test_bulk_actions_confirm_on_a_terminal(sqlite_store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    ids = [failed_task(store) for _ in range(2)]
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    code, out = run(url, "retry", "--all", input="n\n")
    assert code == 1 and "Retry 2 failed tasks? [y/N]" in out and "Aborted" in out
    assert all(store.require(task_id).status is Status.FAILED for task_id in ids)
    code, out = run(url, "retry", "--all", input="y\n")
    assert code == 0 and "retried 2 tasks" in out
    assert run(url, "cancel", "--all", "--yes")[1].strip() == "cancelled 2 tasks"  # --yes: no question


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retry"], "give a task ID, or --all"),
        (["retry", "1", "--all"], "not both"),
        (["cancel", "1", "--queue", "q"], "--status, --name and --queue filter --all"),
        (["retry", "1", "--status", "cancelled"], "a task ID needs no filter"),
        (["retry", "--all", "--status", "pending"], "Invalid value for '--status'"),
    ],
)
def test_bulk_usage_errors_are_one_line(sqlite_store, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    url, _ = sqlite_store
    code, out = run(url, *args)
    assert code == 2 and message in out and "Traceback" not in out


def test_bulk_actions_leave_tasks_alone_that_the_single_ones_refuse(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    _, store = sqlite_store
    done = store.enqueue("taskq.echo").id
    store.claim("w")
    store.complete(done, 1, worker_id="w")
    failed = failed_task(store)
    assert store.bulk_retry(where=TaskFilter(status=Status.COMPLETED)).changed == 0
    assert store.bulk_cancel(where=TaskFilter(status=Status.FAILED)).changed == 0
    assert store.require(done).status is Status.COMPLETED and store.require(failed).status is Status.FAILED


def test_queues_counts_per_queue_and_status(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    store.enqueue("taskq.echo", queue="mail")
    store.enqueue("taskq.echo", queue="mail", delay=3600)
    failed_task(store, queue="reports")
    code, out = run(url, "queues", "--json")
    counts = json.loads(out)
    assert code == 0 and list(counts) == ["mail", "reports"]
    assert (counts["mail"]["pending"], counts["mail"]["delayed"], counts["mail"]["failed"]) == (2, 1, 0)
    assert (counts["reports"]["failed"], counts["reports"]["pending"]) == (1, 0)
    code, table = run(url, "queues")
    assert code == 0 and "mail" in table and "(delayed)" in table


def test_workers_lists_live_workers_with_their_current_task(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    url, store = sqlite_store
    task_id = store.enqueue("taskq.sleep").id
    store.register_worker("h1:10:worker-1", hostname="h1", pid=10, name="worker-1", queues=["mail"])
    store.heartbeat_worker("h1:10:worker-1", current_task_id=task_id, tasks_done=41)
    code, out = run(url, "workers")
    assert code == 0
    row = next(line for line in out.splitlines() if "worker-1" in line)
    assert "h1" in row and "mail" in row and f"{task_id} taskq.sleep" in row and "41" in row
    listed = json.loads(run(url, "workers", "--json")[1])
    assert [(w["id"], w["current_task_id"], w["tasks_done"]) for w in listed] == [("h1:10:worker-1", task_id, 41)]
    store.unregister_worker("h1:10:worker-1")
    assert "no live workers" in run(url, "workers")[1]


def test_tasks_lists_registered_tasks_with_their_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process: the working directory goes on sys.path and PYTHONPATH, and the app's task into the registry;
    # restore all three afterwards (a capped app.resize left registered would cap every later claim).
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.chdir(tmp_path)
    module = tmp_path / "bulk_app_tasks.py"
    module.write_text(
        "import taskq\n\n"
        "@taskq.task(name='app.resize', queue='images', priority=5, max_retries=1, timeout=30, then='app.done',"
        " max_concurrency=3)\n"
        "def resize(ctx, path: str, width: int = 640) -> dict:\n    return {}\n"
    )
    result = CliRunner().invoke(
        main,
        ["--db", f"sqlite:///{tmp_path / 't.db'}", "--import", "bulk_app_tasks", "tasks", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    spec = next(item for item in json.loads(result.output) if item["name"] == "app.resize")
    assert spec == {
        "name": "app.resize",
        "signature": "(path: str, width: int = 640)",
        "queue": "images",
        "priority": 5,
        "max_retries": 1,
        "timeout": 30,
        "max_concurrency": 3,
        "then": "app.done",
        "takes_context": True,
    }
    assert any(item["name"] == "taskq.sleep" for item in json.loads(result.output))
