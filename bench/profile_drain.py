"""`python -m bench.profile_drain [--tasks N] [--workers K] [--seconds S]`: where a worker's time goes
during a no-op drain on SQLite, from py-spy samples of every worker (wall-clock samples, idle included).

Each sample is put in the first bucket its stack matches, innermost frame first:
- lock wait: the store's jittered sleep after "database is locked" (`Store._retrying`),
- BEGIN / COMMIT: taking SQLite's write lock, and committing (WAL append) in the driver path,
- other SQL: the claim and outcome statements inside the transaction,
- idle wait: a worker waiting for work or a wake-up,
- task, log/status, other Python: the task itself, log and status lines, everything else.
These are the figures issue 21 asks of a one-writer design: how much of a worker is lock and commit.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.peers.taskq_peer import TaskqPeer

# Wall-clock samples (--idle: sleeping and waiting count), 500 a second, without pausing the worker.
SPY = ("py-spy", "record", "--rate", "500", "--idle", "--format", "raw", "--nonblocking")

# What each bucket matches in one main-thread stack ("Class.function (file:line)" frames): the leaf
# frame first, for the lines that wait in C (a sleep, SQLite's COMMIT); then any frame, in this order.
ANY_FRAME = (
    ("other SQL (the claim and outcome statements)", re.compile(r"^SqliteHotPath\.(fetch_all|execute_many|insert) ")),
    (
        "rows to Task objects, values to SQL parameters",
        re.compile(r"^(Task\.from_row|row_as_mapping|_Compiled\.bind) "),
    ),
    ("log lines", re.compile(r"\(logging/")),
    ("status lines to the supervisor", re.compile(r"^Worker\.report ")),
    ("task code", re.compile(r"^noop \(bench/tasks\.py")),
    ("idle wait", re.compile(r"^Worker\.(_idle_wait|idle_wait|wait_for_work) ")),
)


def _line(path: str, text: str) -> int:
    """The line number of `text` in a file of taskq (read, so that edits elsewhere do not break us)."""
    source = (Path(__file__).resolve().parent.parent / path).read_text().splitlines()
    return next(number for number, line in enumerate(source, 1) if text in line)


def leaf_buckets() -> dict[str, str]:
    """Leaf frame -> bucket, for the three lines where a worker waits on the database."""
    facade, hot = "taskq/store/facade.py", "taskq/store/hot.py"
    sleep = _line(facade, "time.sleep(random.uniform")
    begin = _line(hot, 'execute("BEGIN IMMEDIATE")')
    commit = _line(hot, 'execute("COMMIT")')
    return {
        f"Store._retrying ({facade}:{sleep})": "lock wait (jittered sleep after 'database is locked')",
        f"SqliteHotPath.write ({hot}:{begin})": "BEGIN IMMEDIATE",
        f"SqliteHotPath.write ({hot}:{commit})": "COMMIT",
    }


def classify(stack: list[str], leaves: dict[str, str]) -> str:
    """The bucket of one sample; `stack` is outermost first, as py-spy's raw format writes it."""
    if stack[-1] in leaves:
        return leaves[stack[-1]]
    for bucket, pattern in ANY_FRAME:
        if any(pattern.search(frame) for frame in stack):
            return bucket
    return "other Python"


def breakdown(raw: Path) -> collections.Counter[str]:
    """Samples per bucket, of the worker's main thread only (its heartbeat thread mostly sleeps)."""
    leaves = leaf_buckets()
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if count.isdigit() and not frames[0].startswith("Thread._bootstrap"):
            counts[classify(frames, leaves)] += int(count)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30_000, help="no-ops queued before the pool starts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each worker is sampled")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw samples (collapsed stacks) here")
    options = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        parser.error("py-spy is not installed: pip install -r bench/requirements.txt")
    peer = TaskqPeer("sqlite")
    with tempfile.TemporaryDirectory(prefix="taskq-profile-") as scratch:
        workdir = Path(scratch)
        peer.setup(workdir)
        try:
            peer.prefill_noops(options.tasks)
            log_path = workdir / "pool.log"
            process = peer.start_pool(log_path, peer.settings, options.workers)
            try:
                procs.wait_for(lambda: peer.count("completed") > 0, timeout=60.0, what="the drain to start")
                workers = [pid for pid in procs.descendants(process.pid) if "taskq-worker" in _name(pid)]
                outputs = [workdir / f"worker-{pid}.txt" for pid in workers]
                started = time.monotonic()
                duration = str(max(1, round(options.seconds)))
                samplers = [
                    subprocess.Popen(
                        [*SPY, "--pid", str(pid), "--duration", duration, "--output", str(out)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for pid, out in zip(workers, outputs, strict=True)
                ]
                for sampler in samplers:
                    sampler.wait(options.seconds + 60)
                sampled = time.monotonic() - started
                done = peer.count("completed")
            finally:
                procs.stop(process)
        finally:
            peer.teardown()
        total: collections.Counter[str] = collections.Counter()
        for out in outputs:
            if out.exists():
                total += breakdown(out)
                if options.keep:
                    options.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, options.keep / out.name)
    samples = sum(total.values())
    print(f"{len(outputs)} workers sampled for {sampled:.1f} s each, {samples:,} samples; {done:,} tasks done by then")
    print("\n| where a worker's wall time goes | share |\n|---|---:|")
    for bucket, count in total.most_common():
        print(f"| {bucket} | {100.0 * count / samples:.1f} % |")
    return 0


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
