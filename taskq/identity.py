"""Worker ids that say for certain whether their process is gone: `host:pid:name:boot:start`.

A pid alone is not enough (pids are reused), nor is a host name (a reboot keeps it). With the boot id
and the process's start time (clock ticks since boot, from /proc), a pool restarting on the same host
can tell a dead worker's tasks from a live one's and recover them at once instead of waiting for
their leases. Elsewhere (no /proc) ids carry zeros and nothing is ever judged dead from them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

UNKNOWN = "0"


@cache
def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    except OSError:
        return UNKNOWN


@cache
def hostname() -> str:
    return socket.gethostname()


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (`Z` for a zombie), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such live process.
    A zombie still counts as alive: its supervisor has not reaped it yet and will settle its tasks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19]  # field 22 of stat(5); [0] here is field 3 (state)


@dataclass(frozen=True)
class WorkerIdentity:
    host: str
    pid: int
    name: str
    boot: str
    start: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.name}:{self.boot}:{self.start}"

    @classmethod
    def of_process(cls, pid: int, name: str) -> WorkerIdentity:
        start = process_start(pid) if boot_id() != UNKNOWN else None
        return cls(hostname(), pid, name, boot_id(), start or UNKNOWN)

    @classmethod
    def parse(cls, worker_id: str) -> WorkerIdentity | None:
        parts = worker_id.rsplit(":", 4)
        if len(parts) != 5 or not parts[1].isdigit():
            return None
        host, pid, name, boot, start = parts
        return cls(host, int(pid), name, boot, start)

    def is_certainly_dead(self) -> bool:
        """True only when this is a worker of this host since its last boot and its process is gone."""
        if self.host != hostname() or self.boot != boot_id() or UNKNOWN in (self.boot, self.start):
            return False
        return process_start(self.pid) != self.start


# The supervisor that started a process, stamped in its environment (/proc/<pid>/environ shows it, a forked
# worker's too): a pool starting later tells an orphan of a dead supervisor by it (taskq/orphans.py).
SUPERVISOR_ENV = "TASKQ_SUPERVISOR"  # "<pid>:<start>"


def supervisor_stamp() -> str:
    """This process as the supervisor of the workers it starts: `<pid>:<start>`, or "" without /proc."""
    start = process_start(os.getpid()) if boot_id() != UNKNOWN else None
    return f"{os.getpid()}:{start}" if start else ""


def supervisor_environment() -> dict[str, str]:
    """The environment for the fork server and the workers: this one, plus the supervisor's stamp."""
    stamp = supervisor_stamp()
    return {**os.environ, SUPERVISOR_ENV: stamp} if stamp else dict(os.environ)
