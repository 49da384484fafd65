"""The store carries trace contexts on both dialects: every way of enqueueing writes the enqueuer's context in
its INSERT, a continuation carries its finished task's as a link, and without an SDK nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_kit import in_memory_tracing

import taskq
from taskq import tracing
from taskq.store import Store

WORKER = "host:1:worker-1:boot:1"


@taskq.task(name="contract_otel.step", then="contract_otel.next")
def step() -> None:
    return None


@taskq.task(name="contract_otel.next")
def next_step(previous: int) -> int:
    return previous


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with in_memory_tracing() as exporter:
        yield exporter


def traceparent(store: Store, task_id: int) -> str:
    return str(json.loads(store.require(task_id).trace_context or "{}").get("traceparent", ""))


def span_ids(exporter: InMemorySpanExporter, name: str) -> list[str]:
    return [format(span.context.span_id, "016x") for span in exporter.get_finished_spans() if span.name == name]


def test_every_enqueue_path_stores_its_producer_context(store: Store, spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("request"):
        single = store.enqueue("contract_otel.next", [1]).id
        deduplicated = store.enqueue("contract_otel.next", [2], dedup_key="k").id
        batch = [e.id for e in store.enqueue_many([{"name": "contract_otel.next", "args": [i]} for i in range(2)])]

        def in_callers_transaction(connection: object) -> int:
            return store.enqueue("contract_otel.next", [3], connection=connection).id  # type: ignore[arg-type]

        joined = store.write(in_callers_transaction)
    sends = span_ids(spans, "send default")
    assert len(sends) == 4
    stored = [traceparent(store, task_id).split("-")[2] for task_id in (single, deduplicated, *batch, joined)]
    assert stored == [sends[0], sends[1], sends[2], sends[2], sends[3]]


def test_a_continuation_carries_the_finished_task_context_as_a_link(store: Store, spans: InMemorySpanExporter) -> None:
    step_id = store.enqueue("contract_otel.step").id
    claimed = store.claim(WORKER)
    assert claimed is not None and claimed.id == step_id
    assert store.complete(step_id, None, worker_id=WORKER, attempt=claimed.attempts, continuation="contract_otel.next")
    [continuation] = store.list(name="contract_otel.next")
    carrier = json.loads(continuation.trace_context or "{}")
    assert carrier == {"traceparent": traceparent(store, step_id), tracing.LINK_ONLY_KEY: "continuation"}


def test_without_an_sdk_no_context_is_written(store: Store) -> None:
    tracing.refresh()
    with trace.get_tracer("test").start_as_current_span("request"):
        ids = [
            store.enqueue("contract_otel.next", [1]).id,
            store.enqueue_many([{"name": "contract_otel.next", "args": [2]}])[0].id,
        ]
    assert [store.require(task_id).trace_context for task_id in ids] == [None, None]
