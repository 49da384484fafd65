"""Time for an N-child fan-out to reach its continuation through a real worker pool.

    python bench/fan_out.py --children 10000 --workers 2 4 [--db URL] [--prefetch K]

For each worker count: a fresh database (a temporary SQLite file unless --db is given; a PostgreSQL
database is emptied first), a pool started and left to become ready, then one bench.fan_out task
enqueued; the clock runs from that enqueue to the moment bench.fan_in starts (its result), read back
from the database. Also reports children per second and the parent's own spawn transaction.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete

import taskq
from taskq.schema import tasks, workers

BENCH_DIR = Path(__file__).resolve().parent


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return value


def run_once(url: str, children: int, worker_count: int, prefetch: int, log_path: Path) -> dict[str, float]:
    store = taskq.open_store(url)
    store.write(lambda conn: (conn.execute(delete(tasks)), conn.execute(delete(workers))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "taskq", "--db", url, "--import", "fan_out_tasks", "worker"]
    command += ["--workers", str(worker_count), "--prefetch", str(prefetch)]
    with open(log_path, "w") as log:
        pool = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log_path.read_text().count("worker_started") >= worker_count, 60, "workers to start")
        parent_id = store.enqueue("bench.fan_out", [children]).id
        enqueued = time.time()
        fan_in = wait_until(
            lambda: next((t for t in store.list(name="bench.fan_in", status="completed")), None),
            600,
            "the continuation",
        )
        parent = store.require(parent_id)
        assert parent.status is taskq.Status.COMPLETED and parent.children_completed == children, parent
        reached = datetime.fromisoformat(fan_in.result).timestamp()
        spawn = parent.started_at
        first_child = min(t.started_at for t in store.children_results(parent_id) if t.started_at)
        return {
            "seconds": reached - enqueued,
            "children_per_second": children / (reached - enqueued),
            "spawn_seconds": first_child.timestamp() - spawn.timestamp() if spawn else float("nan"),
        }
    finally:
        pool.terminate()
        pool.wait(60)
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--prefetch", type=int, default=8)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file per run)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for worker_count in options.workers:
            url = options.db or f"sqlite:///{directory}/fan_out_{worker_count}.db"
            numbers = run_once(url, options.children, worker_count, options.prefetch, Path(directory) / "pool.log")
            print(
                f"children={options.children} workers={worker_count} prefetch={options.prefetch} "
                f"db={url.split(':')[0]} seconds_to_continuation={numbers['seconds']:.2f} "
                f"children_per_s={numbers['children_per_second']:.0f} spawn_s={numbers['spawn_seconds']:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
