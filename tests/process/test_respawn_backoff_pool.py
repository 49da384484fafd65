"""Issue 19, point 7: the respawn back-off is per worker slot, so workers dying young never leave the pool
without workers for long, and one crash-looping slot never holds back the respawn of another.

Real pools, real SIGKILLs: from a task that kills its own worker (what an OOM kill looks like to the pool,
tests/support/crash_tasks.py) and from the test itself, playing the OOM killer on one slot.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

from poolkit import PoolProcess, wait_for

from taskq.model import TERMINAL_STATUSES, Status
from taskq.store import Store

# The supervisor's lines about its workers: "2026-12-06 07:00:00,123 INFO [supervisor pid 1] worker_spawned ..."
EVENT = re.compile(r"^(\S+ \S+) \S+ \[supervisor pid \d+\] (worker_spawned|worker_exited) name=(\S+) pid=(\d+)")


def crash_pool(directory: Path, url: str, *args: str) -> PoolProcess:
    return PoolProcess(directory, url, "--import", "crash_tasks", *args)


def spawned(pool: PoolProcess, name: str) -> list[int]:
    """Pids of the workers of slot `name` the pool has spawned, in order."""
    return [int(pid) for pid in re.findall(rf"worker_spawned name={name} pid=(\d+)", pool.log())]


def longest_without_a_worker(log: str) -> float:
    """The longest stretch, as the supervisor logged it, from the exit of its last live worker to the next
    spawn (0 when it always had one)."""
    live: set[int] = set()
    empty_since: datetime | None = None
    longest = 0.0
    for line in log.splitlines():
        found = EVENT.match(line)
        if found is None:
            continue
        at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
        pid = int(found.group(4))
        if found.group(2) == "worker_spawned":
            if empty_since is not None:
                longest = max(longest, (at - empty_since).total_seconds())
                empty_since = None
            live.add(pid)
        else:
            live.discard(pid)
            if not live:
                empty_since = at
    return longest


def finished(store: Store, ids: list[int]) -> bool:
    return all(store.require(task_id).status in TERMINAL_STATUSES for task_id in ids)


def test_workers_killed_young_in_every_slot_leave_the_pool_without_workers_only_briefly(tmp_path, db, pools) -> None:
    url, store = db
    pool = crash_pool(tmp_path, url, "--workers", "3")
    pools.append(pool)
    pool.wait_ready(3)
    # Six tasks that each get their worker SIGKILLed within milliseconds of its start, claimed first
    # (priority 10): every slot dies young twice in a row. A pool-wide back-off doubled on each of the six
    # deaths (0.5, 1, 2, 4, 8, 16 s) and left the pool with no worker for ~16 s while the work waited.
    killers = [store.enqueue("crash.kill_own_worker", [n], priority=10, max_retries=0).id for n in range(6)]
    work = [e.id for e in store.enqueue_many([{"name": "crash.pid", "args": [n]} for n in range(60)])]
    enqueued = time.monotonic()
    wait_for(lambda: finished(store, killers + work), 60, what="every task finished")
    seconds = time.monotonic() - enqueued
    assert [store.require(task_id).status for task_id in work] == [Status.COMPLETED] * 60
    for task_id in killers:
        killed = store.require(task_id)
        assert killed.status is Status.FAILED and "SIGKILL" in (killed.error or ""), killed.error
    without = longest_without_a_worker(pool.log())
    print(f"drained {seconds:.1f} s after the enqueue, at most {without:.1f} s without a worker")  # the figure (-s)
    assert seconds < 8.0 and without < 3.0, f"done after {seconds:.1f} s, {without:.1f} s without a worker"
    wait_for(lambda: len(pool.spawned_workers()) == 3, 10, what="three workers again")


def test_one_crash_looping_slot_never_holds_back_the_respawn_of_another(tmp_path, db, pools) -> None:
    url, store = db
    pool = crash_pool(tmp_path, url, "--workers", "3")
    pools.append(pool)
    pool.wait_ready(3)
    work = [e.id for e in store.enqueue_many([{"name": "crash.work", "args": [n, 0.05]} for n in range(100)])]
    # The OOM killer, on worker-1 only: each new worker-1 is SIGKILLed as soon as the pool spawns it.
    killed: list[int] = []
    while len(killed) < 5:
        pid = wait_for(lambda: [p for p in spawned(pool, "worker-1") if p not in killed], 30, what="a new worker-1")[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    wait_for(lambda: pool.log().count("worker_exited name=worker-1 ") >= 5, 10, what="the fifth death of worker-1")
    # Slot 2 dies too (it lived long, as slot 3 still does): it is started again at once, whatever slot 1 waits.
    # With the pool-wide back-off it waited for slot 1's turn (4 s or more here).
    (victim,) = spawned(pool, "worker-2")
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: len(spawned(pool, "worker-2")) == 2, 30, what="worker-2 respawned")
    respawned_after = time.monotonic() - killed_at
    print(f"worker-2 respawned {respawned_after:.2f} s after its death")  # the figure (-s)
    assert respawned_after < 1.5, f"worker-2 was respawned {respawned_after:.1f} s after its death"
    assert "worker_crash_loop name=worker-1 " in pool.log()  # while slot 1 backs off (2 s after its fifth death)
    wait_for(lambda: finished(store, work), 60, what="the work drained")
    assert {store.require(task_id).status for task_id in work} == {Status.COMPLETED}
