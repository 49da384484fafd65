"""Run a real `taskq worker` pool as a subprocess tree and observe it from outside."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import logevents

SUPPORT_DIR = Path(__file__).resolve().parent  # tests/support: the task modules a pool imports (`--import pool_tasks`)
REPO = SUPPORT_DIR.parents[1]  # the checkout, whose taskq the workers run


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def is_worker(pid: int) -> bool:
    """A worker process: forked by the fork server (it renames itself taskq-worker-N) or started as
    `python -m taskq.worker` (where there is no fork server)."""
    proc = Path("/proc") / str(pid)
    try:
        return (proc / "comm").read_text().startswith("taskq-worker") or b"taskq.worker" in (
            proc / "cmdline"
        ).read_bytes()
    except OSError:
        return False


def child_pids(pid: int, *, workers_only: bool = False) -> list[int]:
    """Live (not zombie) direct children of `pid`, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if workers_only and not is_worker(int(entry.name)):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (workers run in sessions of their own, so a process group
    does not reach them)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = child_pids(frontier.pop())
        found += children
        frontier += children
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` first (so nothing is respawned), then everything below it, until nothing is left."""
    below = descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while below:
        for child in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        below = [child for child in below if Path(f"/proc/{child}").exists() and not _is_zombie(child)]


def _is_zombie(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class PoolProcess:
    def __init__(
        self, directory: Path, database_url: str, *args: str, settings: Path | None = None, log_format: str = "text"
    ) -> None:
        """`log_format="json"` runs it with `--log-format json`, so tests read its events with `events()`."""
        self.log_format = log_format
        if log_format != "text":
            args = (*args, "--log-format", log_format)
        self.log_path = directory / f"pool-{time.monotonic_ns()}.log"
        self.runlog = directory / "runs.log"
        env = {
            **os.environ,
            # The checkout's own taskq before any installed one: a git worktree's tests run its own code.
            "PYTHONPATH": os.pathsep.join([str(SUPPORT_DIR), str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TASKQ_TEST_RUNLOG": str(self.runlog),
            "TASKQ_DATABASE_URL": "",
        }
        command = [sys.executable, "-m", "taskq", "--db", database_url, "--import", "pool_tasks"]
        if settings is not None:
            command += ["--settings", str(settings)]
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in wait())
        self.process = subprocess.Popen(
            [*command, "worker", *args],
            cwd=directory,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a test can SIGKILL the whole tree
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def events(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The JSON log lines of `event` (all events when None) whose fields equal `fields` (a json pool)."""
        assert self.log_format == "json", "events() reads the JSON lines of a pool started with log_format='json'"
        return logevents.events(self.log(), event, **fields)

    def count(self, event: str) -> int:
        """How many times `event` was logged, in either format."""
        if self.log_format == "json":
            return len(self.events(event))
        return self.log().count(event)

    def workers(self) -> list[int]:
        return child_pids(self.process.pid, workers_only=True)

    def spawned_workers(self) -> list[int]:
        """Pids of the workers the pool logged as spawned (`worker_spawned name=... pid=P`) that are still
        its live children: unlike `workers()`, never a helper process the supervisor may also start."""
        if self.log_format == "json":
            spawned = [str(line["pid"]) for line in self.events("worker_spawned")]
        else:
            spawned = re.findall(r"worker_spawned name=\S+ pid=(\d+)", self.log())
        live = set(self.workers())
        return [int(pid) for pid in dict.fromkeys(spawned) if int(pid) in live]

    def wait_ready(self, workers: int, timeout: float = 20.0) -> None:
        wait_for(lambda: self.count("worker_started") >= workers, timeout, what=f"{workers} workers started")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill_tree(self) -> None:
        kill_tree(self.process.pid)
        self.wait(10)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        stop_gracefully(self.process)
        self._log.close()


def stop_gracefully(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a pool, as systemd stops it; what is still alive after 30 s is killed with its tree."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait(10)


def runs(runlog: Path, kind: str) -> list[str]:
    if not runlog.exists():
        return []
    return [line.split()[1] for line in runlog.read_text().splitlines() if line.split()[0] == kind]
