"""`python -m bench.async_tasks`: issue 15's figures for `async def` tasks, in one run.

1. 1,000 tasks of `await asyncio.sleep(1)` drained by one worker at `--concurrency 100`, from pool start
   to the last completion (target: at most 12 s; the floor is 10 s, ten rounds of 100).
2. Sync drains by one worker, this checkout against `--before REV` (default: the commit before async tasks
   came in) run from a worktree of that commit: 2,000 CPU-bound tasks of ~5 ms, and 10,000 no-ops. Runs
   are interleaved (before, now, before, now, ...) and ratios taken pair by pair, so a shared machine's
   drift cancels out. Target: now / before >= 1 for the CPU-bound drain (not slower than before).
3. The same CPU-bound drain at `--concurrency 4` (sync tasks through the concurrent loop, one at a time
   in its sync thread) against concurrency 1, both from this checkout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import procs
from bench.peers.taskq_peer import TaskqPeer
from bench.results import Results, table
from bench.tasks import calibrate_burn

REPO = Path(__file__).resolve().parent.parent
BEFORE_ASYNC = "1459e46"  # main just before `async def` tasks and the concurrent loop
NAP_TASKS, NAP_SECONDS, NAP_CONCURRENCY = 1_000, 1.0, 100
CPU_TASKS, NOOP_TASKS = 2_000, 10_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_pool(checkout: Path, peer: TaskqPeer, options: Sequence[str], log_path: Path) -> subprocess.Popen:
    """`python -m taskq worker` with `checkout`'s taskq: it is the working directory, which `-m` puts
    first on the path (before the editable install), and first on PYTHONPATH for the workers."""
    arguments = [sys.executable, "-m", "taskq", "worker", "--settings", str(peer.settings), "--db", peer.url]
    env = procs.bench_env({"PYTHONPATH": str(checkout)})
    with open(log_path, "ab") as output:
        return subprocess.Popen(
            [*arguments, *options],
            cwd=checkout,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def drain_seconds(checkout: Path, workdir: Path, name: str, count: int, args: list, options: Sequence[str]) -> float:
    """Seconds from pool start to `count` tasks completed, on a fresh SQLite database."""
    peer = TaskqPeer("sqlite")
    scratch = Path(tempfile.mkdtemp(dir=workdir))
    peer.setup(scratch)
    try:
        peer.prefill(name, count, args)
        started = time.monotonic()
        process = start_pool(checkout, peer, options, scratch / "pool.log")
        try:
            finished = procs.wait_for(
                lambda: peer.count("completed", name) >= count, timeout=max(120.0, count / 20), what=f"{count} {name}"
            )
        finally:
            procs.stop(process)
        return finished - started
    finally:
        peer.teardown()


def worktree_of(revision: str, workdir: Path) -> Path:
    path = workdir / f"taskq-{revision}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), revision], check=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.async_tasks", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each figure")
    parser.add_argument("--before", default=BEFORE_ASYNC, help="the revision to compare sync drains with")
    options = parser.parse_args(argv)
    results = Results()
    iterations = calibrate_burn()
    with tempfile.TemporaryDirectory(prefix="taskq-bench-async-") as scratch:
        workdir = Path(scratch)
        before = worktree_of(options.before, workdir)
        try:
            for run in range(1, options.runs + 1):
                log(f"run {run}/{options.runs}")
                seconds = drain_seconds(
                    REPO,
                    workdir,
                    "bench.tasks.nap",
                    NAP_TASKS,
                    [NAP_SECONDS],
                    ["--workers", "1", "--concurrency", str(NAP_CONCURRENCY)],
                )
                results.add(
                    "async.nap_drain_s",
                    f"{NAP_TASKS:,} x await asyncio.sleep({NAP_SECONDS:g}), 1 worker, concurrency {NAP_CONCURRENCY}",
                    "s",
                    seconds,
                    note="pool start -> last completed; floor 10 s",
                )
                one = ["--workers", "1"]
                for label, checkout in (("before", before), ("now", REPO)):
                    cpu = drain_seconds(checkout, workdir, "bench.tasks.cpu_bound", CPU_TASKS, [iterations], one)
                    results.add(
                        f"async.cpu_{label}",
                        f"{CPU_TASKS:,} CPU-bound 5 ms tasks, 1 worker, {label}",
                        "tasks/s",
                        CPU_TASKS / cpu,
                    )
                    noop = drain_seconds(checkout, workdir, "bench.tasks.noop", NOOP_TASKS, [], one)
                    results.add(
                        f"async.noop_{label}", f"{NOOP_TASKS:,} no-ops, 1 worker, {label}", "tasks/s", NOOP_TASKS / noop
                    )
                cpu4 = drain_seconds(
                    REPO, workdir, "bench.tasks.cpu_bound", CPU_TASKS, [iterations], [*one, "--concurrency", "4"]
                )
                results.add(
                    "async.cpu_concurrency4",
                    f"{CPU_TASKS:,} CPU-bound 5 ms tasks, 1 worker, concurrency 4",
                    "tasks/s",
                    CPU_TASKS / cpu4,
                )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
    results.ratio("async.cpu_ratio", "CPU-bound drain now / before", "async.cpu_now", "async.cpu_before")
    results.ratio("async.noop_ratio", "no-op drain now / before", "async.noop_now", "async.noop_before")
    results.ratio(
        "async.cpu_concurrency_ratio", "CPU-bound drain concurrency 4 / 1", "async.cpu_concurrency4", "async.cpu_now"
    )
    table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
