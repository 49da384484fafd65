"""OpenTelemetry across real processes: this process enqueues under an in-memory SDK, a real pool's workers
run the tasks with an SDK their task module configures (tests/support/otel_tasks.py writes each span to a
file as it ends), and the two sides must make one trace. Without opentelemetry installed at all, nothing
is recorded and nothing breaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from otel_kit import hex_id, in_memory_tracing, read_spans
from poolkit import REPO, PoolProcess, wait_for

from taskq.model import Status
from taskq.store import Store


def start_pool(
    directory: Path, url: str, pools: list[PoolProcess], spans: Path, *args: str, batched: bool = False
) -> PoolProcess:
    with pytest.MonkeyPatch.context() as patch:  # PoolProcess passes os.environ on to the pool
        patch.setenv("TASKQ_TEST_SPANS", str(spans))
        if batched:
            patch.setenv("TASKQ_TEST_SPANS_BATCHED", "1")
        pool = PoolProcess(directory, url, "--import", "otel_tasks", *(args or ("--workers", "2")))
    pools.append(pool)
    return pool


def completed(store: Store, task_id: int) -> bool:
    return store.require(task_id).status is Status.COMPLETED


def spans_named(directory: Path, name: str, task_id: int | None = None) -> list[dict[str, Any]]:
    return [
        span
        for span in read_spans(directory)
        if span["name"] == name and (task_id is None or span["attributes"].get("messaging.message.id") == str(task_id))
    ]


def test_the_enqueue_and_its_run_in_a_worker_share_a_trace(tmp_path: Path, db, pools) -> None:
    url, store = db
    spans = tmp_path / "spans"
    spans.mkdir()
    start_pool(tmp_path, url, pools, spans)
    with in_memory_tracing() as exporter:
        from opentelemetry import trace

        with trace.get_tracer("test").start_as_current_span("request"):
            task_id = store.enqueue("otel.echo", ["hello"]).id
        [send] = [span for span in exporter.get_finished_spans() if span.name == "send default"]
    wait_for(lambda: completed(store, task_id), 30, what="the task to complete")
    [process] = wait_for(lambda: spans_named(spans, "process default", task_id), 10, what="the worker's span")
    assert process["kind"] == "CONSUMER"
    assert process["trace_id"] == hex_id(send.context.trace_id, 32)
    assert process["parent_id"] == hex_id(send.context.span_id)
    assert process["attributes"]["taskq.task.outcome"] == "completed"


def test_a_retried_task_second_run_links_to_the_first_context(tmp_path: Path, db, pools) -> None:
    url, store = db
    spans = tmp_path / "spans"
    spans.mkdir()
    start_pool(tmp_path, url, pools, spans)
    with in_memory_tracing() as exporter:
        task_id = store.enqueue("otel.flaky").id
        [send] = [span for span in exporter.get_finished_spans() if span.name == "send default"]
    wait_for(lambda: completed(store, task_id), 30, what="the retried task to complete")
    runs = wait_for(lambda: len(spans_named(spans, "process default", task_id)) == 2, 10, what="two runs' spans")
    runs = spans_named(spans, "process default", task_id)
    first, second = sorted(runs, key=lambda span: span["attributes"]["taskq.task.attempt"])
    trace_id, span_id = hex_id(send.context.trace_id, 32), hex_id(send.context.span_id)
    assert (first["trace_id"], first["parent_id"]) == (trace_id, span_id)
    assert first["status"] == "ERROR"
    assert [event["attributes"]["exception.type"] for event in first["events"]] == ["ValueError"]
    assert second["attributes"]["taskq.task.attempt"] == 2
    assert second["parent_id"] is None and second["trace_id"] != trace_id
    assert second["links"] == [{"trace_id": trace_id, "span_id": span_id, "attributes": {"taskq.link.reason": "retry"}}]


def test_a_fan_out_children_and_continuation_are_linked_to_the_parent(tmp_path: Path, db, pools) -> None:
    url, store = db
    spans = tmp_path / "spans"
    spans.mkdir()
    start_pool(tmp_path, url, pools, spans)
    with in_memory_tracing() as exporter:
        parent_id = store.enqueue("otel.fan_out", [3]).id
        [send] = [span for span in exporter.get_finished_spans() if span.name == "send default"]
    trace_id = hex_id(send.context.trace_id, 32)
    summary = wait_for(lambda: store.list(name="otel.summary"), 30, what="the continuation")[0]
    wait_for(lambda: completed(store, summary.id), 30, what="the continuation to complete")
    [parent_run] = wait_for(lambda: spans_named(spans, "process default", parent_id), 10)
    assert (parent_run["trace_id"], parent_run["parent_id"]) == (trace_id, hex_id(send.context.span_id))
    # The children's enqueue ran inside the parent's run: its PRODUCER span is the parent run's child.
    [children_send] = [span for span in read_spans(spans) if span["kind"] == "PRODUCER"]
    assert (children_send["trace_id"], children_send["parent_id"]) == (trace_id, parent_run["span_id"])
    children = [span for span in read_spans(spans) if span["attributes"].get("taskq.task.name") == "otel.child"]
    children = [span for span in children if span["kind"] == "CONSUMER"]
    assert len(children) == 3
    assert {(span["trace_id"], span["parent_id"]) for span in children} == {(trace_id, children_send["span_id"])}
    # The continuation, enqueued by the last child's worker or the supervisor, links to the parent's context.
    [summary_run] = wait_for(lambda: spans_named(spans, "process default", summary.id), 10)
    assert summary_run["parent_id"] is None
    assert summary_run["links"] == [
        {
            "trace_id": trace_id,
            "span_id": hex_id(send.context.span_id),
            "attributes": {"taskq.link.reason": "continuation"},
        }
    ]


def test_coroutines_running_together_each_keep_their_own_trace(tmp_path: Path, db, pools) -> None:
    """One worker, four async tasks on its loop at once: each run is the child of its own enqueue, and what
    it enqueues from inside is in its own trace, never a neighbour's (contexts are per coroutine)."""
    url, store = db
    spans = tmp_path / "spans"
    spans.mkdir()
    start_pool(tmp_path, url, pools, spans, "--workers", "1", "--concurrency", "4")
    sends: dict[int, Any] = {}
    with in_memory_tracing() as exporter:
        from opentelemetry import trace

        for _ in range(4):
            with trace.get_tracer("test").start_as_current_span("request"):
                task_id = store.enqueue("otel.nap", [0.3]).id
            sends[task_id] = [span for span in exporter.get_finished_spans() if span.name == "send default"][-1]
    for task_id in sends:
        wait_for(lambda task_id=task_id: completed(store, task_id), 30, what=f"nap {task_id} to complete")
    runs = {task_id: spans_named(spans, "process default", task_id) for task_id in sends}
    assert all(len(found) == 1 for found in runs.values()), runs
    started = sorted(store.require(task_id).started_at for task_id in sends)  # type: ignore[type-var]
    assert (started[-1] - started[0]).total_seconds() < 0.3  # they did overlap on the loop
    producers = {
        span["attributes"]["messaging.message.id"]: span for span in read_spans(spans) if span["kind"] == "PRODUCER"
    }
    for task_id, send in sends.items():
        [run] = runs[task_id]
        assert (run["trace_id"], run["parent_id"]) == (hex_id(send.context.trace_id, 32), hex_id(send.context.span_id))
        follow_up = str(store.require(task_id).result)
        assert store.require(int(follow_up)).name == "otel.echo"
        assert (producers[follow_up]["trace_id"], producers[follow_up]["parent_id"]) == (
            run["trace_id"],
            run["span_id"],
        )


def test_a_worker_exports_its_buffered_spans_when_it_exits(tmp_path: Path, db, pools) -> None:
    """Workers forked by the fork server leave with os._exit, which skips the SDK's atexit export: a
    BatchSpanProcessor's spans would be lost at every graceful stop without taskq's flush."""
    url, store = db
    spans = tmp_path / "spans"
    spans.mkdir()
    pool = start_pool(tmp_path, url, pools, spans, batched=True)
    pool.wait_ready(2)
    task_id = store.enqueue("otel.echo", ["buffered"]).id
    wait_for(lambda: completed(store, task_id), 30, what="the task to complete")
    assert spans_named(spans, "process default", task_id) == []  # still buffered in the worker
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    assert len(spans_named(spans, "process default", task_id)) == 1


BLOCK_OPENTELEMETRY = """
import sys

sys.modules["opentelemetry"] = None  # as if not installed: `import opentelemetry...` raises ImportError
"""


def test_without_opentelemetry_installed_nothing_is_recorded_and_nothing_breaks(
    tmp_path: Path, db, pools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process (this test's enqueuing subprocess, the supervisor, the fork server, the workers) starts
    with a sitecustomize that makes opentelemetry unimportable."""
    url, store = db
    blocker = tmp_path / "no_otel"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_OPENTELEMETRY)
    path = os.pathsep.join([str(blocker), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    pool = PoolProcess(tmp_path, url, "--workers", "1")
    pools.append(pool)
    enqueue = textwrap.dedent(
        f"""
        import taskq
        from taskq import tracing

        assert not tracing.AVAILABLE and not tracing.on() and not tracing.metrics_on()
        store = taskq.open_store({url!r})
        print(store.enqueue("taskq.echo", ["plain"]).id, store.enqueue_many([{{"name": "taskq.echo"}}])[0].id)
        """
    )
    done = subprocess.run([sys.executable, "-c", enqueue], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ids = [int(value) for value in done.stdout.split()]
    for task_id in ids:
        wait_for(lambda task_id=task_id: completed(store, task_id), 30, what=f"task {task_id} to complete")
        assert store.require(task_id).trace_context is None
    probe = subprocess.run(
        [sys.executable, "-c", "import opentelemetry"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr  # the blocker was in force
    assert "Traceback" not in pool.log()
