"""Workers whose supervisor died (SIGKILL, the OOM killer) but which still run: a pool starting on their host
kills them before their tasks are recovered, so that no task runs twice at once and the host runs the
number of workers its pool wants (DESIGN.md rule 14).

Such an orphan already claims nothing more, enforces its tasks' timeouts itself and exits within
`shutdown_grace` (taskq/heartbeat.py: SupervisorWatch, OrphanGuard). Waiting for it could delay the new
pool by that grace; killing it costs what a whole-pool crash costs (docs/how-to/crash-semantics.md): its
executing task is a failed attempt if it had run 0.25 s, the tasks it held and never started go back
uncounted.

Which workers are orphans: the supervisor stamps its own pid and start time into the environment of the
processes it starts (`SUPERVISOR_ENV`), which /proc/<pid>/environ shows for a forked worker too; a worker of
this host and boot, alive, whose stamped supervisor is gone (or a zombie) is an orphan. A worker of a live
sibling pool on the same host, and any worker of another host, is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from datetime import datetime

from taskq.events import log_event
from taskq.identity import (  # the stamp lives there: the fork server starts before anything heavy is imported
    SUPERVISOR_ENV,
    UNKNOWN,
    WorkerIdentity,
    boot_id,
    hostname,
    process_start,
    process_state,
)
from taskq.maintenance import WORKER_ROW_TTL_SECONDS
from taskq.store import Store

KILL_WAIT_SECONDS = 5.0  # a SIGKILLed process is gone (or a zombie) within milliseconds; this is a backstop

log = logging.getLogger("taskq.pool")


def stamped_supervisor(pid: int) -> tuple[int, str] | None:
    """The supervisor stamped in a process's environment at its start, or None (not ours, not readable)."""
    try:
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")  # noqa: SIM115  (read at once)
    except OSError:
        return None
    prefix = SUPERVISOR_ENV.encode() + b"="
    for entry in environ:
        if entry.startswith(prefix):
            supervisor_pid, _, start = entry[len(prefix) :].decode(errors="replace").partition(":")
            if supervisor_pid.isdigit() and start:
                return int(supervisor_pid), start
    return None


def is_orphan(identity: WorkerIdentity) -> bool:
    """A live worker of this host and boot whose supervisor is certainly gone."""
    if identity.host != hostname() or identity.boot != boot_id() or UNKNOWN in (identity.boot, identity.start):
        return False
    if process_start(identity.pid) != identity.start or process_state(identity.pid) == "Z":
        return False  # gone meanwhile, or a zombie: nothing left to kill
    supervisor = stamped_supervisor(identity.pid)
    if supervisor is None:
        return False
    supervisor_pid, start = supervisor
    # A zombie supervisor is dead too: it runs nothing and its workers were re-parented already.
    return process_start(supervisor_pid) != start or process_state(supervisor_pid) == "Z"


def kill_group(pid: int) -> None:
    """SIGKILL the worker and its process group (what its tasks started), when it leads one, and wait
    until it is gone or a zombie (nothing may reap it: it is not our child)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.01)


class OrphanKiller:
    """Kills this host's orphaned workers of this database and recovers their tasks at once (a killed
    orphan may stay a zombie where nothing reaps re-parented processes, so the dead-worker rescuer, which
    counts a zombie as alive, would leave its tasks to their leases)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run_once(self, now: datetime) -> dict[str, int]:
        candidates = set(self.store.running_worker_ids())
        candidates.update(worker.id for worker in self.store.list_workers(alive_within=WORKER_ROW_TTL_SECONDS, now=now))
        killed = recovered = 0
        for worker_id in sorted(candidates):
            identity = WorkerIdentity.parse(worker_id)
            if identity is None or not is_orphan(identity):
                continue
            kill_group(identity.pid)
            reason = f"{worker_id} orphaned by a dead supervisor, killed"
            count = self.store.recover_worker(worker_id, reason=reason, now=now)
            self.store.unregister_worker(worker_id)
            log_event(log, logging.WARNING, "orphan_killed", worker_id=worker_id, tasks_recovered=count)
            killed += 1
            recovered += count
        return {"orphans_killed": killed, "recovered_from_orphans": recovered}
