"""GET /metrics: the queue in Prometheus' text format, read from the store at scrape time.

prometheus_client is an optional extra (`pip install 'taskq[metrics]'`). A custom collector yields the
figures the store holds rather than counting in process: the dashboard may run on another host than
the workers, and several dashboards must report the same numbers. Counters are monotonic because they
come from the all-time rollup totals (task_totals) alone, which retries and purges never decrease (rows
finished in the last ROLLUP_LAG_SECONDS or so show up on a later scrape). Task names are bounded: at most
METRIC_NAMES_MAX of them label series, the others are summed under name="other" (taskq/store/metrics.py).
The counters and the histogram's statuses follow the Status enum (schema.OUTCOME_COLUMNS, RUN_OUTCOMES).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskq.clock import utc_now
from taskq.schema import OUTCOME_COLUMNS
from taskq.store import Store
from taskq.store.metrics import RUN_OUTCOMES, RUNTIME_BOUNDS_SECONDS

LIVE_WORKER_SECONDS = 60.0  # a worker whose heartbeat is older than this is not counted live


def collect(store: Store) -> list[Any]:
    """The metric families, built from one pass of store reads (so tests can call it without HTTP)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    now = utc_now()
    tasks = GaugeMetricFamily("taskq_tasks", "Tasks in the table, by queue and status.", labels=["queue", "status"])
    for (queue, status), n in sorted(store.counts_by_queue().items()):
        tasks.add_metric([queue, status], n)
    finished = {
        outcome: CounterMetricFamily(
            f"taskq_tasks_{outcome}", f"Tasks {outcome}, by queue and task name.", labels=["queue", "name"]
        )
        for outcome in OUTCOME_COLUMNS  # one counter per finished status, named by it
    }
    runtime = HistogramMetricFamily(
        "taskq_task_runtime_seconds",
        f"Run time of {' and '.join(RUN_OUTCOMES)} tasks (last attempt), by queue and task name.",
        labels=["queue", "name"],
    )
    for (queue, name), tally in sorted(store.metric_totals().items()):
        for outcome, family in finished.items():
            family.add_metric([queue, name], tally.outcomes[outcome])
        cumulative, buckets = 0, []
        for bound, count in zip((*RUNTIME_BOUNDS_SECONDS, float("inf")), tally.runtime_buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        runtime.add_metric([queue, name], buckets, sum_value=tally.runtime_sum)
    workers = GaugeMetricFamily("taskq_workers_live", "Worker processes with a recent heartbeat.")
    workers.add_metric([], len(store.list_workers(alive_within=LIVE_WORKER_SECONDS, now=now)))
    ready = GaugeMetricFamily("taskq_queue_ready_tasks", "Pending tasks that are due, by queue.", labels=["queue"])
    age = GaugeMetricFamily(
        "taskq_queue_oldest_ready_age_seconds",
        "How long the oldest due task of each queue has been waiting (0 when none is).",
        labels=["queue"],
    )
    for depth in store.queue_depths(now=now):
        ready.add_metric([depth.queue], depth.ready)
        waited = 0.0 if depth.oldest_ready_at is None else max(0.0, (now - depth.oldest_ready_at).total_seconds())
        age.add_metric([depth.queue], waited)
    return [tasks, *finished.values(), runtime, workers, ready, age]


class _StoreCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        yield from collect(self.store)


def render(store: Store) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST


async def metrics(request: Request) -> Response:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return JSONResponse(
            {"error": "/metrics needs prometheus_client: pip install 'taskq[metrics]'"}, status_code=501
        )
    ticker = getattr(request.app.state, "rollup", None)
    if ticker is not None:
        ticker.kick()
    body, content_type = await run_in_threadpool(render, request.app.state.store)
    return Response(body, media_type=content_type)


routes = [Route("/metrics", metrics, methods=["GET"])]
