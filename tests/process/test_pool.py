"""The worker pool with real processes and real signals on a real SQLite file."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

from poolkit import PoolProcess, runs, wait_for

from taskq.identity import WorkerIdentity
from taskq.model import Status
from taskq.store import Store

WORKER_NAMES = {f"worker-{n}" for n in range(1, 5)}


def settings_file(directory: Path, text: str) -> Path:
    path = directory / "settings.yaml"
    path.write_text(text)
    return path


def statuses(store: Store, ids: list[int]) -> collections.Counter[str]:
    return collections.Counter(store.require(task_id).status.value for task_id in ids)


def test_500_tasks_drained_by_4_workers_each_completed_exactly_once(tmp_path, db, pools) -> None:
    url, store = db
    pool = PoolProcess(tmp_path, url, "--workers", "4", log_format="json")
    pools.append(pool)
    pool.wait_ready(4)
    ids = [e.id for e in store.enqueue_many([{"name": "t.record", "args": [n]} for n in range(500)])]
    wait_for(lambda: store.stats()["completed"] == 500, 120, what="500 completions")
    assert sorted(runs(pool.runlog, "run"), key=int) == [str(n) for n in range(500)]
    assert [store.require(task_id).result for task_id in ids[:5]] == [0, 2, 4, 6, 8]
    workers = {store.require(task_id).worker_id for task_id in ids}
    # Workers claim in adaptive batches, so which of them win tasks is timing; several must have.
    assert len(workers) >= 2 and all(WorkerIdentity.parse(w).name in WORKER_NAMES for w in workers)
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    assert pool.events("shutdown_complete")
    completed = pool.events("task_completed")
    assert sorted(line["task_id"] for line in completed) == sorted(ids)  # one line per task, from the workers
    assert {line["process"]["name"] for line in completed} <= WORKER_NAMES
    assert all(line["name"] == "t.record" and line["attempt"] == 1 for line in completed)


def test_sigkilled_worker_task_is_retried_by_another_worker_with_the_attempt_counted(tmp_path, db, pools) -> None:
    url, store = db
    task_id = store.enqueue("t.slow", [1, 2.0], max_retries=3).id
    pool = PoolProcess(tmp_path, url, "--workers", "2")
    pools.append(pool)
    running = wait_for(lambda: (t := store.require(task_id)).status is Status.RUNNING and t, 20, what="task running")
    victim = int(running.worker_id.split(":")[1])
    wait_for(lambda: runs(pool.runlog, "start"), 10, what="task started")

    os.kill(victim, signal.SIGKILL)
    done = wait_for(lambda: (t := store.require(task_id)).status is Status.COMPLETED and t, 30, what="completion")
    assert done.attempts == 2
    assert int(done.worker_id.split(":")[1]) != victim
    assert "worker lost" in done.error_log[0]["error"] and "SIGKILL" in done.error_log[0]["error"]
    assert runs(pool.runlog, "done") == ["1"]
    wait_for(lambda: len(pool.workers()) == 2, 10, what="the killed worker replaced")
    assert victim not in pool.workers()


def test_sigkill_of_the_whole_pool_loses_nothing(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "lease: 1s\nshutdown_grace: 5s\n")
    # 1 s tasks: their start is recorded at 0.25 s, which leaves 0.75 s to kill the tree before they return
    # (0.3 s tasks left 0.05 s, and a loaded machine's /proc scan took longer: none was cut short).
    ids = [e.id for e in store.enqueue_many([{"name": "t.slow", "args": [n, 1.0]} for n in range(12)])]
    first = PoolProcess(tmp_path, url, "--workers", "3", settings=settings)

    def started_and_running() -> list[int]:  # a task's start is recorded once it has run 0.25 s
        return [i for i in ids if (t := store.require(i)).status is Status.RUNNING and t.started_at is not None]

    wait_for(started_and_running, 20, interval=0.01, what="a task running with its start recorded")
    first.kill_tree()
    cut_short = started_and_running()
    assert cut_short, "the crash should have left started tasks running"
    second = PoolProcess(tmp_path, url, "--workers", "3", settings=settings)
    pools.append(second)
    wait_for(lambda: statuses(store, ids)["completed"] == 12, 60, what="all 12 completed after the crash")
    recovered = [store.require(task_id) for task_id in cut_short]
    assert all(task.attempts == 2 and "worker lost" in task.error_log[0]["error"] for task in recovered)
    # Tasks claimed but not started when the tree died ran once, without an attempt counted against them.
    assert all(store.require(i).attempts == 1 for i in ids if i not in cut_short)


def test_live_rescale_follows_settings_and_survives_a_broken_edit(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "workers: 2\n")
    ids = [e.id for e in store.enqueue_many([{"name": "t.slow", "args": [n, 0.05]} for n in range(300)])]
    pool = PoolProcess(tmp_path, url, settings=settings, log_format="json")
    pools.append(pool)
    wait_for(lambda: len(pool.workers()) == 2, 20, what="2 workers")
    for count in (4, 1):
        settings.write_text(f"workers: {count}\n")
        wait_for(lambda count=count: len(pool.workers()) == count, 10, what=f"{count} workers")
    settings.write_text("workers: [3,\n")
    invalid = wait_for(lambda: pool.events("settings_invalid", level="ERROR"), 10, what="the broken edit logged")
    assert "invalid YAML" in invalid[0]["error"] and "keeping the last good" in invalid[0]["detail"], invalid
    assert len(pool.workers()) == 1
    settings.write_text("workers: 3\n")
    wait_for(lambda: len(pool.workers()) == 3, 10, what="3 workers after a good edit")
    wait_for(lambda: statuses(store, ids)["completed"] == 300, 60, what="all tasks completed")
    assert sorted(runs(pool.runlog, "done"), key=int) == [str(n) for n in range(300)]
    assert all(store.require(task_id).attempts == 1 for task_id in ids)


def test_sigterm_lets_running_tasks_finish_and_exits_zero(tmp_path, db, pools) -> None:
    url, store = db
    ids = [e.id for e in store.enqueue_many([{"name": "t.slow", "args": [n, 1.0]} for n in range(2)])]
    pool = PoolProcess(tmp_path, url, "--workers", "2")
    wait_for(lambda: len(runs(pool.runlog, "start")) == 2, 20, what="both tasks started")
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    assert statuses(store, ids) == {"completed": 2}


def test_sigterm_releases_tasks_still_running_after_the_grace_period(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "shutdown_grace: 1s\n")
    task_id = store.enqueue("t.slow", [7, 30]).id
    pool = PoolProcess(tmp_path, url, "--workers", "1", settings=settings, log_format="json")
    wait_for(lambda: runs(pool.runlog, "start"), 20, what="task started")
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    task = store.require(task_id)
    assert task.status is Status.PENDING and task.attempts == 0 and task.worker_id is None
    assert pool.events("shutdown_grace_expired", worker="worker-1")
    assert [line["task_id"] for line in pool.events("task_released")] == [task_id]


def test_second_sigint_stops_at_once(tmp_path, db, pools) -> None:
    url, store = db
    store.enqueue("t.slow", [1, 30])
    pool = PoolProcess(tmp_path, url, "--workers", "1", log_format="json")
    wait_for(lambda: runs(pool.runlog, "start"), 20, what="task started")
    pool.signal(signal.SIGINT)
    wait_for(lambda: pool.events("shutdown_started", signal="SIGINT"), 10, what="graceful shutdown begun")
    pool.signal(signal.SIGINT)
    assert pool.wait(10) != 0
    assert pool.events("second_interrupt", level="WARNING")


def test_timeout_kills_the_worker_and_the_attempt_retries_then_fails(tmp_path, db, pools) -> None:
    url, store = db
    # The enqueuer has not imported pool_tasks, so the row has no timeout: the worker must fall back
    # to @task(timeout=1.0).
    task_id = store.enqueue("t.timeout", [30], max_retries=1).id
    pool = PoolProcess(tmp_path, url, "--workers", "1", log_format="json")
    pools.append(pool)
    failed = wait_for(lambda: (t := store.require(task_id)).status is Status.FAILED and t, 40, what="timed out twice")
    assert failed.attempts == 2
    assert all("timeout of 1 s" in entry["error"] for entry in failed.error_log)
    assert runs(pool.runlog, "start") == ["timeout", "timeout"]
    timeouts = pool.events("task_timeout", task_id=task_id, timeout=1.0, worker="worker-1")
    assert len(timeouts) == 2 and all(line["process"]["name"] == "supervisor" for line in timeouts)
    wait_for(lambda: len(pool.workers()) == 1, 10, what="worker respawned")


def test_cancel_running_cooperative_task_and_progress_is_visible(tmp_path, db, pools) -> None:
    url, store = db
    task_id = store.enqueue("t.cooperative", [30]).id
    pool = PoolProcess(tmp_path, url, "--workers", "1", log_format="json")
    pools.append(pool)
    wait_for(lambda: store.require(task_id).progress > 0, 20, what="progress reported")
    first = store.require(task_id).progress
    wait_for(lambda: store.require(task_id).progress > first, 2, what="progress advancing within 1 s")
    assert store.cancel(task_id) is Status.RUNNING
    wait_for(lambda: store.require(task_id).status is Status.CANCELLED, 5, what="cooperative cancel")
    wait_for(lambda: pool.events("task_cancelled", task_id=task_id), 5, what="the worker's task_cancelled event")
    assert pool.events("task_cancel_requested", task_id=task_id)


def test_cancel_of_a_task_that_ignores_it_kills_after_the_grace(tmp_path, db, pools) -> None:
    url, store = db
    task_id = store.enqueue("t.stubborn", [30]).id
    pool = PoolProcess(tmp_path, url, "--workers", "1", "--cancel-grace", "1", log_format="json")
    pools.append(pool)
    wait_for(lambda: runs(pool.runlog, "start"), 20, what="task started")
    store.cancel(task_id)
    task = wait_for(lambda: (t := store.require(task_id)).status is Status.CANCELLED and t, 10, what="forced cancel")
    assert "killed" in (task.error or "")
    wait_for(lambda: pool.events("task_cancel_forced", task_id=task_id), 5, what="the supervisor's task_cancel_forced")
    wait_for(lambda: len(pool.workers()) == 1, 10, what="worker respawned")


def test_systemd_notifications_ready_and_stopping(tmp_path, db, pools) -> None:
    import socket

    url, _store = db
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(20)
        os.environ["NOTIFY_SOCKET"] = address
        try:
            pool = PoolProcess(tmp_path, url, "--workers", "1")
        finally:
            del os.environ["NOTIFY_SOCKET"]
        assert listener.recv(256) == b"READY=1"
        pool.signal(signal.SIGTERM)
        assert listener.recv(256) == b"STOPPING=1"
        assert pool.wait(30) == 0


def test_worker_recycles_cleanly_after_max_tasks(tmp_path, db, pools) -> None:
    url, store = db
    ids = [e.id for e in store.enqueue_many([{"name": "t.slow", "args": [n, 0.01]} for n in range(12)])]
    pool = PoolProcess(tmp_path, url, "--workers", "1", "--max-tasks-per-worker", "4", log_format="json")
    pools.append(pool)
    wait_for(lambda: statuses(store, ids)["completed"] == 12, 60, what="all 12 completed")
    assert sorted(runs(pool.runlog, "done"), key=int) == [str(n) for n in range(12)]
    assert all(store.require(task_id).attempts == 1 for task_id in ids)
    wait_for(lambda: len(pool.events("worker_recycle", reason="max_tasks", tasks_done=4)) >= 3, 10, what="3 recycles")
    assert len({line.split()[2] for line in pool.runlog.read_text().splitlines()}) >= 3  # distinct worker pids


def test_prefetched_tasks_behind_a_slow_one_are_handed_to_another_worker(tmp_path, db, pools) -> None:
    url, store = db
    # Priorities fix the claim order. Each quick task doubles the claim batch: claims of 1 and 2 tasks
    # run 3 quick tasks, then the slow task is claimed in a batch of 8 with the 7 queued behind it.
    quick_before = [store.enqueue("t.record", [n], priority=100 - n).id for n in range(3)]
    slow = store.enqueue("t.slow", [99, 8.0], priority=50).id
    behind = [store.enqueue("t.record", [100 + n], priority=40 - n).id for n in range(7)]
    first = PoolProcess(tmp_path, url, "--workers", "1", "--prefetch", "8")
    pools.append(first)
    wait_for(lambda: store.require(slow).status is Status.RUNNING, 20, what="the slow task running")
    assert statuses(store, quick_before) == {"completed": 3}
    assert statuses(store, behind)["completed"] == 0  # claimed with the slow task, waiting behind it
    second = PoolProcess(tmp_path, url, "--workers", "1")
    pools.append(second)
    wait_for(lambda: statuses(store, behind)["completed"] == 7, 20, what="the tasks behind the slow one")
    assert store.require(slow).status is Status.RUNNING, "they must not have waited for the slow task"
    assert all(store.require(task_id).attempts == 1 for task_id in behind)  # handing back costs no attempt
    slow_worker = store.require(slow).worker_id
    assert all(store.require(task_id).worker_id != slow_worker for task_id in behind)


def test_workers_option_sets_the_start_and_a_later_edit_rescales_and_zero_pauses(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "workers: 3\n")
    pool = PoolProcess(tmp_path, url, "--workers", "1", settings=settings, log_format="json")
    pools.append(pool)
    wait_for(lambda: len(pool.workers()) == 1, 20, what="1 worker, as --workers said")
    settings.write_text("workers: 2\n")  # the latest intent wins over the command line
    wait_for(lambda: len(pool.workers()) == 2, 10, what="2 workers after the edit")
    assert pool.events("setting_flag_replaced", key="workers", value="2", flag="--workers", replaced="1")
    settings.write_text("workers: 0\n")
    wait_for(lambda: not pool.workers(), 10, what="no workers: paused")
    assert pool.events("pool_paused", workers=0)
    paused = store.enqueue("t.record", [7]).id
    settings.write_text("workers: 0\nlog_level: DEBUG\n")  # a reload while paused stays paused
    wait_for(lambda: len(pool.events("settings_reloaded")) >= 3, 10, what="third reload")
    assert store.require(paused).status is Status.PENDING and not pool.workers()
    settings.write_text("workers: 1\n")
    wait_for(lambda: store.require(paused).status is Status.COMPLETED, 20, what="the task runs after resuming")


def test_a_reload_that_leaves_workers_unchanged_keeps_the_command_line_count(tmp_path, db, pools) -> None:
    url, _store = db
    settings = settings_file(tmp_path, "workers: 3\n")
    pool = PoolProcess(tmp_path, url, "--workers", "1", settings=settings, log_format="json")
    pools.append(pool)
    pool.wait_ready(1)
    settings.write_text("workers: 3\nretention: 1d\n")  # a reload that does not restart workers
    wait_for(lambda: pool.events("settings_reloaded", workers=1), 10, what="reload keeping --workers 1")
    assert len(pool.workers()) == 1


def test_ready_is_sent_once_workers_are_up_and_workers_do_not_inherit_the_notify_socket(tmp_path, db, pools) -> None:
    import socket

    url, store = db
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(30)
        os.environ["NOTIFY_SOCKET"] = address
        try:
            pool = PoolProcess(tmp_path, url, "--workers", "3", log_format="json")
        finally:
            del os.environ["NOTIFY_SOCKET"]
        pools.append(pool)
        assert listener.recv(256) == b"READY=1"
        # At READY every worker has imported its task modules and registered itself.
        assert len(store.list_workers()) == 3
        assert len(pool.events("worker_started")) == 3
        for pid in pool.workers():
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not any(entry.startswith(b"NOTIFY_SOCKET=") for entry in environment)
        supervisor = Path(f"/proc/{pool.pid}/environ").read_bytes()  # the start-up environment, unchanged
        assert b"NOTIFY_SOCKET=" in supervisor
