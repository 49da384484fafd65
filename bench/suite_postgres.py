"""PostgreSQL: bare psycopg ceilings next to taskq's store, in private schemas dropped afterwards."""

from __future__ import annotations

from collections.abc import Callable

from bench import ceilings, dbs, taskq_store
from bench.results import Results
from bench.sizes import Sizes

KEYS = (
    ("pg.raw.insert_single", "psycopg single-row insert", "tx/s"),
    ("pg.raw.insert_batch", "psycopg 1,000-row batches", "rows/s"),
    ("pg.raw.claim_complete", "psycopg claim + complete cycle", "cycles/s"),
    ("pg.taskq.enqueue_single", "taskq/pg enqueue (one at a time)", "tasks/s"),
    ("pg.taskq.enqueue_many", "taskq/pg enqueue_many (1,000/batch)", "tasks/s"),
    ("pg.taskq.claim_complete", "taskq/pg store claim + complete", "cycles/s"),
)


def run(results: Results, sizes: Sizes, log: Callable[[str], None]) -> None:
    reason = dbs.postgres_available()
    if reason:
        for key, label, _unit in KEYS:
            results.skip(key, label, reason)
        return
    labels = {key: (label, unit) for key, label, unit in KEYS}

    def add(key: str, value: float) -> None:
        results.add(key, *labels[key], value)

    # PostgreSQL commits flush the WAL, so its rates are far lower: smaller counts keep run time sane.
    single, claims = max(sizes.single // 4, 50), max(sizes.claims // 4, 50)
    try:
        _repetitions(add, sizes, single, claims, log)
    finally:  # ratios of the repetitions that completed, even if the server went away during a later one
        _ratios(results)


def _repetitions(
    add: Callable[[str, float], None], sizes: Sizes, single: int, claims: int, log: Callable[[str], None]
) -> None:
    for rep in range(sizes.runs):
        log(f"postgresql, run {rep + 1}/{sizes.runs}")
        with dbs.pg_schema() as schema:
            add("pg.raw.insert_single", ceilings.pg_insert_single(schema, single))
            add("pg.raw.insert_batch", ceilings.pg_insert_batches(schema, sizes.batches))
        with dbs.pg_schema() as schema:
            add("pg.taskq.enqueue_single", taskq_store.enqueue_single(schema.url, single))
            add("pg.taskq.enqueue_many", taskq_store.enqueue_batches(schema.url, sizes.batches))
        with dbs.pg_schema() as schema:
            add("pg.raw.claim_complete", ceilings.pg_claim_complete(schema, claims))
        with dbs.pg_schema() as schema:
            add("pg.taskq.claim_complete", taskq_store.claim_complete(schema.url, claims))


def _ratios(results: Results) -> None:
    results.ratio(
        "pg.ratio.enqueue_single",
        "taskq/pg enqueue / psycopg single insert",
        "pg.taskq.enqueue_single",
        "pg.raw.insert_single",
    )
    results.ratio(
        "pg.ratio.enqueue_many",
        "taskq/pg enqueue_many / psycopg batch insert",
        "pg.taskq.enqueue_many",
        "pg.raw.insert_batch",
    )
    results.ratio(
        "pg.ratio.claim_complete",
        "taskq/pg claim+complete / psycopg cycle",
        "pg.taskq.claim_complete",
        "pg.raw.claim_complete",
    )
