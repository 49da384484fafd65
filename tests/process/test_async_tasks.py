"""Issue 15 point 1, `async def` tasks, proven with real pools and real signals on SQLite and PostgreSQL: coroutines
of one worker overlap up to its `concurrency` and never beyond, sync tasks keep one at a time beside them,
cancellation and timeouts cut short the coroutine concerned and nothing else, a SIGKILL costs exactly what it
costs a one-at-a-time worker, and progress, taskq.context.current(), Retry, Fail and workflows behave as for sync
tasks. Tasks are in tests/support/async_tasks.py; every start and return is one stamped line of the pool's run log, so
overlaps and re-runs are measured outside the tasks table.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from poolkit import PoolProcess, wait_for
from sqlalchemy import text
from sqlalchemy.engine import make_url

from taskq.model import TERMINAL_STATUSES, Status
from taskq.store import Store

TIMEOUT_MESSAGE = "TimeoutError: task exceeded its timeout of 0.5 s"


def async_pool(directory: Path, url: str, *args: str, settings: Path | None = None) -> PoolProcess:
    return PoolProcess(directory, url, "--import", "async_tasks", *args, settings=settings)


def open_gate(pool: PoolProcess, name: str) -> None:
    (pool.runlog.parent / f"gate-{name}").touch()


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[list[PoolProcess]]:
    """As conftest's: the pools a test starts are stopped when it ends, with every gate opened first (a failed
    test leaves no task waiting for one, so the shutdown is quick)."""
    started: list[PoolProcess] = []
    yield started
    (tmp_path / "gate-all").touch()
    for pool in started:
        pool.stop()


@dataclass(frozen=True)
class Event:
    kind: str
    value: str
    pid: int
    at: float


def events(pool: PoolProcess, *kinds: str) -> list[Event]:
    if not pool.runlog.exists():
        return []
    found = []
    for line in pool.runlog.read_text().splitlines():
        kind, value, pid, at = line.split()
        if not kinds or kind in kinds:
            found.append(Event(kind, value, int(pid), float(at)))
    return found


def values(pool: PoolProcess, kind: str) -> list[str]:
    return [event.value for event in events(pool, kind)]


def intervals(pool: PoolProcess, start: str = "start", done: str = "done") -> dict[str, tuple[float, float]]:
    """value -> (start, done) stamps of the runs that returned."""
    began = {event.value: event.at for event in events(pool, start)}
    return {event.value: (began[event.value], event.at) for event in events(pool, done)}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (a span ending at the instant another starts does not overlap it)."""
    edges = sorted([(begin, 1) for begin, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def cancelled_after(pool: PoolProcess, value: str) -> float | None:
    """Seconds from the first start of run `value` to its coroutine's CancelledError; None if it saw none."""
    started = [event.at for event in events(pool, "start") if event.value == value]
    cancelled = [event.at for event in events(pool, "cancelled") if event.value == value]
    return cancelled[0] - started[0] if started and cancelled else None


def finished(store: Store, ids: list[int]) -> bool:
    return all(store.require(task_id).status in TERMINAL_STATUSES for task_id in ids)


def status_of(store: Store, task_id: int) -> Status:
    return store.require(task_id).status


def enqueue(store: Store, name: str, *args: object, **options: object) -> int:
    return store.enqueue(name, list(args), **options).id


def worker_pids(pool: PoolProcess) -> list[int]:
    return pool.spawned_workers()


# -- 1, 2: concurrency -----------------------------------------------------------------------------------------


def test_one_worker_runs_coroutines_up_to_its_concurrency_and_no_more(tmp_path, database_url, store, pools) -> None:
    ids = [e.id for e in store.enqueue_many([{"name": "a.sleep", "args": [n, 0.5]} for n in range(40)])]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "20")
    pools.append(pool)
    began = time.monotonic()
    wait_for(lambda: finished(store, ids), 30, what="40 sleeping coroutines finished")
    elapsed = time.monotonic() - began
    assert {status_of(store, task_id) for task_id in ids} == {Status.COMPLETED}
    starts = collections.Counter(values(pool, "start"))
    assert sorted(starts, key=int) == [str(n) for n in range(40)] and set(starts.values()) == {1}, starts
    assert all(store.require(task_id).attempts == 1 for task_id in ids)
    spans = list(intervals(pool).values())
    overlap = max_overlap(spans)
    assert 15 <= overlap <= 20, f"{overlap} coroutines ran at once on one worker with --concurrency 20"
    assert len({event.pid for event in events(pool)}) == 1, "one worker ran them all"
    # 40 x 0.5 s one at a time would take 20 s; two rounds of 20 take ~1 s once the worker is up.
    assert elapsed < 12, f"{elapsed:.1f} s"


def test_sync_tasks_keep_one_at_a_time_while_coroutines_run_beside_them(tmp_path, database_url, store, pools) -> None:
    requests = []
    for n in range(6):
        requests.append({"name": "a.sync_sleep", "args": [n, 0.3]})
        requests.append({"name": "a.sleep", "args": [n, 0.1]})
        requests.append({"name": "a.sleep", "args": [100 + n, 0.1]})
    ids = [e.id for e in store.enqueue_many(requests)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "8")
    pools.append(pool)
    wait_for(lambda: finished(store, ids), 30, what="the sync and async tasks finished")
    assert {status_of(store, task_id) for task_id in ids} == {Status.COMPLETED}
    sync_spans = sorted(intervals(pool, "sync-start", "sync-done").values())
    assert len(sync_spans) == 6
    assert max_overlap(sync_spans) == 1, f"sync tasks of one worker overlapped: {sync_spans}"
    # Coroutines make progress while a sync task blocks its thread: some return strictly inside a sync task's run.
    async_done = [event.at for event in events(pool, "done")]
    inside = [at for at in async_done if any(begin < at < end for begin, end in sync_spans)]
    assert inside, "no coroutine returned while a sync task ran: the sync task blocked the event loop"
    assert len(async_done) == 12 and collections.Counter(values(pool, "start")).most_common(1)[0][1] == 1


# -- 3: cancellation --------------------------------------------------------------------------------------------


def cli(database_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "taskq", "--db", database_url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cancelling_a_running_coroutine_cancels_it_alone(tmp_path, database_url, store, pools) -> None:
    victim = enqueue(store, "a.cancellable", 0, 30, max_retries=0)
    others = [enqueue(store, "a.gated", n, "co") for n in (1, 2, 3)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5")
    pools.append(pool)
    wait_for(lambda: len(values(pool, "start")) == 4, 20, what="the victim and its 3 co-runners started")
    (worker,) = worker_pids(pool)
    asked = time.monotonic()
    assert "cancellation requested" in cli(database_url, "cancel", str(victim))
    wait_for(lambda: status_of(store, victim) is Status.CANCELLED, 3, what="the coroutine cancelled")
    took = time.monotonic() - asked
    assert took < 2.0, f"cancelled {took:.1f} s after the request"
    assert values(pool, "cancelled") == ["0"], "the coroutine saw CancelledError"
    assert all(status_of(store, task_id) is Status.RUNNING for task_id in others)
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 10, what="the co-runners finished")
    for task_id in others:
        task = store.require(task_id)
        assert (task.status, task.attempts, task.error_log) == (Status.COMPLETED, 1, []), task
    assert sorted(values(pool, "start")) == ["0", "1", "2", "3"], "nothing ran twice"
    assert {event.pid for event in events(pool)} == {worker} and worker_pids(pool) == [worker]
    assert "task_cancel_forced" not in pool.log() and "worker_exited" not in pool.log()


def test_a_coroutine_swallowing_its_cancellation_is_killed_and_alone_cancelled(
    tmp_path, database_url, store, pools
) -> None:
    culprit = enqueue(store, "a.stubborn", 0, 30, max_retries=0)
    others = [enqueue(store, "a.gated", n, "co", max_retries=2) for n in (1, 2)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5", "--cancel-grace", "0.5")
    pools.append(pool)
    wait_for(lambda: len(values(pool, "start")) == 3, 20, what="the culprit and its 2 co-runners started")
    (worker,) = worker_pids(pool)
    store.cancel(culprit)
    wait_for(lambda: values(pool, "swallowed"), 3, what="the culprit swallowed its CancelledError")
    task = wait_for(lambda: (t := store.require(culprit)).status is Status.CANCELLED and t, 5, what="forced cancel")
    assert "killed after ignoring" in (task.error or ""), task.error
    assert "task_cancel_forced" in pool.log()
    # Its co-runners died with the worker mid-run: each a failed attempt of a lost worker, naming the culprit,
    # retried per its policy on the replacement worker.
    for task_id in others:
        wait_for(lambda t=task_id: store.require(t).attempts == 1 and status_of(store, t) is not Status.RUNNING, 10)
        interrupted = store.require(task_id)
        assert interrupted.status in (Status.PENDING, Status.RUNNING), interrupted.status
        (entry,) = interrupted.error_log
        assert "worker lost" in entry["error"] and f"killed for the cancel of task {culprit}" in entry["error"], entry
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 20, what="the co-runners re-ran and finished")
    for task_id in others:
        task = store.require(task_id)
        assert (task.status, task.attempts, len(task.error_log)) == (Status.COMPLETED, 2, 1), task
    starts = collections.Counter(values(pool, "start"))
    assert starts == {"0": 1, "1": 2, "2": 2}, starts
    assert worker not in worker_pids(pool), "the culprit's worker was killed"


# -- 4: timeout -------------------------------------------------------------------------------------------------


def test_a_coroutine_timeout_fails_it_alone_on_the_same_worker(tmp_path, database_url, store, pools) -> None:
    late = enqueue(store, "a.timeout", 0, max_retries=0)
    others = [enqueue(store, "a.gated", n, "co") for n in (1, 2)]
    # A cancel grace far beyond the timeout: a failure within it was the worker's doing, not the supervisor's kill.
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5", "--cancel-grace", "8")
    pools.append(pool)
    wait_for(lambda: len(values(pool, "start")) == 3, 20, what="the late task and its co-runners started")
    (worker,) = worker_pids(pool)
    task = wait_for(lambda: (t := store.require(late)).status is Status.FAILED and t, 5, what="the timeout")
    assert cancelled_after(pool, "0") is not None, "the coroutine was killed, not cancelled on its loop"
    assert 0.45 <= cancelled_after(pool, "0") < 1.5, f"cancelled {cancelled_after(pool, '0'):.2f} s after its start"
    assert TIMEOUT_MESSAGE in (task.error or ""), task.error
    assert task.attempts == 1
    assert all(status_of(store, task_id) is Status.RUNNING for task_id in others)
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 10, what="the co-runners finished")
    for task_id in others:
        task = store.require(task_id)
        assert (task.status, task.attempts, task.error_log) == (Status.COMPLETED, 1, []), task
    assert {event.pid for event in events(pool)} == {worker} and worker_pids(pool) == [worker], "the worker lived on"
    assert "task_timeout" not in pool.log() and "worker_exited" not in pool.log()


def test_a_coroutine_blocking_its_loop_is_killed_after_its_timeout_and_the_grace(
    tmp_path, database_url, store, pools
) -> None:
    # The co-runners are claimed first (priority), so their coroutines run before the culprit blocks the loop.
    culprit = enqueue(store, "a.blocks_loop", 0, 30, max_retries=0)
    others = [enqueue(store, "a.gated", n, "co", max_retries=2, priority=10) for n in (1, 2)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5", "--cancel-grace", "1")
    pools.append(pool)
    wait_for(lambda: len(values(pool, "start")) == 3, 20, what="the culprit and its co-runners started")
    (worker,) = worker_pids(pool)
    task = wait_for(lambda: (t := store.require(culprit)).status is Status.FAILED and t, 10, what="the backstop kill")
    started = {event.value: event.at for event in events(pool, "start")}["0"]
    assert TIMEOUT_MESSAGE in (task.error or ""), task.error
    # The worker could not cancel it: the supervisor killed it, but only after the timeout and the cancel grace.
    assert task.finished_at is not None and task.finished_at.timestamp() - started >= 1.4, (
        f"killed {task.finished_at.timestamp() - started:.2f} s after its start, before its timeout and the grace"
    )
    assert "task_timeout" in pool.log()
    for task_id in others:
        wait_for(lambda t=task_id: store.require(t).error_log, 10, what="the co-runners settled")
        (entry,) = store.require(task_id).error_log
        assert "worker lost" in entry["error"] and f"killed for the timeout of task {culprit}" in entry["error"], entry
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 20, what="the co-runners re-ran and finished")
    for task_id in others:
        task = store.require(task_id)
        assert (task.status, task.attempts) == (Status.COMPLETED, 2), task
    assert collections.Counter(values(pool, "start")) == {"0": 1, "1": 2, "2": 2}
    assert worker not in worker_pids(pool)


def test_coroutines_claimed_beside_one_that_blocks_the_loop_go_back_uncounted_when_it_is_killed(
    tmp_path, database_url, store, pools
) -> None:
    # One claim takes all three; the culprit (priority) gets the loop first and never gives it back, so
    # the other two coroutines never start: the kill must release them, not charge them an attempt.
    culprit = enqueue(store, "a.blocks_loop", 0, 30, max_retries=0, priority=10)
    others = [enqueue(store, "a.gated", n, "co", max_retries=2) for n in (1, 2)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5", "--cancel-grace", "1")
    pools.append(pool)
    wait_for(lambda: status_of(store, culprit) is Status.FAILED, 20, what="the backstop kill")
    (killed,) = {event.pid for event in events(pool, "start") if event.value == "0"}
    assert [event.value for event in events(pool, "start") if event.pid == killed] == ["0"]
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 20, what="the other two ran on the new worker")
    for task_id in others:
        task = store.require(task_id)
        assert (task.status, task.attempts, task.error_log or []) == (Status.COMPLETED, 1, []), task
    assert collections.Counter(values(pool, "start")) == {"0": 1, "1": 1, "2": 1}


# -- 5: exact accounting under SIGKILL ---------------------------------------------------------------------------


@contextlib.contextmanager
def writes_blocked(database_url: str) -> Iterator[None]:
    """Hold the database's write lock (SQLite) or an EXCLUSIVE lock on the tasks table (PostgreSQL: reads go on):
    the worker's claims, heartbeats and recorded outcomes wait until the block is left."""
    from sqlalchemy import create_engine

    url = make_url(database_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if url.get_backend_name() == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")
                connection.execute(text("LOCK TABLE tasks IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                connection.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()


def test_sigkill_of_a_concurrent_worker_settles_each_task_by_what_its_function_did(
    tmp_path, database_url, store, pools
) -> None:
    quick = {enqueue(store, "a.work", n, f"quick-{n}"): n for n in range(5)}
    long = {enqueue(store, "a.work", n, "long"): n for n in range(5, 10)}
    sync = {enqueue(store, "a.sync_work", n, "long"): n for n in (10, 11)}  # one sync thread: one runs, one waits
    numbers = {**quick, **long, **sync}
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "12")
    pools.append(pool)
    wait_for(lambda: len(values(pool, "start")) == 10 and values(pool, "sync-start"), 20, what="11 tasks started")
    (victim,) = worker_pids(pool)
    (sync_running,) = [task_id for task_id, n in sync.items() if str(n) in values(pool, "sync-start")]
    (sync_waiting,) = set(sync) - {sync_running}
    wait_for(lambda: all(status_of(store, task_id) is Status.RUNNING for task_id in numbers), 5, what="12 claimed")
    with writes_blocked(database_url):
        # The quick coroutines return one after the other while the worker cannot record anything (the first
        # return frees a slot, and the worker's next claim waits for the database): their successes are known to
        # the supervisor only from the worker's Deferred messages when it dies.
        for n in quick.values():
            open_gate(pool, f"quick-{n}")
            wait_for(lambda n=n: str(n) in values(pool, "done"), 5, what=f"quick coroutine {n} returned")
        # The only excusable window is the instant between a return and its report; give it ample time.
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in pool.workers(), 5, what="the victim reaped")
    open_gate(pool, "long")
    wait_for(lambda: finished(store, list(numbers)), 20, what="every task finished after the kill")

    starts = collections.Counter(int(v) for v in values(pool, "start") + values(pool, "sync-start"))
    problems = []
    for task_id, n in numbers.items():
        task = store.require(task_id)
        if task.status is not Status.COMPLETED:
            problems.append(f"n={n}: {task.status.value} ({task.error})")
        returned_before = task_id in quick
        executing = task_id in long or task_id == sync_running
        expected = (1, 1) if returned_before or task_id == sync_waiting else (2, 2) if executing else None
        if (starts[n], task.attempts) != expected:
            problems.append(f"n={n}: started {starts[n]}x, attempts {task.attempts}, expected {expected}")
        if executing and not (len(task.error_log) == 1 and "worker lost" in task.error_log[0]["error"]):
            problems.append(f"n={n}: error log {task.error_log}")
        if not executing and task.error_log:
            problems.append(f"n={n}: error log {task.error_log}")
    assert not problems, "\n".join(problems)


# -- 6: what a coroutine can ask of taskq ------------------------------------------------------------------------


def test_progress_current_retry_fail_and_workflows_from_coroutines(tmp_path, database_url, store, pools) -> None:
    watched = enqueue(store, "a.progress", "seen", max_retries=0)
    ambient = enqueue(store, "a.current", max_retries=0)
    asks = enqueue(store, "a.asks_retry", 0.5, max_retries=3)
    gives_up = enqueue(store, "a.gives_up", max_retries=5)
    parent = enqueue(store, "a.fan_out", 5, max_retries=0)
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "4")
    pools.append(pool)

    running = wait_for(
        lambda: (t := store.require(watched)).progress == 42 and t, 10, what="the coroutine's progress in its row"
    )
    assert running.status is Status.RUNNING and running.progress_message == "halfway there"
    open_gate(pool, "seen")
    done = wait_for(lambda: (t := store.require(watched)).status is Status.COMPLETED and t, 10, what="progress task")
    assert done.result == {"current_id": watched, "same": True, "attempt": 1}
    assert done.progress_message == "halfway there"

    assert wait_for(lambda: (t := store.require(ambient)).status in TERMINAL_STATUSES and t, 10).result == ambient

    retried = wait_for(lambda: (t := store.require(asks)).status is Status.COMPLETED and t, 10, what="asks_retry")
    assert retried.result == 2 and retried.attempts == 2 and retried.error is None
    (entry,) = retried.error_log
    assert entry["retry"] is True and entry["attempt"] == 1 and "rate limited" in entry["error"], entry
    assert "Traceback" not in entry["error"], "a requested retry is not an error"
    first, second = [event.at for event in events(pool, "asks_retry")]
    # At the delay it asked for, not the default backoff (2 s).
    assert 0.5 <= second - first < 1.5, f"re-run {second - first:.2f} s after asking for a retry in 0.5 s"

    failed = wait_for(lambda: (t := store.require(gives_up)).status is Status.FAILED and t, 10, what="gives_up")
    assert failed.attempts == 1 and "Fail: the input can never work" in (failed.error or "")
    assert values(pool, "gives_up") == ["1"]

    wait_for(lambda: status_of(store, parent) is Status.COMPLETED, 15, what="the fan-out and its continuation")
    assert sorted(int(v) for v in values(pool, "child")) == list(range(5))
    wait_for(lambda: values(pool, "gather"), 10, what="the continuation ran")
    assert values(pool, "gather") == [str(parent)]
    (gathered,) = store.list(name="a.gather")
    wait_for(lambda: status_of(store, gathered.id) is Status.COMPLETED, 10)
    assert store.require(gathered.id).args == [parent]


# -- 7: live concurrency ------------------------------------------------------------------------------------------


def test_concurrency_in_settings_is_live(tmp_path, database_url, store, pools) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("concurrency: 2\n")
    pool = async_pool(tmp_path, database_url, "--workers", "1", settings=settings)
    pools.append(pool)
    before = [e.id for e in store.enqueue_many([{"name": "a.sleep", "args": [n, 0.3]} for n in range(6)])]
    wait_for(lambda: finished(store, before), 15, what="the first batch")
    spans = intervals(pool)
    assert max_overlap(list(spans.values())) == 2, "concurrency: 2 runs two at once"

    settings.write_text("concurrency: 6\n")
    wait_for(lambda: "concurrency=6" in pool.log(), 15, what="a worker started with concurrency 6")
    after = [e.id for e in store.enqueue_many([{"name": "a.sleep", "args": [n, 0.5]} for n in range(100, 112)])]
    wait_for(lambda: finished(store, after), 15, what="the second batch")
    assert {status_of(store, task_id) for task_id in before + after} == {Status.COMPLETED}
    spans = {n: span for n, span in intervals(pool).items() if int(n) >= 100}
    overlap = max_overlap(list(spans.values()))
    assert 5 <= overlap <= 6, f"{overlap} at once after concurrency: 6"
    assert "workers_restarting" in pool.log()
    assert collections.Counter(values(pool, "start")).most_common(1)[0][1] == 1, "nothing ran twice"


# -- 8: concurrency 1 ---------------------------------------------------------------------------------------------


def test_coroutines_at_the_default_concurrency_of_one(tmp_path, database_url, store, pools) -> None:
    plain = [enqueue(store, "a.sleep", n, 0.2, priority=30) for n in (0, 1)]
    late = enqueue(store, "a.timeout", 2, max_retries=0, priority=20)
    victim = enqueue(store, "a.cancellable", 3, 30, max_retries=0, priority=10)
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--cancel-grace", "8")
    pools.append(pool)
    wait_for(lambda: "3" in values(pool, "start"), 15, what="the cancellable coroutine started")
    (worker,) = worker_pids(pool)
    assert all(status_of(store, task_id) is Status.COMPLETED for task_id in plain)
    spans = intervals(pool)
    assert max_overlap([spans["0"], spans["1"]]) == 1, "one at a time"

    task = store.require(late)
    assert task.status is Status.FAILED and TIMEOUT_MESSAGE in (task.error or ""), task.error
    took = cancelled_after(pool, "2")
    assert took is not None and 0.45 <= took < 1.5, f"cancelled on the worker's loop after its timeout, not {took}"

    asked = time.monotonic()
    store.cancel(victim)
    wait_for(lambda: status_of(store, victim) is Status.CANCELLED, 3, what="the coroutine cancelled")
    assert time.monotonic() - asked < 2.0
    assert values(pool, "cancelled") == ["2", "3"], "the coroutine saw CancelledError"
    assert {event.pid for event in events(pool)} == {worker} and worker_pids(pool) == [worker]
    assert "worker_exited" not in pool.log() and "task_timeout" not in pool.log()


# -- 9: whatever a coroutine raises is its own outcome (issue 19 point 5) ---------------------------------------

RAISED_TEXT = {
    "SystemExit": "SystemExit: the task called sys.exit",
    "KeyboardInterrupt": "KeyboardInterrupt: the task raised KeyboardInterrupt",
    "CancelledError": "CancelledError: the task raised CancelledError",
    "cancelled-future": "await future  # CancelledError here, in a task nobody cancelled",
    "GeneratorExit": "GeneratorExit: the task raised GeneratorExit",
}


@pytest.mark.parametrize("concurrency", [1, 10])
@pytest.mark.parametrize("kind", list(RAISED_TEXT))
def test_a_base_exception_from_a_coroutine_fails_it_alone_and_the_worker_lives_on(
    tmp_path, database_url, store, pools, kind, concurrency
) -> None:
    culprit = enqueue(store, "a.raises", 0, kind, "raise", max_retries=0, priority=20)
    others = [enqueue(store, "a.gated", n, "co", max_retries=2, priority=10) for n in (1, 2, 3)]
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", str(concurrency))
    pools.append(pool)
    beside = 3 if concurrency > 1 else 0  # at concurrency 1 the co-runners wait for the culprit's end
    wait_for(lambda: len(values(pool, "start")) == 1 + beside, 20, what="the culprit and its co-runners started")
    (worker,) = worker_pids(pool)
    open_gate(pool, "raise")
    task = wait_for(lambda: (t := store.require(culprit)).status in TERMINAL_STATUSES and t, 10, what="its end")
    assert task.status is Status.FAILED and task.attempts == 1, (task.status, task.attempts, task.error)
    error = task.error or ""
    assert RAISED_TEXT[kind] in error and "in raises" in error and "worker lost" not in error, error
    assert values(pool, "raises") == ["0"], "it ran once"
    assert all(status_of(store, task_id) is Status.RUNNING for task_id in others[:beside])
    open_gate(pool, "co")
    wait_for(lambda: finished(store, others), 10, what="the co-runners finished")
    for task_id in others:
        other = store.require(task_id)
        assert (other.status, other.attempts, other.error_log) == (Status.COMPLETED, 1, []), other
    later = enqueue(store, "a.sleep", 9, 0.0)
    wait_for(lambda: status_of(store, later) is Status.COMPLETED, 10, what="a later task ran")
    assert collections.Counter(values(pool, "start")) == {"0": 1, "1": 1, "2": 1, "3": 1, "9": 1}
    assert {event.pid for event in events(pool)} == {worker} and worker_pids(pool) == [worker], "the worker lived on"
    assert "worker_exited" not in pool.log()


def test_a_kill_right_after_coroutines_return_records_them_completed(tmp_path, database_url, store, pools) -> None:
    """Each round: four coroutines return, then (before anything awaiting them resumes) a sibling blocks the loop and
    the worker is SIGKILLed during that block. The four had returned: completed once, never failed or re-run."""
    pool = async_pool(tmp_path, database_url, "--workers", "1", "--concurrency", "5")
    pools.append(pool)
    returned: dict[int, int] = {}
    for round_ in range(3):
        gate_name = f"round-{round_}"
        numbers = [10 * round_ + i for i in range(4)]
        returned.update({enqueue(store, "a.returns", n, gate_name, max_retries=0): n for n in numbers})
        blocker = 10 * round_ + 9
        blocker_id = enqueue(store, "a.blocks_after_returns", blocker, gate_name, max_retries=0)
        wait_for(lambda ns=[*numbers, blocker]: set(map(str, ns)) <= set(values(pool, "start")), 20, what="started")
        (victim,) = {event.pid for event in events(pool, "start") if event.value == str(blocker)}
        open_gate(pool, gate_name)
        wait_for(lambda b=str(blocker): b in values(pool, "blocking"), 10, what="the sibling holds the loop")
        assert set(map(str, numbers)) <= set(values(pool, "done")), "the four returned before the loop was blocked"
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda v=victim: v not in pool.workers(), 10, what="the victim reaped")
        lost = wait_for(lambda b=blocker_id: (t := store.require(b)).status in TERMINAL_STATUSES and t, 10)
        assert lost.status is Status.FAILED and "worker lost" in (lost.error or ""), "the blocker was executing"
    assert finished(store, list(returned))
    problems = []
    for task_id, n in returned.items():
        task = store.require(task_id)
        if (task.status, task.result, task.attempts, task.error_log) != (Status.COMPLETED, n, 1, []):
            problems.append(f"n={n}: {task.status.value} attempts {task.attempts} result {task.result} {task.error}")
    assert not problems, "\n".join(problems)
    starts = collections.Counter(values(pool, "start"))
    assert all(starts[str(n)] == 1 for n in returned.values()), starts


def test_a_kill_right_after_a_coroutine_returns_at_concurrency_one(tmp_path, database_url, store, pools) -> None:
    """At concurrency 1 the only thing that can run between a return and the worker's report is what the coroutine
    left on its loop: here a callback that blocks it, during which the worker is SIGKILLed."""
    returner = enqueue(store, "a.returns_leaving_a_blocker", 0, "return", max_retries=0)
    pool = async_pool(tmp_path, database_url, "--workers", "1")
    pools.append(pool)
    wait_for(lambda: values(pool, "start") == ["0"], 20, what="the coroutine started")
    (victim,) = worker_pids(pool)
    open_gate(pool, "return")
    wait_for(lambda: values(pool, "blocking") == ["0"], 10, what="its callback holds the loop")
    assert values(pool, "done") == ["0"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in pool.workers(), 10, what="the victim reaped")
    task = wait_for(lambda: (t := store.require(returner)).status in TERMINAL_STATUSES and t, 10, what="its end")
    assert (task.status, task.result, task.attempts, task.error_log) == (Status.COMPLETED, 0, 1, []), task.error
    assert values(pool, "start") == ["0"], "never re-run"
