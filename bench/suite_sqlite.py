"""SQLite: bare sqlite3 ceilings next to taskq's store, repetition by repetition so ratios pair up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import ceilings, dbs, taskq_store
from bench.results import Results
from bench.sizes import Sizes


def run(results: Results, sizes: Sizes, workdir: Path, log: Callable[[str], None]) -> None:
    for rep in range(sizes.runs):
        log(f"sqlite inserts, run {rep + 1}/{sizes.runs}")
        path, url = dbs.sqlite_taskq_db(workdir, "raw_insert.db")
        results.add(
            "sqlite.raw.insert_single",
            "sqlite3 single-row insert",
            "tx/s",
            ceilings.sqlite_insert_single(path, sizes.single),
        )
        results.add(
            "sqlite.raw.insert_batch",
            "sqlite3 1,000-row batches",
            "rows/s",
            ceilings.sqlite_insert_batches(path, sizes.batches),
        )
        path, url = dbs.sqlite_taskq_db(workdir, "taskq_enqueue.db")
        results.add(
            "sqlite.taskq.enqueue_single",
            "taskq enqueue (one at a time)",
            "tasks/s",
            taskq_store.enqueue_single(url, sizes.single),
        )
        results.add(
            "sqlite.taskq.enqueue_many",
            "taskq enqueue_many (1,000/batch)",
            "tasks/s",
            taskq_store.enqueue_batches(url, sizes.batches),
        )

    big_path, big_url = dbs.sqlite_taskq_db(workdir, "finished_rows.db")
    log(f"filling {sizes.finished_rows:,} finished rows")
    ceilings.sqlite_fill(big_path, sizes.finished_rows, status="completed")
    for rep in range(sizes.runs):
        log(f"sqlite claim + complete, run {rep + 1}/{sizes.runs}")
        path, url = dbs.sqlite_taskq_db(workdir, "raw_claim.db")
        results.add(
            "sqlite.raw.claim_complete",
            "sqlite3 claim + complete cycle",
            "cycles/s",
            ceilings.sqlite_claim_complete(path, sizes.claims),
        )
        path, url = dbs.sqlite_taskq_db(workdir, "taskq_claim.db")
        results.add(
            "sqlite.taskq.claim_complete",
            "taskq store claim + complete (empty table)",
            "cycles/s",
            taskq_store.claim_complete(url, sizes.claims),
        )
        results.add(
            "sqlite.taskq.claim_complete_finished",
            f"taskq store claim + complete ({sizes.finished_rows:,} finished rows)",
            "cycles/s",
            taskq_store.claim_complete(big_url, sizes.claims),
        )
    results.meta["sqlite_claim_plan"] = ceilings.sqlite_claim_plan(big_path)

    results.ratio(
        "sqlite.ratio.enqueue_single",
        "taskq enqueue / sqlite3 single insert",
        "sqlite.taskq.enqueue_single",
        "sqlite.raw.insert_single",
    )
    results.ratio(
        "sqlite.ratio.enqueue_many",
        "taskq enqueue_many / sqlite3 batch insert",
        "sqlite.taskq.enqueue_many",
        "sqlite.raw.insert_batch",
    )
    results.ratio(
        "sqlite.ratio.claim_complete",
        "taskq store claim+complete / sqlite3 cycle",
        "sqlite.taskq.claim_complete",
        "sqlite.raw.claim_complete",
    )
    results.ratio(
        "sqlite.ratio.claim_flat",
        "taskq claim+complete: finished rows / empty",
        "sqlite.taskq.claim_complete_finished",
        "sqlite.taskq.claim_complete",
    )
