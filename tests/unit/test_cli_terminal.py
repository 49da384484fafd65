"""What people see in a terminal: one line per task at 80 columns, human values, large fields clipped."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from taskq.cli import main
from taskq.store import Store


def invoke(url: str, *args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(main, ["--db", url, *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def finish(store: Store, task_id: int, result: object) -> None:
    claimed = store.claim("w")
    assert claimed is not None and claimed.id == task_id
    store.complete(task_id, result, worker_id="w")


def test_list_is_one_line_per_task_within_80_columns(db) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    names = ["billing.charge", "reports.monthly_revenue_by_customer_segment_and_region", "taskq.echo"]
    ids = [store.enqueue(name, [n], queue="very-long-queue-name", dedup_key=f"k{n}").id for n, name in enumerate(names)]
    store.cancel(ids[0])
    lines = invoke(url, "list").rstrip("\n").splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    body = lines[2:]  # header and rule
    assert len(body) == len(names)
    assert body[0].split()[0] == str(ids[2])  # newest first
    assert "billing.charge" in body[2] and "cancelled" in body[2]  # never folded ("billin/g.char/ge")
    assert "reports.monthly_revenue" in body[1] and "…" in body[1]  # clipped with an ellipsis
    wide = invoke(url, "list", columns=160).splitlines()
    assert "queue" in wide[0] and "queue" not in lines[0]  # low-value columns return when there is room


def test_show_prints_human_values_and_seconds(db) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    task_id = store.enqueue("taskq.echo", ["a"]).id
    out = invoke(url, "show", str(task_id))
    assert "None" not in out and "False" not in out
    created = store.require(task_id).created_at
    assert f"{created:%Y-%m-%d %H:%M:%S} UTC" in out and f"{created:%H:%M:%S}." not in out
    assert "attempts" in out and "0 of 4" in out


def test_show_clips_a_10_mb_result_and_returns_within_a_second(db) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    task_id = store.enqueue("taskq.echo").id
    finish(store, task_id, {"blob": "x" * 10_000_000})
    started = time.perf_counter()
    out = invoke(url, "show", str(task_id))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"taskq show took {elapsed:.2f} s"
    assert len(out) < 5_000 and "9.5 MB in all" in out and "--full prints everything" in out
    full = invoke(url, "show", str(task_id), "--full")
    assert full.count("x") >= 10_000_000


def test_show_clips_a_long_traceback_to_its_end(db) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    task_id = store.enqueue("taskq.echo", max_retries=0).id
    store.claim("w")
    store.fail(task_id, "\n".join(f"frame {n}" for n in range(100)) + "\nValueError: the real reason", worker_id="w")
    out = invoke(url, "show", str(task_id))
    assert "ValueError: the real reason" in out and "frame 99" in out and "frame 3\n" not in out
    assert "last 25 of 101 lines" in out


def test_list_json_leaves_out_large_fields_unless_full(db) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    task_id = store.enqueue("taskq.echo", ["small"]).id
    finish(store, task_id, "y" * 1_000_000)
    light = json.loads(invoke(url, "list", "--json"))
    assert light[0]["id"] == task_id and light[0]["status"] == "completed"
    assert not {"args", "kwargs", "result", "error", "error_log"} & light[0].keys()
    full = json.loads(invoke(url, "list", "--json", "--full"))
    assert full[0]["result"] == "y" * 1_000_000 and full[0]["args"] == ["small"]


def test_wait_without_a_worker_says_one_is_needed(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("taskq.cli.NO_WORKER_HINT_SECONDS", 0.1)  # the hint's 2 s, shortened: 0.7 s here, not 6
    monkeypatch.setattr("taskq.cli.WAIT_POLL_SECONDS", 0.02)
    url, store = db
    task_id = store.enqueue("taskq.echo").id
    result = CliRunner().invoke(main, ["--db", url, "wait", str(task_id), "--timeout", "0.5"])
    assert result.exit_code == 2
    assert "no live worker: start one with `taskq worker`" in result.output
    store.register_worker("h:1:worker-1", hostname="h", pid=1, name="worker-1", queues=[])
    result = CliRunner().invoke(main, ["--db", url, "wait", str(task_id), "--timeout", "0.2"])
    assert result.exit_code == 2 and "no live worker" not in result.output
