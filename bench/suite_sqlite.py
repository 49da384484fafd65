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
        # Issue 21: one enqueue_many of `drain` requests next to one raw executemany of as many rows,
        # who goes first alternating by repetition.
        many = [
            (
                "sqlite.raw.insert_many",
                f"sqlite3 one executemany of {sizes.drain:,} rows",
                "rows/s",
                lambda: ceilings.sqlite_insert_one_batch(dbs.sqlite_taskq_db(workdir, "raw_many.db")[0], sizes.drain),
            ),
            (
                "sqlite.taskq.enqueue_many_once",
                f"taskq one enqueue_many of {sizes.drain:,}",
                "tasks/s",
                lambda: taskq_store.enqueue_many_once(dbs.sqlite_taskq_db(workdir, "taskq_many.db")[1], sizes.drain),
            ),
        ]
        for key, label, unit, measure in many[:: -1 if rep % 2 else 1]:
            results.add(key, label, unit, measure())

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
        path, url = dbs.sqlite_taskq_db(workdir, "raw_group_commit.db")
        results.add(
            "sqlite.raw.group_commit",
            f"sqlite3 claim + complete in group commits of {ceilings.GROUP_COMMIT_BATCH} (the limit, issue 21)",
            "tasks/s",
            ceilings.sqlite_group_commit(path, sizes.drain),
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
        "sqlite.ratio.enqueue_many_once",
        f"taskq enqueue_many of {sizes.drain:,} / sqlite3 executemany of as many rows",
        "sqlite.taskq.enqueue_many_once",
        "sqlite.raw.insert_many",
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
