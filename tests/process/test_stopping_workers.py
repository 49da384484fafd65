"""Issue 19 points 1 and 2: a stop is a state, not an exit (DESIGN.md rule 14), with real pools and signals.

A worker asked to stop (SIGTERM, a settings edit that restarts workers) keeps renewing the leases of what it
runs until each task has ended, or until `shutdown_grace`, when its tasks go back to pending uncounted. A
worker whose supervisor was SIGKILLed claims nothing more, enforces its tasks' timeouts itself and exits; a
pool starting on the same host kills such orphans (their process groups too) before recovering their tasks.
Runs are counted from the pool's run log (tests/support/pool_tasks.py), never from the tasks table alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from poolkit import PoolProcess, runs, wait_for
from sqlalchemy import func, select

from taskq.model import Status
from taskq.schema import tasks
from taskq.store import Store


def settings_file(directory: Path, text: str) -> Path:
    path = directory / "settings.yaml"
    path.write_text(text)
    return path


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (Z for a zombie), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def is_live(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie may stay: nothing on this machine reaps re-parented processes)."""
    return process_state(pid) not in (None, "Z")


def start_pids(runlog: Path, kind: str) -> list[int]:
    """The pids that wrote `<kind> <value> <pid>` lines, in order."""
    if not runlog.exists():
        return []
    return [int(line.split()[2]) for line in runlog.read_text().splitlines() if line.split()[0] == kind]


def running_count(store: Store, name: str) -> int:
    with store.engine.connect() as connection:
        query = select(func.count()).where(tasks.c.name == name, tasks.c.status == Status.RUNNING.value)
        return int(connection.execute(query).scalar_one())


def executions(runlog: Path) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of every cap.two execution, paired by task and process from the run log's
    `cap_start n@time pid` and `cap_end n@time pid` lines; one still running (or killed) ends at infinity."""
    ends: dict[tuple[str, str], float] = {}
    starts: list[tuple[tuple[str, str], float]] = []
    for line in runlog.read_text().splitlines():
        kind, value, pid = line.split()
        n, at = value.split("@")
        if kind == "cap_start":
            starts.append(((n, pid), float(at)))
        elif kind == "cap_end":
            ends[(n, pid)] = float(at)
    return [(at, ends.get(key, float("inf"))) for key, at in starts]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans open at one instant (an end at the same instant as a start closes first)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


class RunningPeak(threading.Thread):
    """Polls how many rows of one task name are `running`, through the store, and keeps the peak."""

    def __init__(self, store: Store, name: str) -> None:
        super().__init__(daemon=True)
        self.store, self.name = store, name
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.peak = max(self.peak, running_count(self.store, self.name))
            self.samples += 1

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.peak


def test_sigterm_keeps_renewing_the_lease_of_a_task_that_outlives_it(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "lease: 1s\nshutdown_grace: 30s\n")
    task_id = store.enqueue("t.slow", [1, 4.0]).id  # four leases long
    pool = PoolProcess(tmp_path, url, "--workers", "1", settings=settings)
    pools.append(pool)
    wait_for(lambda: runs(pool.runlog, "start"), 20, what="the task started")
    signalled = time.monotonic()
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    exited_after = time.monotonic() - signalled
    task = store.require(task_id)
    assert task.status is Status.COMPLETED and task.attempts == 1, (task.status, task.attempts, task.error_log)
    assert runs(pool.runlog, "start") == ["1"] and runs(pool.runlog, "done") == ["1"]
    assert "task_lost" not in pool.log()
    assert exited_after < 10, exited_after  # the task's ~4 s, not the grace


def test_a_settings_edit_during_capped_tasks_never_exceeds_the_cap(tmp_path, database_url, store, pools) -> None:
    url = database_url  # caps are claimed differently on each dialect: both are tried
    settings = settings_file(tmp_path, "lease: 1s\nshutdown_grace: 30s\nlog_level: INFO\n")
    ids = [e.id for e in store.enqueue_many([{"name": "cap.two", "args": [n, 4.0]} for n in range(4)])]
    pool = PoolProcess(tmp_path, url, "--workers", "3", "--import", "cap_tasks", settings=settings)
    pools.append(pool)
    peak = RunningPeak(store, "cap.two")
    peak.start()
    try:
        wait_for(lambda: len(runs(pool.runlog, "cap_start")) == 2, 20, what="two capped tasks started")
        settings.write_text("lease: 1s\nshutdown_grace: 30s\nlog_level: DEBUG\n")
        wait_for(lambda: "workers_restarting" in pool.log(), 10, what="the workers restarting")
        wait_for(lambda: all(store.require(i).status is Status.COMPLETED for i in ids), 60, what="all completed")
    finally:
        most = peak.stop()
    assert peak.samples > 20
    assert most <= 2, f"{most} cap.two rows running at once under max_concurrency=2"
    # The rows alone cannot show a second run of a task whose lease was recovered (its row is running
    # once, for the new worker): the run log's start and end times show every execution.
    assert most_at_once(executions(pool.runlog)) <= 2
    started = sorted(value.split("@")[0] for value in runs(pool.runlog, "cap_start"))
    assert started == ["0", "1", "2", "3"], started  # each ran once
    assert all(store.require(i).attempts == 1 for i in ids)
    assert "task_lost" not in pool.log()


def test_a_retiring_worker_releases_its_task_at_the_grace_and_a_new_worker_runs_it(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "lease: 1s\nshutdown_grace: 2s\nlog_level: INFO\n")
    task_id = store.enqueue("t.slow", [5, 8.0]).id
    pool = PoolProcess(tmp_path, url, "--workers", "1", settings=settings)
    pools.append(pool)
    wait_for(lambda: runs(pool.runlog, "start"), 20, what="the task started")
    first = start_pids(pool.runlog, "start")[0]
    settings.write_text("lease: 1s\nshutdown_grace: 2s\nlog_level: DEBUG\n")
    wait_for(lambda: "workers_restarting" in pool.log(), 10, what="the workers restarting")
    restarted = time.monotonic()
    wait_for(lambda: len(runs(pool.runlog, "start")) == 2, 20, what="the task started again by a new worker")
    released_after = time.monotonic() - restarted
    assert "task_released" in pool.log()
    second = start_pids(pool.runlog, "start")[1]
    assert second != first and not is_live(first)
    done = wait_for(lambda: (t := store.require(task_id)).status is Status.COMPLETED and t, 30, what="completed")
    assert done.attempts == 1 and not done.error_log  # the release counted no attempt
    assert runs(pool.runlog, "done") == ["5"]
    assert released_after < 8, released_after  # the grace (2 s), not the task's 8 s


def test_orphaned_workers_enforce_timeouts_claim_nothing_and_exit(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "shutdown_grace: 30s\n")
    # It hangs for a minute in a process it started, in its worker's process group.
    hung = store.enqueue("crash.spawn_child", ["hung", False, 60.0], timeout=3, max_retries=1).id
    pool = PoolProcess(tmp_path, url, "--workers", "2", "--import", "crash_tasks", settings=settings)
    pools.append(pool)
    pool.wait_ready(2)
    wait_for(lambda: runs(pool.runlog, "child-hung"), 20, what="the hung task started")
    child = int(runs(pool.runlog, "child-hung")[0].split(":")[0])
    orphans = pool.spawned_workers()
    assert len(orphans) == 2
    killed = time.monotonic()
    os.kill(pool.pid, signal.SIGKILL)
    pool.wait(10)
    later = [e.id for e in store.enqueue_many([{"name": "t.record", "args": [n]} for n in range(5)])]

    task = wait_for(lambda: (t := store.require(hung)).error_log and t, 20, what="the orphan enforcing the timeout")
    enforced_after = time.monotonic() - killed
    assert task.status is Status.PENDING and task.attempts == 1  # a failed attempt, retried per policy
    assert "TimeoutError" in task.error_log[0]["error"]
    wait_for(lambda: not any(is_live(pid) for pid in [*orphans, child]), 10, what="the orphans and the child gone")
    assert runs(pool.runlog, "run") == []  # nothing enqueued after the kill was started by an orphan
    assert all(store.require(i).status is Status.PENDING for i in later)
    assert enforced_after < 10, enforced_after

    second = PoolProcess(tmp_path, url, "--workers", "2", "--import", "crash_tasks", settings=settings)
    pools.append(second)
    wait_for(lambda: all(store.require(i).status is Status.COMPLETED for i in later), 30, what="later tasks done")
    assert sorted(runs(second.runlog, "run"), key=int) == ["0", "1", "2", "3", "4"]
    assert len(second.workers()) == 2 and not any(is_live(pid) for pid in orphans)


def test_a_new_pool_kills_a_live_orphan_and_its_children_before_running_its_task(tmp_path, db, pools) -> None:
    url, store = db
    # A long grace and no timeout: the orphan would go on running its task for a minute by itself.
    settings = settings_file(tmp_path, "shutdown_grace: 60s\n")
    task_id = store.enqueue("crash.spawn_child", ["orphan", False, 60.0], max_retries=2).id
    first = PoolProcess(tmp_path, url, "--workers", "1", "--import", "crash_tasks", settings=settings)
    pools.append(first)
    wait_for(lambda: runs(first.runlog, "child-orphan"), 20, what="the task started its child")
    wait_for(lambda: store.require(task_id).started_at is not None, 10, what="its start recorded")
    orphan = start_pids(first.runlog, "child-orphan")[0]
    child = int(runs(first.runlog, "child-orphan")[0].split(":")[0])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert is_live(orphan) and is_live(child)

    second = PoolProcess(tmp_path, url, "--workers", "1", "--import", "crash_tasks", settings=settings)
    pools.append(second)
    wait_for(lambda: len(runs(second.runlog, "child-orphan")) == 2, 30, what="the task started by the new pool")
    # When the new pool's worker started it, the orphan and the process its task started were gone.
    assert not is_live(orphan) and not is_live(child)
    assert "orphan_killed" in second.log()
    # The orphan's run was cut short: a counted attempt; the second run's is counted once it ran 0.25 s.
    task = wait_for(lambda: (t := store.require(task_id)).attempts == 2 and t, 10, what="the second attempt counted")
    assert task.status is Status.RUNNING
    assert "worker lost" in task.error_log[0]["error"] and "orphaned" in task.error_log[0]["error"]
    assert len(second.workers()) == 1
    second.kill_tree()
