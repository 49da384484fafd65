"""Fan-out and fan-in: scan a folder with one child task per file, then summarise in a continuation.

Run it end to end (it enqueues the scan, starts a worker pool, prints the summary, stops the pool):

    python examples/scan_folder.py FOLDER [--db sqlite:///scan.db] [--workers 4]

Or enqueue into a pool you run yourself:

    python -m taskq --db sqlite:///scan.db --import examples.scan_folder worker &
    python -m taskq --db sqlite:///scan.db --import examples.scan_folder enqueue scan.folder --args '["src"]'
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import taskq
from taskq.context import TaskContext

REPO_ROOT = Path(__file__).resolve().parent.parent


@taskq.task(name="scan.folder", then="scan.summary")
def scan_folder(ctx: TaskContext, folder: str) -> None:
    """One child per regular file. The parent returns at once and waits (status waiting_for_children,
    progress = finished children / all children); scan.summary runs once the last child finished."""
    files = sorted(str(path) for path in Path(folder).rglob("*") if path.is_file())
    ctx.spawn_children([("scan.file", [path]) for path in files])


@taskq.task(name="scan.file", max_retries=2)
def scan_file(path: str) -> dict[str, Any]:
    """Runs on any worker, in parallel with its siblings; retried on its own if it fails."""
    data = Path(path).read_bytes()
    return {"path": path, "bytes": len(data), "lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}


@taskq.task(name="scan.summary")
def summary(ctx: TaskContext, scan_id: int) -> dict[str, Any]:
    """The continuation: receives the parent's id and reads its children's results from the store."""
    results = [child.result for child in ctx.store.children_results(scan_id)]
    biggest = max(results, key=lambda r: r["bytes"], default=None)
    return {
        "files": len(results),
        "bytes": sum(r["bytes"] for r in results),
        "lines": sum(r["lines"] for r in results),
        "biggest": biggest and biggest["path"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Scan FOLDER with one task per file and print a summary.")
    parser.add_argument("folder")
    parser.add_argument("--db", default="sqlite:///scan.db")
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    if not Path(options.folder).is_dir():
        parser.error(f"{options.folder} is not a folder")
    store = taskq.open_store(options.db)
    scan_id = store.enqueue("scan.folder", [str(Path(options.folder).resolve())]).id
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "taskq", "--db", options.db, "--import", "examples.scan_folder"]
    pool = subprocess.Popen([*command, "worker", "--workers", str(options.workers)], env=env, stderr=subprocess.DEVNULL)
    try:
        while True:
            scan = store.require(scan_id)
            done = store.list(name="scan.summary", limit=1000)
            mine = next((task for task in done if task.args == [scan_id] and not task.is_active), None)
            if mine is not None or scan.status in (taskq.Status.FAILED, taskq.Status.CANCELLED):
                break
            print(f"\rscan {scan_id}: {scan.status.value} {scan.progress:.0f}%", end="", file=sys.stderr)
            time.sleep(0.2)
        print(file=sys.stderr)
        if mine is None or mine.status is not taskq.Status.COMPLETED:
            print(f"scan {scan_id} {scan.status.value}: {scan.error or (mine and mine.error)}")
            return 1
        print(f"scan {scan_id}: {mine.result}")
        return 0
    finally:
        pool.terminate()
        pool.wait(60)
        store.dispose()


if __name__ == "__main__":
    sys.exit(main())
