"""OpenTelemetry: a PRODUCER span per enqueue, a CONSUMER span per execution, task metrics.

The only module that imports `opentelemetry` (the `otel` extra, on opentelemetry-api alone). Without it,
or without an SDK configured, every entry point is a no-op: `on()` answers from a cached flag, so an
enqueue pays one function call, never a span, an inject or a JSON encoding (bench/otel_enqueue.py).

Names and attributes follow OpenTelemetry's messaging semantic conventions: "send <queue>" and
"process <queue>", messaging.system = "taskq", the queue as destination, the task id as message id, plus
taskq.* attributes. The enqueuer's context travels in the task's `trace_context` column (the global
propagator's carrier as JSON, written by the INSERT that creates the task). The worker's span is the child
of that context when the run directly follows the enqueue (first attempt, not delayed); a retry, a delayed
run and a continuation are a new trace with a span link to it instead (the conventions ask for a link and
allow a parent for a single message: taskq keeps a request's trace to the work done right after it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import Token
from types import TracebackType
from typing import Any, Protocol, TypeVar

from taskq.distribution import version
from taskq.lifecycle import Retry
from taskq.model import Enqueued, Task

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
except ImportError:  # the `otel` extra is not installed: on() and metrics_on() stay False, nothing below runs
    AVAILABLE = False
else:
    AVAILABLE = True

R = TypeVar("R")

SYSTEM = "taskq"  # messaging.system
PROBE_SECONDS = 1.0  # while no SDK is configured, look again this often (an app may configure it after import)
PROGRESS_EVENT_SECONDS = 0.25  # progress events of one run at most this often; the last value is always kept
FLUSH_TIMEOUT_MS = 2000  # a worker exiting waits this long at most for its spans and metrics to be exported
# Added to a stored carrier that must come back as a link, never as the parent (a continuation's copy of
# the finished task's context). Propagators read only their own keys, so it never reaches one.
LINK_ONLY_KEY = "taskq-link"


class _Switch:
    """Whether a global provider is a real one (an SDK's), cached: asking OpenTelemetry costs ~3 us (an
    os.environ lookup), which an enqueue of ~50 us cannot pay each time. A real provider can never be
    replaced (the API sets it once), so True is for good; False is looked at again after PROBE_SECONDS."""

    def __init__(self, is_real: Callable[[], bool]) -> None:
        self.is_real = is_real
        self.on = False
        self.next_probe = 0.0

    def __call__(self) -> bool:
        if self.on:
            return True
        now = time.monotonic()
        if now < self.next_probe:
            return False
        self.next_probe = now + PROBE_SECONDS
        self.on = AVAILABLE and self.is_real()
        return self.on

    def forget(self) -> None:
        self.on, self.next_probe = False, 0.0


def _real_tracer_provider() -> bool:
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _real_meter_provider() -> bool:
    # The API's proxy (no provider set yet) is not public: an SDK provider is the one that can flush.
    provider = metrics.get_meter_provider()
    return not isinstance(provider, metrics.NoOpMeterProvider) and callable(getattr(provider, "force_flush", None))


on = _Switch(_real_tracer_provider)  # an SDK TracerProvider is configured: spans are made, contexts stored
metrics_on = _Switch(_real_meter_provider)  # an SDK MeterProvider is configured: task metrics are recorded


def refresh() -> None:
    """Look at the global providers again on the next call (after configuring the SDK, if taskq was used
    before; otherwise a new provider is noticed within PROBE_SECONDS)."""
    global _tracer
    on.forget()
    metrics_on.forget()
    _tracer = None


# A forked child (a worker from the fork server) imports its task modules, which may configure an SDK:
# it must not trust what its parent found.
os.register_at_fork(after_in_child=refresh)

_tracer: trace.Tracer | None = None  # the configured provider's, taken when first needed


def _the_tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("taskq", version())
    return _tracer


if AVAILABLE:
    # Created on the API's proxy meter: they start recording once an SDK MeterProvider is set.
    _meter = metrics.get_meter("taskq", version())
    _duration = _meter.create_histogram(
        "taskq.task.duration", unit="s", description="How long a task's function ran, per execution"
    )
    _completed = _meter.create_counter(
        "taskq.task.completed", unit="{execution}", description="Executions whose function returned"
    )
    _failed = _meter.create_counter(
        "taskq.task.failed", unit="{execution}", description="Executions whose function raised an error"
    )


# -- attributes (pure: unit-tested without an SDK) ----------------------------------------------------


def send_span_name(queues: Sequence[str]) -> str:
    """`send <queue>`, or `send` for a batch over several queues (no single destination to name)."""
    distinct = set(queues)
    return f"send {queues[0]}" if len(distinct) == 1 else "send"


def send_attributes(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    for key, column in (
        ("messaging.destination.name", "queue"),
        ("taskq.task.name", "name"),
        ("taskq.task.parent_id", "parent_id"),
    ):
        values = {row[column] for row in rows}
        if len(values) == 1 and None not in values:
            attributes[key] = values.pop()
    if len(rows) != 1:
        attributes["messaging.batch.message_count"] = len(rows)
    return attributes


def sent_attributes(enqueued: Sequence[Enqueued]) -> dict[str, Any]:
    """What the INSERT told: the task id (a single enqueue), and whether a dedup key returned an existing task."""
    if len(enqueued) != 1:
        return {}
    return {"messaging.message.id": str(enqueued[0].id), "taskq.task.deduplicated": enqueued[0].deduplicated}


def process_span_name(task: Task) -> str:
    return f"process {task.queue}"


def process_attributes(task: Task) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": task.queue,
        "messaging.message.id": str(task.id),
        "taskq.task.name": task.name,
        "taskq.task.attempt": task.attempts,
        "taskq.task.max_retries": task.max_retries,
        "taskq.task.retry": task.attempts > 1,
    }
    if task.parent_id is not None:
        attributes["taskq.task.parent_id"] = task.parent_id
    return attributes


def link_reason(task: Task, carrier: dict[str, str]) -> str | None:
    """Why the run is linked to the stored context instead of being its child; None: it is the child."""
    if carrier.get(LINK_ONLY_KEY):
        return carrier[LINK_ONLY_KEY]
    if task.attempts > 1:
        return "retry"
    # Later than its enqueue: asked for (delay, run_after) or set by `taskq retry`, which also resets attempts.
    if task.run_after > task.created_at:
        return "delayed"
    return None


def as_link(stored: str | None, reason: str = "continuation") -> str | None:
    """A task's stored context, for a task it caused but whose run is not part of it (a continuation):
    restored in the worker as a span link."""
    if stored is None:
        return None
    carrier = _carrier(stored)
    if not carrier:
        return None
    carrier[LINK_ONLY_KEY] = reason
    return json.dumps(carrier, separators=(",", ":"))


def _carrier(stored: str | None) -> dict[str, str]:
    """A stored carrier; anything unreadable is no context (a row is data: it must not fail the task)."""
    if not stored:
        return {}
    try:
        carrier = json.loads(stored)
    except ValueError:
        return {}
    if not isinstance(carrier, dict):
        return {}
    return {str(key): value for key, value in carrier.items() if isinstance(value, str)}


# -- producer ------------------------------------------------------------------------------------------


def send(rows: list[dict[str, Any]], insert: Callable[[], R]) -> R:
    """Run `insert` (which writes `rows`) in a PRODUCER span whose context each row carries in its
    `trace_context`. Callers check on() first, so this never runs without an SDK."""
    name, attributes = send_span_name([row["queue"] for row in rows]), send_attributes(rows)
    with _the_tracer().start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        stored = json.dumps(carrier, separators=(",", ":")) if carrier else None
        for row in rows:
            row["trace_context"] = stored
        result = insert()
        if isinstance(result, list) and span.is_recording():
            span.set_attributes(sent_attributes(result))
        return result


# -- consumer ------------------------------------------------------------------------------------------


class RunningTask(Protocol):
    """What a run's span needs of taskq.context.TaskContext (which sits above this module)."""

    task: Task
    on_progress: Callable[[float, str | None], None] | None

    @property
    def cancelled(self) -> bool: ...


_NOTHING: AbstractContextManager[None] = nullcontext()


def consuming(running: RunningTask) -> AbstractContextManager[Any]:
    """Wraps the call of a task's function: a CONSUMER span (current while it runs) and the task metrics."""
    if not on() and not metrics_on():
        return _NOTHING
    return _Run(running)


def outcome_of(error: BaseException | None, cancelled: bool) -> str:
    """The execution's outcome, as the span and the metrics name it. Anything else the function raised
    (a CancelledError without a cancellation: a timeout or the worker stopping; SystemExit) is a failure,
    as the executor records it."""
    if error is None:
        return "completed"
    if cancelled:  # TaskCancelled, or the CancelledError that cancels a coroutine: the flag is set first
        return "cancelled"
    if isinstance(error, Retry):
        return "retry"  # asked for, not an error
    return "failed"


class _Run:
    def __init__(self, running: RunningTask) -> None:
        self.running = running
        self.span: Any = None
        self.token: Token[otel_context.Context] | None = None
        self.started = 0.0
        self.last_event = 0.0
        self.unrecorded: tuple[float, str | None] | None = None

    def __enter__(self) -> _Run:
        if on():
            self.span, current = _start_process_span(self.running.task)
            self.token = otel_context.attach(current)
            self.running.on_progress = self.progress
        self.started = time.monotonic()
        return self

    def progress(self, percent: float, message: str | None) -> None:
        now = time.monotonic()
        if now - self.last_event < PROGRESS_EVENT_SECONDS:
            self.unrecorded = (percent, message)
            return
        self.last_event, self.unrecorded = now, None
        self._event(percent, message)

    def _event(self, percent: float, message: str | None) -> None:
        attributes: dict[str, Any] = {"taskq.progress.percent": float(percent)}
        if message is not None:
            attributes["taskq.progress.message"] = message
        self.span.add_event("taskq.progress", attributes)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        seconds = time.monotonic() - self.started
        outcome = outcome_of(error, self.running.cancelled)
        if self.span is not None:
            self.running.on_progress = None
            if self.unrecorded is not None:
                self._event(*self.unrecorded)
            self._end_span(error, outcome)
        if metrics_on():
            _record_metrics(self.running.task, outcome, error, seconds)

    def _end_span(self, error: BaseException | None, outcome: str) -> None:
        span = self.span
        try:
            span.set_attribute("taskq.task.outcome", outcome)
            if isinstance(error, Retry):
                attributes = {} if error.delay is None else {"taskq.retry.delay": error.delay}
                span.add_event("taskq.retry_requested", {"taskq.retry.reason": error.reason, **attributes})
            elif outcome == "failed" and error is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", _qualified_name(type(error)))
        finally:
            if self.token is not None:
                otel_context.detach(self.token)
            span.end()


def _start_process_span(task: Task) -> tuple[Any, Any]:
    """The run's span, and the context to make current while it runs: the stored one's baggage, with the
    span as its child or as a new trace linked to it."""
    carrier = _carrier(task.trace_context)
    restored = propagate.extract(carrier) if carrier else otel_context.Context()
    stored = trace.get_current_span(restored).get_span_context()
    links: list[trace.Link] = []
    reason = link_reason(task, carrier) if stored.is_valid else None
    if reason is not None:
        links.append(trace.Link(stored, {"taskq.link.reason": reason}))
        restored = trace.set_span_in_context(trace.INVALID_SPAN, restored)  # a new trace, baggage kept
    span = _the_tracer().start_span(
        process_span_name(task),
        context=restored,
        kind=trace.SpanKind.CONSUMER,
        attributes=process_attributes(task),
        links=links,
    )
    return span, trace.set_span_in_context(span, restored)


def _qualified_name(kind: type[BaseException]) -> str:
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _record_metrics(task: Task, outcome: str, error: BaseException | None, seconds: float) -> None:
    attributes: dict[str, Any] = {"messaging.destination.name": task.queue, "taskq.task.name": task.name}
    _duration.record(seconds, {**attributes, "taskq.task.outcome": outcome})
    if outcome == "completed":
        _completed.add(1, attributes)
    elif outcome == "failed" and error is not None:
        _failed.add(1, {**attributes, "error.type": _qualified_name(type(error))})


def flush() -> None:
    """Export what this process still buffers (BatchSpanProcessor, periodic metric readers): a worker
    forked by the fork server leaves with os._exit, so the SDK's own atexit shutdown never runs there."""
    for is_on, provider in ((on, "tracer"), (metrics_on, "meter")):
        if not is_on():
            continue
        current = trace.get_tracer_provider() if provider == "tracer" else metrics.get_meter_provider()
        force_flush = getattr(current, "force_flush", None)  # an SDK method; the API's providers lack it
        if force_flush is not None:
            force_flush(FLUSH_TIMEOUT_MS)
