"""Tasks for tests/process/test_crash_accounting.py, imported by its pools (`--import crash_tasks`). Like the tasks of
pool_tasks.py, each event is one O_APPEND line `<kind> <value> <pid>` in $TASKQ_TEST_RUNLOG, so the
tests count starts, returns and the processes they ran in outside the tasks table."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from pool_tasks import record

import taskq


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, it
    names one process for certain, even after the pid is reused."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def stamp(kind: str, n: int) -> None:
    """Like `record`, plus the wall-clock time, so a test can tell which events came before a kill."""
    with open(os.environ["TASKQ_TEST_RUNLOG"], "a") as log:
        log.write(f"{kind} {n} {os.getpid()} {time.time():.6f}\n")


@taskq.task(name="crash.work")
def work(n: int, seconds: float) -> int:
    stamp("start", n)
    time.sleep(seconds)
    stamp("done", n)  # the function has as good as returned: the task must not be failed or run again
    return n


@taskq.task(name="crash.pid")
def pid(n: int) -> int:
    record("ran", n)  # the line carries the worker's pid
    return n


@taskq.task(name="crash.system_exit")
def system_exit() -> None:
    record("ran", "system_exit")
    raise SystemExit(3)


@taskq.task(name="crash.keyboard_interrupt")
def keyboard_interrupt() -> None:
    record("ran", "keyboard_interrupt")
    raise KeyboardInterrupt()


@taskq.task(name="crash.nul_error")
def nul_error() -> None:
    record("ran", "nul_error")
    raise ValueError("bad \x00 byte")


@taskq.task(name="crash.nul_progress")
def nul_progress(ctx: Any) -> str:
    record("ran", "nul_progress")
    ctx.progress(50, "half\x00way")
    ctx.flush_progress()
    return "finished"


@taskq.task(name="crash.spawn_child")
def spawn_child(tag: str, detach: bool, then_sleep: float) -> str:
    """Start `sleep 300` (in a session of its own when `detach`), record `child-<tag> <pid>:<start time>`,
    then return or sleep."""
    child = subprocess.Popen(["sleep", "300"], start_new_session=detach)
    record(f"child-{tag}", f"{child.pid}:{start_time(child.pid)}")
    time.sleep(then_sleep)
    return tag


@taskq.task(name="crash.kill_own_worker", max_retries=0, priority=10)
def kill_own_worker(n: int) -> None:
    """Dies at once the way an OOM kill looks to the pool: SIGKILL of its own worker process."""
    record("killed", n)
    os.kill(os.getpid(), signal.SIGKILL)


@taskq.task(name="crash.raises")
def raises(message: str) -> None:
    record("ran", "raises")
    raise ValueError(message)
