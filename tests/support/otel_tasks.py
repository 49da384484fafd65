"""Tasks for the OpenTelemetry pool tests (`--import otel_tasks`). Importing this module configures an SDK
TracerProvider in each process that imports it (as an app's task module would), exporting every span as it
ends, synchronously, as one JSON line to $TASKQ_TEST_SPANS/spans-<pid>.jsonl, so the test reads what the
workers recorded once a task has finished ($TASKQ_TEST_SPANS_BATCHED: through a BatchSpanProcessor instead)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

import taskq
from taskq.context import TaskContext


class JsonLinesExporter(SpanExporter):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_as_dict(span)) + "\n" for span in spans)
        with open(self.directory / f"spans-{os.getpid()}.jsonl", "a") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": None if span.parent is None else format(span.parent.span_id, "016x"),
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [{"name": event.name, "attributes": dict(event.attributes or {})} for event in span.events],
    }


if os.environ.get("TASKQ_TEST_SPANS"):
    _exporter = JsonLinesExporter(Path(os.environ["TASKQ_TEST_SPANS"]))
    _provider = TracerProvider()
    if os.environ.get("TASKQ_TEST_SPANS_BATCHED"):
        # As production set-ups do: spans wait in memory for a minute, so only a flush at exit exports them.
        _provider.add_span_processor(BatchSpanProcessor(_exporter, schedule_delay_millis=60_000))
    else:
        _provider.add_span_processor(SimpleSpanProcessor(_exporter))
    trace.set_tracer_provider(_provider)


@taskq.task(name="otel.echo")
def echo(value: Any) -> Any:
    return value


@taskq.task(name="otel.nap")
async def nap(ctx: TaskContext, seconds: float) -> int:
    """Sleeps on the loop beside the others, then enqueues a follow-up from inside its own span."""
    await asyncio.sleep(seconds)
    return (await ctx.store.enqueue_async("otel.echo", [ctx.task_id])).id


@taskq.task(name="otel.flaky", max_retries=2, retry_backoff=0.05)
def flaky(ctx: TaskContext) -> int:
    if ctx.attempt == 1:
        raise ValueError("first attempt fails on purpose")
    return ctx.attempt


@taskq.task(name="otel.child", max_retries=0)
def child(index: int) -> int:
    return index


@taskq.task(name="otel.summary")
def summary(parent_id: int) -> int:
    return parent_id


@taskq.task(name="otel.fan_out", then="otel.summary")
def fan_out(ctx: TaskContext, count: int) -> None:
    ctx.spawn_children([("otel.child", [i]) for i in range(count)])
