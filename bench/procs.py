"""Child processes of the benchmark: start in their own session, stop them, measure RSS, PSS and CPU of a
tree, and follow their log file as it grows."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this checkout first on the path, so `bench.*` and `taskq` import."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def start(arguments: Sequence[str], log_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python <arguments>` in a new session (its own process group), output to `log_path`."""
    log = open(log_path, "ab")  # noqa: SIM115  (the child owns it; closed when we stop it)
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=REPO,
        env=bench_env(extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Ask the process group we started to stop; kill the group if it has not after `grace` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
    process.wait()


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01, what: str = "condition") -> float:
    """Poll `condition` until true; returns time.monotonic() when it first was. Raises after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from /proc (children files need no psutil)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                queue.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of resident memory (VmHWM) for one process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def tree_cpu_percent(pid: int, seconds: float) -> float:
    """CPU used by the whole tree over `seconds`, in percent of one core."""
    before = {p: cpu_seconds(p) for p in descendants(pid)}
    time.sleep(seconds)
    after = {p: cpu_seconds(p) for p in descendants(pid)}
    used = sum(after[p] - before.get(p, 0.0) for p in after)
    return 100.0 * used / seconds


def pss_mb(pid: int) -> float:
    """Proportional set size of one process: its private pages plus its share of pages it shares with
    others (libraries, pages a fork inherited), so summing PSS over a tree counts every page once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def tree_pss_mb(pid: int) -> tuple[float, int]:
    """(total PSS in MB, number of processes) of pid and all its descendants, at any depth: workers
    forked from an intermediate process count as much as direct children."""
    tree = descendants(pid)
    return sum(pss_mb(p) for p in tree), len(tree)


class LogTail:
    """Follows a log file that other processes append to, noting when each new line was first seen.
    Timestamps written in the lines themselves may have second resolution; these are time.monotonic()
    values of this process, comparable with the moments the benchmark itself records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""
        self.lines: list[tuple[float, str]] = []  # (monotonic time first seen, line)

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                chunk = file.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        seen = time.monotonic()
        self.offset += len(chunk)
        parts = (self.partial + chunk).split(b"\n")
        self.partial = parts.pop()
        self.lines.extend((seen, part.decode(errors="replace")) for part in parts)

    def matching(self, pattern: str) -> list[tuple[float, re.Match[str]]]:
        regex = re.compile(pattern)
        return [(seen, match) for seen, line in self.lines if (match := regex.search(line))]

    def wait_for(self, pattern: str, count: int, timeout: float, interval: float = 0.001) -> list:
        """Poll until `count` lines match `pattern`; returns those (seen, match) pairs."""
        found: list = []

        def enough() -> bool:
            nonlocal found
            self.poll()
            found = self.matching(pattern)
            return len(found) >= count

        wait_for(enough, timeout, interval, what=f"{count} log lines matching {pattern!r} in {self.path}")
        return found
