"""Pool start-up as a user sees it (issue 21 point 3): `taskq worker` started -> first task completed,
and a settings edit -> the new worker started. Also `python -m bench.startup [--runs N]` on its own.

The first-task figure needs no polling precision: the task's row records `finished_at` (microseconds,
UTC), compared with `time.time()` taken just before the supervisor is started.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.peers.taskq_peer import NOOP, TaskqPeer

FIRST_TASK_WORKERS = 2  # the default pool


def first_task_ms(peer: TaskqPeer, workdir: Path) -> float:
    """ms from starting `taskq worker` (2 workers, one no-op already queued) to that task's finished_at."""
    handle = peer.store.enqueue(NOOP)
    log_path = workdir / "startup.log"
    started = time.time()
    process = peer.start_pool(log_path, peer.settings, FIRST_TASK_WORKERS)
    try:
        procs.wait_for(lambda: peer.count("completed", NOOP) >= 1, timeout=60.0, what="the first task")
    finally:
        procs.stop(process)
    task = peer.store.get(handle.id)
    assert task is not None and task.finished_at is not None
    return 1000.0 * (task.finished_at.timestamp() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args(argv)
    from bench.suite_pool import _start_and_rescale  # the pool suite's own measurement

    peer = TaskqPeer("sqlite")
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="taskq-startup-") as scratch:
        workdir = Path(scratch)
        for _ in range(options.runs):
            peer.setup(workdir)
            try:
                figures.setdefault("start -> first task completed", []).append(first_task_ms(peer, workdir))
            finally:
                peer.teardown()
            peer.setup(workdir)
            try:
                for name, value in _start_and_rescale(peer, workdir).items():
                    figures.setdefault(name, []).append(value)
            finally:
                peer.teardown()
    print("| figure (ms) | median | min | max | n |\n| --- | ---: | ---: | ---: | ---: |")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
