"""The Celery application of the Celery peer: kombu's SQLAlchemy transport on SQLite, results in SQLite too."""

from __future__ import annotations

import os
import time

from celery import Celery

_directory = os.environ.get("BENCH_CELERY_DIR", ".")
app = Celery(
    "bench_celery",
    broker=f"sqla+sqlite:///{_directory}/celery-broker.db",
    backend=f"db+sqlite:///{_directory}/celery-results.db",
)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    worker_prefetch_multiplier=1,
    # kombu's virtual transports poll; 1 s is kombu's default, kept so Celery is measured as shipped.
)


@app.task
def noop() -> int:
    return 1  # stored in the result backend: completions are counted from celery_taskmeta


@app.task
def stamp() -> float:
    return time.time()
