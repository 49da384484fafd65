"""OpenTelemetry in this process: span names and attributes, the stored context, parent or link, errors,
progress events, children and continuations, metrics. An in-memory SDK (tests/support/otel_kit.py) and a
real SQLite store; tasks run through the executor as a worker runs them (the pool tests prove the same
across processes, tests/process/test_tracing_pool.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otel_kit import in_memory_tracing

import taskq
from taskq import tracing
from taskq.clock import utc_now
from taskq.context import TaskContext
from taskq.executor import call_async, execute
from taskq.model import Status, Task
from taskq.registry import lookup
from taskq.store import Store

WORKER = "host:1:worker-1:boot:1"


@taskq.task(name="unit_otel.echo", queue="mail")
def echo(value: int) -> int:
    return value


@taskq.task(name="unit_otel.boom", max_retries=1)
def boom() -> None:
    raise ValueError("boom")


@taskq.task(name="unit_otel.asks_retry")
def asks_retry() -> None:
    raise taskq.Retry("later", delay=5)


@taskq.task(name="unit_otel.progress")
def with_progress(ctx: TaskContext) -> None:
    ctx.progress(10, "first")
    ctx.progress(50, "throttled")
    ctx.progress(90, "last")


@taskq.task(name="unit_otel.async_boom")
async def async_boom() -> None:
    await asyncio.sleep(0)
    raise KeyError("missing")


@taskq.task(name="unit_otel.summary")
def summary(parent_id: int) -> int:
    return parent_id


@taskq.task(name="unit_otel.fan_out", then="unit_otel.summary")
def fan_out(ctx: TaskContext) -> None:
    ctx.spawn_children([("unit_otel.echo", [1]), ("unit_otel.echo", [2])])


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with in_memory_tracing() as exporter:
        yield exporter


def run(store: Store, *, now: object = None) -> Task:
    """Claim the next task and execute it here, as a worker does; returns the task as claimed."""
    claimed = store.claim(WORKER, now=now) if now is not None else store.claim(WORKER)  # type: ignore[arg-type]
    assert claimed is not None
    execute(store, claimed, WORKER, TaskContext(store, claimed, WORKER))
    return claimed


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exporter, name)
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


# -- names and attributes, pure -------------------------------------------------------------------------


def test_span_names_follow_the_messaging_conventions() -> None:
    assert tracing.send_span_name(["mail"]) == "send mail"
    assert tracing.send_span_name(["mail", "mail"]) == "send mail"
    assert tracing.send_span_name(["mail", "default"]) == "send"  # no single destination to name


def test_send_attributes_name_what_every_row_shares() -> None:
    one = [{"queue": "mail", "name": "a.b", "parent_id": None}]
    assert tracing.send_attributes(one) == {
        "messaging.system": "taskq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "mail",
        "taskq.task.name": "a.b",
    }
    batch = [{"queue": "mail", "name": "a.b", "parent_id": 7}, {"queue": "web", "name": "a.b", "parent_id": 7}]
    attributes = tracing.send_attributes(batch)
    assert "messaging.destination.name" not in attributes
    assert attributes["messaging.batch.message_count"] == 2
    assert attributes["taskq.task.parent_id"] == 7


def test_a_stored_context_that_does_not_parse_is_no_context() -> None:
    assert tracing.as_link("not json") is None
    assert tracing.as_link('["a list"]') is None
    assert tracing.as_link(None) is None
    assert json.loads(tracing.as_link('{"traceparent": "00-x-y-01"}') or "") == {
        "traceparent": "00-x-y-01",
        tracing.LINK_ONLY_KEY: "continuation",
    }


# -- without an SDK -------------------------------------------------------------------------------------


def test_without_an_sdk_nothing_is_stored_and_tasks_run(sqlite_store: Store) -> None:
    tracing.refresh()
    assert not tracing.on()
    with trace.get_tracer("test").start_as_current_span("request"):  # the API alone: a no-op span
        task_id = sqlite_store.enqueue("unit_otel.echo", [1]).id
        [many] = sqlite_store.enqueue_many([{"name": "unit_otel.echo", "args": [2]}])
    assert sqlite_store.require(task_id).trace_context is None
    assert sqlite_store.require(many.id).trace_context is None
    run(sqlite_store)
    assert sqlite_store.require(task_id).status is Status.COMPLETED


# -- producer and consumer ------------------------------------------------------------------------------


def test_enqueue_is_a_producer_span_whose_context_the_row_carries(sqlite_store: Store, spans) -> None:
    with trace.get_tracer("test").start_as_current_span("request") as request:
        task_id = sqlite_store.enqueue("unit_otel.echo", [1]).id
    send = only(spans, "send mail")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert dict(send.attributes or {}) == {
        "messaging.system": "taskq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "mail",
        "messaging.message.id": str(task_id),
        "taskq.task.name": "unit_otel.echo",
        "taskq.task.deduplicated": False,
    }
    stored = json.loads(sqlite_store.require(task_id).trace_context or "")
    assert stored["traceparent"].split("-")[1:3] == [
        format(send.context.trace_id, "032x"),
        format(send.context.span_id, "016x"),
    ]


def test_the_first_run_is_a_consumer_span_child_of_the_enqueue(sqlite_store: Store, spans) -> None:
    task_id = sqlite_store.enqueue("unit_otel.echo", [1]).id
    run(sqlite_store)
    send, process = only(spans, "send mail"), only(spans, "process mail")
    assert process.kind is SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert not process.links
    assert dict(process.attributes or {}) == {
        "messaging.system": "taskq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "mail",
        "messaging.message.id": str(task_id),
        "taskq.task.name": "unit_otel.echo",
        "taskq.task.attempt": 1,
        "taskq.task.max_retries": 3,
        "taskq.task.retry": False,
        "taskq.task.outcome": "completed",
    }
    assert process.status.status_code is StatusCode.UNSET


def test_dedup_and_batches_say_so(sqlite_store: Store, spans) -> None:
    first = sqlite_store.enqueue("unit_otel.echo", [1], dedup_key="k")
    again = sqlite_store.enqueue("unit_otel.echo", [1], dedup_key="k")
    assert again.deduplicated and again.id == first.id
    deduplicated = [span for span in named(spans, "send mail") if span.attributes["taskq.task.deduplicated"]]
    assert [span.attributes["messaging.message.id"] for span in deduplicated] == [str(first.id)]
    sqlite_store.enqueue_many([{"name": "unit_otel.echo", "args": [i]} for i in range(3)])
    batch = named(spans, "send mail")[-1]
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in batch.attributes


def test_a_failed_run_records_the_exception_and_the_retry_links_to_the_enqueue(sqlite_store: Store, spans) -> None:
    sqlite_store.enqueue("unit_otel.boom")
    run(sqlite_store)
    first = only(spans, "process default")
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["error.type"] == "ValueError"
    [exception] = [event for event in first.events if event.name == "exception"]
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "boom"
    run(sqlite_store, now=utc_now() + timedelta(hours=1))  # past the backoff
    send = only(spans, "send default")
    second = named(spans, "process default")[1]
    assert second.attributes["taskq.task.attempt"] == 2 and second.attributes["taskq.task.retry"] is True
    assert second.parent is None and second.context.trace_id != send.context.trace_id  # a trace of its own
    [link] = second.links
    assert (link.context.trace_id, link.context.span_id) == (send.context.trace_id, send.context.span_id)
    assert link.attributes == {"taskq.link.reason": "retry"}


def test_a_delayed_run_links_to_the_enqueue(sqlite_store: Store, spans) -> None:
    sqlite_store.enqueue("unit_otel.echo", [1], delay=60)
    run(sqlite_store, now=utc_now() + timedelta(minutes=2))
    send, process = only(spans, "send mail"), only(spans, "process mail")
    assert process.parent is None
    [link] = process.links
    assert link.context.span_id == send.context.span_id and link.attributes == {"taskq.link.reason": "delayed"}


def test_a_requested_retry_is_an_event_not_an_error(sqlite_store: Store, spans) -> None:
    sqlite_store.enqueue("unit_otel.asks_retry")
    run(sqlite_store)
    process = only(spans, "process default")
    assert process.status.status_code is StatusCode.UNSET
    assert process.attributes["taskq.task.outcome"] == "retry"
    [event] = process.events
    assert event.name == "taskq.retry_requested"
    assert event.attributes == {"taskq.retry.reason": "later", "taskq.retry.delay": 5.0}


def test_progress_becomes_span_events_throttled_with_the_last_kept(sqlite_store: Store, spans) -> None:
    sqlite_store.enqueue("unit_otel.progress")
    run(sqlite_store)
    events = [dict(event.attributes or {}) for event in only(spans, "process default").events]
    assert events == [
        {"taskq.progress.percent": 10.0, "taskq.progress.message": "first"},
        {"taskq.progress.percent": 90.0, "taskq.progress.message": "last"},
    ]


def test_an_async_task_fails_on_its_span_too(sqlite_store: Store, spans) -> None:
    sqlite_store.enqueue("unit_otel.async_boom")
    claimed = sqlite_store.claim(WORKER)
    assert claimed is not None
    context = TaskContext(sqlite_store, claimed, WORKER)
    outcome = asyncio.run(call_async(lookup(claimed.name), claimed, context, None))
    assert isinstance(outcome.error, KeyError)
    process = only(spans, "process default")
    assert process.status.status_code is StatusCode.ERROR and process.attributes["error.type"] == "KeyError"
    assert process.parent is not None and process.parent.span_id == only(spans, "send default").context.span_id


def test_children_are_enqueued_inside_the_parent_run_and_the_continuation_links_to_the_parent(
    sqlite_store: Store, spans
) -> None:
    with trace.get_tracer("test").start_as_current_span("request"):
        parent_id = sqlite_store.enqueue("unit_otel.fan_out").id
    run(sqlite_store)  # the parent spawns
    parent_send, parent_run = only(spans, "send default"), only(spans, "process default")
    children_send = only(spans, "send mail")
    assert children_send.parent is not None and children_send.parent.span_id == parent_run.context.span_id
    assert children_send.attributes["taskq.task.parent_id"] == parent_id
    assert children_send.attributes["messaging.batch.message_count"] == 2
    run(sqlite_store)
    run(sqlite_store)  # the last child completes the parent and enqueues the continuation
    for child in named(spans, "process mail"):
        assert child.context.trace_id == parent_send.context.trace_id
        assert child.parent is not None and child.parent.span_id == children_send.context.span_id
    run(sqlite_store)
    continuation = [span for span in named(spans, "process default") if span is not parent_run]
    [summary_run] = [span for span in continuation if span.attributes["taskq.task.name"] == "unit_otel.summary"]
    assert summary_run.parent is None
    [link] = summary_run.links
    assert (link.context.trace_id, link.context.span_id) == (parent_send.context.trace_id, parent_send.context.span_id)
    assert link.attributes == {"taskq.link.reason": "continuation"}


# -- metrics --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metric_reader() -> InMemoryMetricReader:
    """A global MeterProvider, set once for the session (the API allows one; instruments created before it
    was set start recording through it)."""
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    tracing.refresh()
    return reader


def _points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    found: dict[str, list[object]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            if scope.scope.name == "taskq":
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_runs_are_measured_through_the_meter(sqlite_store: Store, metric_reader: InMemoryMetricReader) -> None:
    sqlite_store.enqueue("unit_otel.echo", [1])
    sqlite_store.enqueue("unit_otel.boom")
    run(sqlite_store)
    run(sqlite_store)
    points = _points(metric_reader)
    completed = [p for p in points["taskq.task.completed"] if p.attributes["taskq.task.name"] == "unit_otel.echo"]
    assert [(p.value, dict(p.attributes)) for p in completed] == [
        (1, {"messaging.destination.name": "mail", "taskq.task.name": "unit_otel.echo"})
    ]
    failed = [p for p in points["taskq.task.failed"] if p.attributes["taskq.task.name"] == "unit_otel.boom"]
    assert [(p.value, p.attributes["error.type"]) for p in failed] == [(1, "ValueError")]
    durations = {
        (p.attributes["taskq.task.name"], p.attributes["taskq.task.outcome"]): p.count
        for p in points["taskq.task.duration"]
    }
    assert durations[("unit_otel.echo", "completed")] == 1
    assert durations[("unit_otel.boom", "failed")] == 1
