"""Where the real pool's CPU goes per task on a no-op drain: the supervisor vs the workers (issue 21 point 1).

bench.writer_design measures the store's shapes with bare worker loops; this anchors them to the engine:
`taskq worker --workers N` drains no-ops, and between the first 1,000 tasks done and the last (start-up
left out), the CPU of the supervisor and of every process below it is read from /proc, per task. If the
workers' own per-task CPU (outside the store) dwarfs the store's serial part, one writer per host cannot
buy much on a box whose cores are all busy.

    PYTHONPATH=$PWD python -m bench.pool_cpu [--tasks 20000] [--runs 3] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.peers.taskq_peer import TaskqPeer

WARM_TASKS = 1000  # done before the CPU window opens: imports and worker start are not per-task cost


def _cpu(supervisor: int) -> tuple[float, float]:
    """(supervisor CPU s, CPU s of every process below it: fork server and workers)."""
    below = [pid for pid in procs.descendants(supervisor) if pid != supervisor]
    return procs.cpu_seconds(supervisor), sum(procs.cpu_seconds(pid) for pid in below)


def drain(workers: int, tasks: int, workdir: Path) -> tuple[float, float, float]:
    """(tasks/s in the window, supervisor µs/task, workers µs/task)."""
    peer = TaskqPeer()
    peer.setup(workdir)
    try:
        peer.prefill_noops(tasks)
        [pool] = peer.start_workers(workers, workdir / f"pool-{workers}.log")
        try:
            procs.wait_for(lambda: peer.finished() >= WARM_TASKS, timeout=120.0, interval=0.002, what="warm-up")
            done_before, started = peer.finished(), time.monotonic()
            sup_before, below_before = _cpu(pool.pid)
            procs.wait_for(lambda: peer.finished() >= tasks, timeout=300.0, interval=0.002, what="the drain")
            elapsed, sup_after, below_after = time.monotonic() - started, *_cpu(pool.pid)
        finally:
            procs.stop(pool)
        counted = tasks - done_before
        per_task = 1e6 / counted
        return counted / elapsed, (sup_after - sup_before) * per_task, (below_after - below_before) * per_task
    finally:
        peer.teardown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    samples: dict[int, list[tuple[float, float, float]]] = {n: [] for n in counts}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="taskq-pool-cpu-") as tmp:
        for run in range(args.runs):
            for workers in counts if run % 2 == 0 else counts[::-1]:  # ABBA
                sample = drain(workers, args.tasks, Path(tmp))
                samples[workers].append(sample)
                rate, sup, below = sample
                print(f"run {run + 1} x{workers}: {rate:,.0f}/s, {sup:.0f} + {below:.0f} µs", file=sys.stderr)
    loads.append(os.getloadavg()[0])
    print(f"\n{args.tasks:,} no-ops, {args.runs} ABBA runs, load average (1 min) {min(loads):.1f}-{max(loads):.1f}\n")
    print("| workers | drain/s median | supervisor CPU µs/task | workers CPU µs/task | all |")
    print("|---|---|---|---|---|")
    for workers in counts:
        rate, sup, below = (statistics.median(column) for column in zip(*samples[workers], strict=True))
        print(f"| {workers} | {rate:,.0f} | {sup:.0f} | {below:.0f} | {sup + below:.0f} |")


if __name__ == "__main__":
    main()
