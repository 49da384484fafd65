"""`python -m bench [--quick] [--only GROUP,...]`: run the suite, print a table, write JSON."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, suite_postgres, suite_sqlite
from bench.results import Results, table
from bench.sizes import FULL, QUICK
from bench.targets import ISSUE_11, ISSUE_21, targets_table

REPO = Path(__file__).resolve().parent.parent
PEERS = ("huey", "celery", "taskq_pg", "procrastinate", "rq")
GROUPS = ("sqlite", "postgres", "pool", *PEERS)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def guarded(results: Results, group: str, run: Callable[[], None]) -> None:
    """A group that fails (e.g. its database server restarted under it) is recorded; the others still run."""
    try:
        run()
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        log(f"group {group} FAILED: {reason}")
        results.meta.setdefault("group_failures", {})[group] = reason


def compare_with_peers(results: Results) -> None:
    """The issue's targets as ratios, run by run (sample i of each figure comes from repetition i)."""
    results.ratio(
        "compare.enqueue_vs_huey",
        "taskq enqueue / Huey enqueue, one at a time, side by side (SQLite)",
        "peer.huey.taskq_enqueue_single",
        "peer.huey.enqueue_single",
        if_measured=True,
    )
    results.ratio(
        "compare.drain_vs_huey",
        "taskq drain 2 workers / Huey drain 2 workers (SQLite)",
        "pool.drain_2",
        "peer.huey.drain_2",
        if_measured=True,
    )
    results.ratio(
        "compare.drain_vs_celery",
        "taskq drain 2 workers / Celery drain 2 workers (SQLite)",
        "pool.drain_2",
        "peer.celery.drain_2",
        if_measured=True,
    )
    results.ratio(
        "compare.pg_drain_vs_procrastinate",
        "taskq/pg drain 2 workers / procrastinate drain 2 workers",
        "peer.taskq_pg.drain_2",
        "peer.procrastinate.drain_2",
        if_measured=True,
    )
    results.ratio(
        "compare.pg_drain_vs_ceiling",
        "taskq/pg drain 2 workers / psycopg claim+complete ceiling",
        "peer.taskq_pg.drain_2",
        "pg.raw.claim_complete",
        if_measured=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="quick sizes (10,000-task drains), ~10 min")
    parser.add_argument("--runs", type=int, help="repetitions per figure (at least 3 for a median worth quoting)")
    parser.add_argument("--only", help=f"comma-separated groups: {', '.join(GROUPS)}")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/<timestamp>.json)")
    options = parser.parse_args(argv)

    sizes = QUICK if options.quick else FULL
    if options.runs:
        sizes = replace(sizes, runs=options.runs)
    groups = GROUPS if not options.only else tuple(name.strip() for name in options.only.split(","))
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")

    results = Results()
    results.meta.update(
        mode="quick" if options.quick else "full",
        sizes=sizes.__dict__,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine.describe(REPO),
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="taskq-bench-") as scratch:
        workdir = Path(scratch)
        if "sqlite" in groups:
            guarded(results, "sqlite", lambda: suite_sqlite.run(results, sizes, workdir, log))
        if "postgres" in groups:
            guarded(results, "postgres", lambda: suite_postgres.run(results, sizes, log))
        if "pool" in groups:
            from bench import suite_pool

            guarded(results, "pool", lambda: suite_pool.run(results, sizes, workdir, log))
        for peer in PEERS:
            if peer in groups:
                from bench import peers

                guarded(results, peer, lambda name=peer: peers.run(name, results, sizes, workdir, log))
    compare_with_peers(results)
    results.meta["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results.meta["load_average_at_end"] = os.getloadavg()

    table(results)
    print("\nTargets of issue 21\n")
    print(targets_table(results, ISSUE_21))
    print("\nTargets of issue 11\n")
    print(targets_table(results, ISSUE_11))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = options.out or REPO / "bench" / "results" / f"{stamp}.json"
    results.write_json(out)
    log(f"wrote {out} ({results.meta['elapsed_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
