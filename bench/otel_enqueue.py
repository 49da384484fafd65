"""`python -m bench.otel_enqueue [--pairs 8] [--tasks 10000] [--before REV]`: what OpenTelemetry support costs
an enqueue when no SDK is configured (issue 23: within 3 % of before).

Each sample is a fresh interpreter doing `--tasks` single enqueues (`store.enqueue`, the SQLite driver path)
into a fresh SQLite file, after 500 untimed ones. Samples alternate between this checkout (opentelemetry-api
installed, no SDK: what most installs with the `otel` extra run) and `--before` (default: the commit before
taskq/tracing.py came in), extracted with `git archive`, in ABBA order; the ratio now / before is taken
pair by pair, so the drift of a shared machine cancels out. CPU seconds of the enqueuing process are the
figure (other sessions' load moves them much less than wall time); wall-clock enqueues/s are shown beside.
Each sample is also timed in blocks of BLOCK enqueues: on a busy machine the ratio of the fastest blocks
(the least disturbed ones) resolves a difference of a few percent that the per-pair spread hides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WARM_UP = 500
BLOCK = 500  # enqueues per timed block


def sample(database: str, tasks: int) -> dict[str, Any]:
    """One sample, in this process: the taskq on sys.path first (the checkout under test). Timed in blocks
    of BLOCK enqueues, so the fastest block (the one least disturbed by other sessions) can be compared too."""
    import taskq

    store = taskq.open_store(database)
    for i in range(WARM_UP):
        store.enqueue("taskq.echo", [i])
    blocks = []
    wall = time.perf_counter()
    for start in range(0, tasks, BLOCK):
        cpu = time.process_time()
        for i in range(start, min(tasks, start + BLOCK)):
            store.enqueue("taskq.echo", [i])
        blocks.append((time.process_time() - cpu) / (min(tasks, start + BLOCK) - start))
    wall = time.perf_counter() - wall
    store.dispose()
    return {"cpu": sum(blocks) * BLOCK, "best": min(blocks), "wall": wall, "taskq": taskq.__file__}


def run_sample(checkout: Path, tasks: int, directory: Path, index: int) -> dict[str, Any]:
    database = f"sqlite:///{directory / f'sample-{index}.db'}"
    code = f"import json, sys; sys.path.insert(0, {str(checkout)!r}); "
    code += f"sys.path.insert(1, {str(REPO / 'bench')!r}); import otel_enqueue as b; "
    code += f"print(json.dumps(b.sample({database!r}, {tasks})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=directory)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(result["taskq"]).startswith(str(checkout)), result  # the checkout meant, not an installed taskq
    return result


def before_tracing() -> str:
    added = subprocess.run(
        ["git", "log", "-n1", "--diff-filter=A", "--format=%H", "HEAD", "--", "taskq/tracing.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.strip()
    return f"{added}^" if added else "HEAD"


def extract(revision: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(["git", "archive", revision], capture_output=True, check=True, cwd=REPO).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="ABBA pairs (each: one sample before, one now)")
    parser.add_argument("--tasks", type=int, default=10_000, help="timed single enqueues per sample")
    parser.add_argument("--before", default=None, help="the revision to compare with (default: before tracing)")
    options = parser.parse_args()
    revision = options.before or before_tracing()
    with tempfile.TemporaryDirectory(prefix="taskq-otel-bench-") as temp:
        directory = Path(temp)
        before = extract(revision, directory / "before")
        ratios, walls = [], []
        rates: dict[str, list[float]] = {"before": [], "now": []}
        best: dict[str, list[float]] = {"before": [], "now": []}  # each sample's fastest block, s per enqueue
        for pair in range(options.pairs):
            order = [("before", before), ("now", REPO)]
            if pair % 2:
                order.reverse()  # ABBA: neither side always runs first
            got = {}
            for name, checkout in order:
                got[name] = run_sample(checkout, options.tasks, directory, len(rates["now"]) * 2 + len(got))
                rates[name].append(options.tasks / float(got[name]["wall"]))
            ratios.append(float(got["now"]["cpu"]) / float(got["before"]["cpu"]))
            best["before"].append(got["before"]["best"])
            best["now"].append(got["now"]["best"])
            walls.append(float(got["before"]["wall"]) / float(got["now"]["wall"]))
            print(f"pair {pair + 1}: cpu now/before {ratios[-1]:.3f}", file=sys.stderr, flush=True)
    short = subprocess.check_output(["git", "rev-parse", "--short", revision], cwd=REPO, text=True).strip()
    print(f"before = {short} ({revision})")
    print(f"{options.pairs} pairs of {options.tasks:,} single enqueues on SQLite, no SDK configured\n")
    print("| figure | median | min | max |")
    print("| --- | --- | --- | --- |")
    for label, values in (("CPU seconds per enqueue, now / before", ratios), ("wall-clock rate, now / before", walls)):
        print(f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
    print(f"| fastest block of all samples, now / before | {min(best['now']) / min(best['before']):.3f} | | |")
    for name in ("before", "now"):
        values = rates[name]
        print(f"| enqueues/s, {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} |")


if __name__ == "__main__":
    main()
