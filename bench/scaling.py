"""`python -m bench.scaling`: the scaling curve of issue 21 point 5, as a table and a PNG chart.

Drain rate (pool start to all done, like every drain in bench/) with 1, 2, 4 and 8 workers on SQLite
and PostgreSQL, for three kinds of task: no-ops, 2 ms sleeps (a blocking call, I/O-like) and ~5 ms of
pure-Python CPU work. Then claim latency (one `store.claim`, p50 and p95) on a table that holds 0 and
then `--finished-rows` finished rows, filled by INSERT .. SELECT as bench/lookups.py does: the claim
index covers pending rows only, so the latency should stay flat.

    python -m bench.scaling                                   # full sizes: 10,000 no-ops, 10,000,000 rows
    python -m bench.scaling --quick                           # a few minutes: smaller drains, 1,000,000 rows
    python -m bench.scaling --only sqlite --workers 1,2 --finished-rows 0 --png /tmp/curve.png

Worker counts are run in ABBA order within each (dialect, kind) so the drift of a shared machine does not
lean on one end of the curve; the 1-minute load average is printed next to each row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import taskq
from bench import lookups
from bench.peers.taskq_peer import TaskqPeer
from bench.suite_pool import CPU_TASK, SLEEP_TASK, SLEEP_TASK_MS, _drain_named
from bench.tasks import calibrate_burn

DIALECTS = ("sqlite", "postgresql")
KINDS = ("noop", "sleep", "cpu")
CLAIM_SAMPLES = 1_000  # claims timed per latency figure


@dataclass
class Curve:
    dialect: str
    kind: str
    rates: dict[int, list[float]] = field(default_factory=dict)  # workers -> tasks/s samples
    loads: list[float] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def abba(values: Sequence[int], runs: int) -> list[int]:
    """1 2 4 8 8 4 2 1 1 2 ...: each run alternates direction."""
    order: list[int] = []
    for run in range(runs):
        order += list(values) if run % 2 == 0 else list(reversed(values))
    return order


def drain_curve(
    dialect: str, kind: str, count: int, workers: Sequence[int], runs: int, iterations: int, workdir: Path
) -> Curve:
    name, args = {"noop": ("bench.tasks.noop", []), "sleep": (SLEEP_TASK, [SLEEP_TASK_MS])}.get(
        kind, (CPU_TASK, [iterations])
    )
    curve = Curve(dialect, kind)
    peer = TaskqPeer(dialect)
    worker_log = workdir / "scaling-workers.log"
    for number in abba(workers, runs):
        peer.setup(workdir)
        try:
            curve.loads.append(os.getloadavg()[0])
            rate = _drain_named(peer, name, count, args, number, worker_log)
        finally:
            peer.teardown()
        curve.rates.setdefault(number, []).append(rate)
        log(f"{dialect} {kind} x{count:,}, {number} worker(s): {rate:,.0f}/s (load {curve.loads[-1]:.1f})")
    return curve


def claim_latencies(store: taskq.Store, samples: int = CLAIM_SAMPLES) -> tuple[float, float]:
    """(p50, p95) ms of one store.claim, each claimed task completed untimed, on `samples` fresh tasks."""
    for start in range(0, samples, 1_000):
        store.enqueue_many([taskq.TaskRequest("bench.tasks.noop") for _ in range(min(1_000, samples - start))])
    worker = "bench-latency"
    timings = []
    while True:
        started = time.perf_counter()
        task = store.claim(worker)
        timings.append(1000.0 * (time.perf_counter() - started))
        if task is None:
            break
        store.complete(task.id, None, worker_id=worker, attempt=task.attempts)
    timings.pop()  # the empty claim at the end
    timings.sort()
    return statistics.median(timings), timings[max(0, round(0.95 * len(timings)) - 1)]


def claim_flatness(dialect: str, finished_rows: int, workdir: Path) -> list[tuple[int, float, float]]:
    """[(finished rows, p50 ms, p95 ms)] at 0, a tenth and all `finished_rows`, filled in 1,000,000-row
    INSERT .. SELECT steps."""
    peer = TaskqPeer(dialect)
    peer.setup(workdir)
    assert peer.store is not None
    store, rows = peer.store, []
    fill = lookups.fill_sqlite if dialect == "sqlite" else lookups.fill_postgres
    try:
        present = 0
        for target in sorted({0, finished_rows // 10, finished_rows}):
            while present < target:
                step = min(1_000_000, target - present)
                fill(store, step)
                present += step
                log(f"{dialect}: {present:,} finished rows")
            p50, p95 = claim_latencies(store)
            rows.append((present, p50, p95))
            log(f"{dialect} claim at {present:,} finished rows: p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    finally:
        peer.teardown()
    return rows


def table(curves: list[Curve], workers: Sequence[int]) -> str:
    head = "| dialect | task | " + " | ".join(f"{w} worker{'s' if w > 1 else ''} /s" for w in workers)
    lines = [head + f" | {workers[-1]} / 1 | load (1 min) |", "|---|---|" + "---:|" * (len(workers) + 2)]
    for curve in curves:
        medians = {w: statistics.median(curve.rates[w]) for w in workers if w in curve.rates}
        cells = " | ".join(f"{medians[w]:,.0f}" if w in medians else "-" for w in workers)
        scale = medians.get(workers[-1], 0) / medians[workers[0]] if medians.get(workers[0]) else float("nan")
        load = f"{min(curve.loads):.1f}-{max(curve.loads):.1f}" if curve.loads else "-"
        lines.append(f"| {curve.dialect} | {curve.kind} | {cells} | {scale:.2f}x | {load} |")
    return "\n".join(lines)


def chart(curves: list[Curve], workers: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(curve.kind for curve in curves))
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for axis, kind in zip(axes[0], kinds, strict=True):
        for curve in (c for c in curves if c.kind == kind):
            shown = [w for w in workers if w in curve.rates]
            axis.plot(shown, [statistics.median(curve.rates[w]) for w in shown], marker="o", label=curve.dialect)
        axis.set_title({"noop": "no-ops", "sleep": f"{SLEEP_TASK_MS:g} ms sleeps", "cpu": "~5 ms CPU"}[kind])
        axis.set_xlabel("workers")
        axis.set_ylabel("tasks/s (pool start to all done)")
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(workers), [str(w) for w in workers])
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: minutes, not tens of minutes")
    parser.add_argument("--only", default=",".join(DIALECTS), help="sqlite,postgresql")
    parser.add_argument("--kinds", default=",".join(KINDS), help="noop,sleep,cpu")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=1, help="repetitions of each curve (ABBA order)")
    parser.add_argument("--noops", type=int, help="no-op tasks per drain (10,000; quick 4,000)")
    parser.add_argument("--sleeps", type=int, help="sleeping tasks per drain (4,000; quick 1,000)")
    parser.add_argument("--cpus", type=int, help="CPU-bound tasks per drain (2,000; quick 600)")
    parser.add_argument("--finished-rows", type=int, help="for the claim latency (10,000,000; quick 1,000,000)")
    parser.add_argument("--png", type=Path, default=Path("bench/results/scaling.png"))
    options = parser.parse_args(argv)
    quick = options.quick
    counts = {
        "noop": options.noops or (4_000 if quick else 10_000),
        "sleep": options.sleeps or (1_000 if quick else 4_000),
        "cpu": options.cpus or (600 if quick else 2_000),
    }
    finished_rows = options.finished_rows if options.finished_rows is not None else (1_000_000 if quick else 10_000_000)
    dialects = [d.strip() for d in options.only.split(",") if d.strip()]
    kinds = [k.strip() for k in options.kinds.split(",") if k.strip()]
    workers = [int(w) for w in options.workers.split(",")]
    print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()}")

    curves: list[Curve] = []
    latencies: dict[str, list[tuple[int, float, float]]] = {}
    iterations = calibrate_burn() if "cpu" in kinds else 0
    with tempfile.TemporaryDirectory(prefix="taskq-scaling-") as scratch:
        workdir = Path(scratch)
        for dialect in dialects:
            if dialect == "postgresql" and (missing := TaskqPeer(dialect).missing()):
                log(f"postgresql SKIPPED: {missing}")
                continue
            for kind in kinds:
                curves.append(drain_curve(dialect, kind, counts[kind], workers, options.runs, iterations, workdir))
            latencies[dialect] = claim_flatness(dialect, finished_rows, workdir)
    sizes = ", ".join(f"{kind} {counts[kind]:,}" for kind in kinds)
    print(f"\nDrain rate by workers ({sizes} tasks per drain; median of {options.runs})\n")
    print(table(curves, workers))
    print("\nClaim latency (one store.claim) by finished rows in the table\n")
    print("| dialect | finished rows | claim p50 ms | claim p95 ms |\n|---|---:|---:|---:|")
    for dialect, rows in latencies.items():
        for present, p50, p95 in rows:
            print(f"| {dialect} | {present:,} | {p50:.3f} | {p95:.3f} |")
    print(f"\nload average at end {os.getloadavg()}")
    if curves:
        options.png.parent.mkdir(parents=True, exist_ok=True)
        chart(curves, workers, options.png)
        print(f"chart: {options.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
