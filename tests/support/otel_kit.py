"""OpenTelemetry for tests: an in-memory SDK in this process, and spans a pool's workers wrote to files.

The API lets a process set its global TracerProvider once; `in_memory_tracing` undoes that afterwards the
way OpenTelemetry's own test utilities do (resetting its module globals), so tests after it run without
an SDK again, and tells taskq.tracing to look at the provider anew.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from taskq import tracing


@contextmanager
def in_memory_tracing() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    tracing.refresh()
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_global_provider()
        tracing.refresh()


def _reset_global_provider() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


def hex_id(value: int, width: int = 16) -> str:
    return format(value, f"0{width}x")


def read_spans(directory: Path) -> list[dict[str, Any]]:
    """Every span the workers exported (tests/support/otel_tasks.py's file exporter), in end order per file."""
    spans = []
    for path in sorted(directory.glob("spans-*.jsonl")):
        spans += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return spans
