"""Issue 11: what a worker's death may cost, proven with real pools, real SIGKILLs and real child processes.

The contract: a dead worker never fails (or charges an attempt to) a task that never started, and never fails
or re-runs a task whose function returned; only the task executing at the instant of the kill is affected.
A pool restarted on the same host recovers its dead workers' tasks at once, not after their lease. Nothing a
task raises kills its worker, text stored on PostgreSQL is NUL-safe, and the processes a task starts die with
its worker unless they detached on purpose. Tasks are in tests/support/crash_tasks.py; each start, return and child
process is one line of the pool's run log, so the tests count them outside the tasks table.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from poolkit import PoolProcess, runs, wait_for
from sqlalchemy import select, update

import taskq
from taskq.clock import utc_now
from taskq.model import TERMINAL_STATUSES, Status
from taskq.schema import tasks
from taskq.store import Store

FINISHED = {status.value for status in TERMINAL_STATUSES}
QUICK_DEATH_SECONDS = 2.0  # the supervisor backs off respawning workers that die younger than this (pool.py)
DRAIN_AFTER_KILLS_SECONDS = 10.0  # ample for the few seconds of work left after the last kill
FOREIGN_WORKER = "some-other-host:0:1:1:worker-1"


def crash_pool(directory: Path, url: str, *args: str, settings: Path | None = None) -> PoolProcess:
    return PoolProcess(directory, url, "--import", "crash_tasks", *args, settings=settings)


def settings_file(directory: Path, text: str) -> Path:
    path = directory / "settings.yaml"
    path.write_text(text)
    return path


def enqueue_work(store: Store, count: int, rng: random.Random) -> dict[int, int]:
    """`count` crash.work tasks of 0-20 ms that may not retry; task id -> n."""
    requests = [
        {"name": "crash.work", "args": [n, round(rng.uniform(0.0, 0.02), 4)], "max_retries": 0} for n in range(count)
    ]
    return {enqueued.id: n for n, enqueued in enumerate(store.enqueue_many(requests))}


def status_by_id(store: Store) -> dict[int, str]:
    with store.engine.connect() as connection:
        return dict(connection.execute(select(tasks.c.id, tasks.c.status)).all())


def all_finished(store: Store) -> bool:
    return all(status in FINISHED for status in status_by_id(store).values())


def unfinished(store: Store) -> int:
    return sum(status not in FINISHED for status in status_by_id(store).values())


def terminal(store: Store, ids: list[int]) -> bool:
    return all(store.require(task_id).status in TERMINAL_STATUSES for task_id in ids)


def counted(runlog: Path, kind: str) -> collections.Counter[int]:
    return collections.Counter(int(n) for n in runs(runlog, kind))


def run_pids(runlog: Path, kind: str) -> dict[str, list[int]]:
    """value -> pids of the processes that wrote a `<kind> <value> <pid>` line."""
    found: dict[str, list[int]] = collections.defaultdict(list)
    for line in runlog.read_text().splitlines():
        fields = line.split()
        if fields[0] == kind:
            found[fields[1]].append(int(fields[2]))
    return found


@dataclass(frozen=True)
class Event:
    kind: str  # start | done
    n: int
    pid: int
    at: float  # time.time() in the task


def work_events(runlog: Path) -> list[Event]:
    events = []
    for line in runlog.read_text().splitlines():
        kind, n, pid, *at = line.split()
        if kind in ("start", "done") and at:
            events.append(Event(kind, int(n), int(pid), float(at[0])))
    return events


def between_tasks(events: list[Event], victim: int, killed_at: float) -> Event | None:
    """The victim's last `done` if, when it was killed, it had finished one task and not begun the next (by the
    run log): then the engine may have been recording that return or starting the next task, and failing the
    one or the other is the unavoidable cost of a kill at that instant."""
    mine = [event for event in events if event.pid == victim and event.at <= killed_at]
    return mine[-1] if mine and mine[-1].kind == "done" else None


def stuck(store: Store, numbers: dict[int, int], runlog: Path) -> str:
    """The unfinished tasks, by what the run log says their function did."""
    events = work_events(runlog)
    started = {event.n for event in events if event.kind == "start"}
    returned = {event.n for event in events if event.kind == "done"}
    left = collections.Counter()
    for task_id, s in status_by_id(store).items():
        if s not in FINISHED:
            n = numbers[task_id]
            left[f"{s}, {'returned' if n in returned else 'started' if n in started else 'never started'}"] += 1
    return f"{sum(left.values())} tasks unfinished: {dict(left)}"


def accounting_violations(
    store: Store, numbers: dict[int, int], runlog: Path, kills: list[tuple[int, float]]
) -> list[str]:
    """Every clause of the single-worker-kill contract that the queue breaks, with examples. A kill that landed
    between two tasks of its victim excuses at most one failure: that victim's last returned task, or one task
    that never wrote its `start` line (the engine may have marked it started a moment before the kill)."""
    events = work_events(runlog)
    status = status_by_id(store)
    started = collections.Counter(event.n for event in events if event.kind == "start")
    returned = {event.n for event in events if event.kind == "done"}
    failed = sorted(numbers[task_id] for task_id, s in status.items() if s == Status.FAILED.value)
    at_instant = [between_tasks(events, victim, killed_at) for victim, killed_at in kills]
    excuses = [event for event in at_instant if event is not None]

    def excused(n: int, last_done: bool) -> bool:
        for excuse in excuses:
            if not last_done or excuse.n == n:
                excuses.remove(excuse)
                return True
        return False

    problems = []
    had_returned = [n for n in failed if n in returned]
    unexcused = [n for n in had_returned if not excused(n, last_done=True)]
    if unexcused:
        problems.append(
            f"(b) {len(had_returned)} failed tasks had returned ({len(unexcused)} not the last task of a worker killed "
            f"between two tasks), e.g. n={unexcused[:8]}"
        )
    never_started = [n for n in failed if n not in started]
    unexcused = [n for n in never_started if not excused(n, last_done=False)]
    if unexcused:
        problems.append(
            f"(a) {len(never_started)} failed tasks never started ({len(unexcused)} beyond one per kill between two "
            f"tasks), e.g. n={unexcused[:8]}"
        )
    twice = sorted(n for n, count in started.items() if count > 1)
    if twice:
        rerun = [n for n in twice if n in returned]
        problems.append(
            f"(c) {len(twice)} tasks started twice or more ({len(rerun)} after returning), e.g. n={twice[:8]}"
        )
    if len(failed) > len(kills):
        problems.append(f"(d) {len(failed)} tasks failed for {len(kills)} kills")
    others = collections.Counter(
        s for s in status.values() if s in FINISHED - {Status.COMPLETED.value, Status.FAILED.value}
    )
    if others:
        problems.append(f"(e) tasks ended neither completed nor failed: {dict(others)}")
    return problems


@pytest.mark.slow
def test_single_worker_sigkills_fail_at_most_the_task_each_kill_interrupted(tmp_path, db, pools) -> None:
    url, store = db
    seed = time.time_ns()
    rng = random.Random(seed)
    pool = crash_pool(tmp_path, url, "--workers", "2")
    pools.append(pool)
    pool.wait_ready(2)
    # Enough work (~13 s for two workers) that every kill falls while tasks run: never killing a worker younger
    # than QUICK_DEATH_SECONDS spaces the kills ~1 s apart.
    numbers = enqueue_work(store, 2400, rng)
    first_seen = {pid: time.monotonic() for pid in pool.spawned_workers()}
    kills: list[tuple[int, float]] = []  # (victim pid, time.time() once it was killed)
    while len(kills) < 15 and unfinished(store) > 100:
        expected = 2 + len(kills)  # each kill spawns one replacement
        wait_for(lambda n=expected: pool.log().count("worker_started") >= n, 20, what=f"replacement #{len(kills)}")
        live = pool.spawned_workers()
        for pid in live:
            first_seen.setdefault(pid, time.monotonic())
        victim = min(live, key=first_seen.__getitem__)  # the oldest: killing a newborn trips the crash-loop backoff
        # A random moment, not a wait for a condition: where the kill lands in a task's life is what is tested.
        time.sleep(max(rng.uniform(0.05, 0.4), first_seen[victim] + QUICK_DEATH_SECONDS - time.monotonic()))
        if unfinished(store) == 0:
            break
        os.kill(victim, signal.SIGKILL)
        kills.append((victim, time.time()))
    assert len(kills) >= 8, f"only {len(kills)} kills landed while tasks ran (seed {seed}); the test proves too little"
    # The supervisor settles a dead worker's tasks at once, so the rest drains at full speed: no task may wait
    # for its 30 s lease. Judged on the queue as it then stands, drained or not.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: all_finished(store), DRAIN_AFTER_KILLS_SECONDS)
    problems = accounting_violations(store, numbers, pool.runlog, kills)
    if not all_finished(store):
        problems.append(f"(f) {DRAIN_AFTER_KILLS_SECONDS:g} s after the kills: {stuck(store, numbers, pool.runlog)}")
    failed = sum(s == Status.FAILED.value for s in status_by_id(store).values())
    assert not problems, f"{len(kills)} single-worker SIGKILLs, {failed} failed (seed {seed}):\n" + "\n".join(problems)


@pytest.mark.slow
def test_whole_tree_sigkills_never_fail_a_task_that_never_started(tmp_path, db, pools) -> None:
    url, store = db
    seed = time.time_ns()
    rng = random.Random(seed)
    settings = settings_file(tmp_path, "lease: 2s\nshutdown_grace: 1s\n")
    numbers = enqueue_work(store, 1000, rng)
    for round_number in range(3):
        pool = crash_pool(tmp_path, url, "--workers", "2", settings=settings)
        pool.wait_ready(2)
        done_before = len(runs(pool.runlog, "done"))
        wait_for(
            lambda pool=pool, before=done_before: len(runs(pool.runlog, "done")) > before + 20,
            20,
            what=f"round {round_number}: tasks completing",
        )
        time.sleep(rng.uniform(0.0, 0.8))  # a random moment of the drain, on purpose
        assert unfinished(store) > 0, f"round {round_number}: the queue drained before the kill (seed {seed})"
        pool.kill_tree()
    last = crash_pool(tmp_path, url, "--workers", "2", settings=settings)
    pools.append(last)
    wait_for(lambda: all_finished(store), 60, what="every task finished after three whole-tree kills")

    started = counted(last.runlog, "start")
    status = status_by_id(store)
    failed = sorted(numbers[task_id] for task_id, s in status.items() if s == Status.FAILED.value)
    never_started = [n for n in failed if n not in started]
    assert not never_started, (
        f"3 whole-tree SIGKILLs (seed {seed}): {len(never_started)} of {len(failed)} failed tasks never started, "
        f"e.g. n={never_started[:8]}"
    )
    assert len(failed) <= 3 * 2, f"{len(failed)} failed: more than the 2 workers' tasks at each of the 3 kills"


def test_restart_on_the_same_host_recovers_running_tasks_at_once_but_not_other_hosts(tmp_path, db, pools) -> None:
    url, store = db
    settings = settings_file(tmp_path, "shutdown_grace: 1s\n")  # the lease stays at its 30 s default
    task_id = store.enqueue("t.slow", [1, 60], dedup_key="issue11-recover", max_retries=3).id
    first = crash_pool(tmp_path, url, "--workers", "2", settings=settings)
    wait_for(lambda: runs(first.runlog, "start") == ["1"], 20, what="the task started")
    first.kill_tree()
    assert store.require(task_id).status is Status.RUNNING, "the kill should have left the task running"

    # Another host's running task, in the state its live worker keeps it in. No pool is up while it is written.
    foreign_id = store.enqueue("t.slow", [2, 60]).id
    lease_until = utc_now() + timedelta(seconds=30)
    with store.engine.begin() as connection:
        connection.execute(
            update(tasks)
            .where(tasks.c.id == foreign_id)
            .values(
                status="running", worker_id=FOREIGN_WORKER, lease_until=lease_until, started_at=utc_now(), attempts=1
            )
        )

    second = crash_pool(tmp_path, url, "--workers", "2", settings=settings)
    pools.append(second)
    started = time.monotonic()
    second.wait_ready(2)
    ready = time.monotonic()
    wait_for(
        lambda: runs(second.runlog, "start").count("1") >= 2,
        2.0,
        what="the dead pool's task running again within 2 s of the new workers (not after its 30 s lease)",
    )
    assert store.require(task_id).status is Status.RUNNING
    again = store.enqueue("t.slow", [1, 60], dedup_key="issue11-recover", max_retries=3)
    assert (again.id, again.deduplicated) == (task_id, True), "the recovered task must still hold its dedup key"

    while time.monotonic() < max(started, ready) + 3.0:
        foreign = store.require(foreign_id)
        state = (foreign.status, foreign.worker_id, foreign.lease_until)
        assert state == (Status.RUNNING, FOREIGN_WORKER, lease_until), (
            f"another host's task must wait for its lease: {state}"
        )
        time.sleep(0.1)
    assert "2" not in runs(second.runlog, "start")


def test_system_exit_and_keyboard_interrupt_fail_their_task_and_the_worker_lives_on(tmp_path, db, pools) -> None:
    url, store = db
    # Priorities fix the order on the single worker: a plain task around each one that raises.
    order = [
        ("crash.pid", [0]),
        ("crash.system_exit", []),
        ("crash.pid", [1]),
        ("crash.keyboard_interrupt", []),
        ("crash.pid", [2]),
    ]
    ids = [store.enqueue(name, args, priority=50 - 10 * i, max_retries=0).id for i, (name, args) in enumerate(order)]
    pool = crash_pool(tmp_path, url, "--workers", "1")
    pools.append(pool)
    wait_for(lambda: terminal(store, ids), 30, what="all five tasks finished")

    for task_id, exception in ((ids[1], "SystemExit"), (ids[3], "KeyboardInterrupt")):
        task = store.require(task_id)
        assert task.status is Status.FAILED and exception in (task.error or ""), (
            f"{exception}: the task's own traceback, got {task.status.value}: {task.error!r}"
        )
        assert task.attempts == 1
    assert all(store.require(task_id).status is Status.COMPLETED for task_id in ids[0::2])
    pids = run_pids(pool.runlog, "ran")
    assert len({pid for found in pids.values() for pid in found}) == 1, f"one worker should have run all five: {pids}"
    assert "worker_exited" not in pool.log()


def test_postgres_nul_bytes_in_errors_and_progress_are_stored_safely(tmp_path, postgres_url, pools) -> None:
    store = taskq.open_store(postgres_url)
    try:
        error_id = store.enqueue("crash.nul_error", [], priority=30, max_retries=0).id
        progress_id = store.enqueue("crash.nul_progress", [], priority=20, max_retries=0).id
        after_id = store.enqueue("crash.pid", [0], priority=10, max_retries=0).id
        pool = crash_pool(tmp_path, postgres_url, "--workers", "1")
        pools.append(pool)
        wait_for(lambda: terminal(store, [error_id, progress_id, after_id]), 30, what="the three tasks finished")

        failed = store.require(error_id)
        assert failed.status is Status.FAILED and "ValueError" in (failed.error or "") and "bad" in failed.error, (
            f"the task's own error, got {failed.status.value}: {failed.error!r}"
        )
        assert "\x00" not in failed.error
        progressed = store.require(progress_id)
        assert progressed.status is Status.COMPLETED, f"{progressed.status.value}: {progressed.error!r}"
        message = progressed.progress_message or ""
        assert "half" in message and "way" in message and "\x00" not in message, repr(message)
        assert store.require(after_id).status is Status.COMPLETED
        pids = run_pids(pool.runlog, "ran")
        assert len({pid for found in pids.values() for pid in found}) == 1, f"one worker should have run all: {pids}"
        assert "worker_exited" not in pool.log()
    finally:
        store.dispose()


def process_alive(pid_and_start: str) -> bool:
    """Whether the process recorded as `<pid>:<start time>` still runs (a zombie has died; a reused pid is
    another process)."""
    pid, start = pid_and_start.split(":")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Path]:
    """The run log the pool will write; every child process a task recorded there is killed at the end."""
    runlog = tmp_path / "runs.log"
    yield runlog
    if runlog.exists():
        for line in runlog.read_text().splitlines():
            if line.startswith("child-") and process_alive(line.split()[1]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[1].split(":")[0]), signal.SIGKILL)


def spawn_three(store: Store) -> None:
    """One worker runs, in this order: a task that starts `sleep 300` and returns, one whose child detaches
    (a new session) and returns, and one that starts a child and then sleeps."""
    store.enqueue("crash.spawn_child", ["returned", False, 0], priority=30, max_retries=0)
    store.enqueue("crash.spawn_child", ["detached", True, 0], priority=20, max_retries=0)
    store.enqueue("crash.spawn_child", ["sleeping", False, 300], priority=10, max_retries=0)


def child(runlog: Path, tag: str) -> str:
    (found,) = runs(runlog, f"child-{tag}")
    return found


def assert_attached_children_die_and_the_detached_one_lives(runlog: Path, when: str) -> None:
    attached = {tag: child(runlog, tag) for tag in ("returned", "sleeping")}
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not any(map(process_alive, attached.values())), 5.0)
    survivors = [f"{tag} (pid {found.split(':')[0]})" for tag, found in attached.items() if process_alive(found)]
    assert not survivors, f"children of tasks outlived their worker's {when} by 5 s: {survivors}"
    assert process_alive(child(runlog, "detached")), "a child in a session of its own detached on purpose: it stays"


def test_task_children_do_not_outlive_a_pool_shutdown(tmp_path, db, pools, children) -> None:
    url, store = db
    spawn_three(store)
    pool = crash_pool(tmp_path, url, "--workers", "1", settings=settings_file(tmp_path, "shutdown_grace: 1s\n"))
    pools.append(pool)
    wait_for(lambda: runs(children, "child-sleeping"), 20, what="all three children started")
    pool.signal(signal.SIGTERM)
    pool.wait(30)
    assert_attached_children_die_and_the_detached_one_lives(children, "shutdown")


def test_task_children_do_not_outlive_a_sigkilled_worker(tmp_path, db, pools, children) -> None:
    url, store = db
    spawn_three(store)
    pool = crash_pool(tmp_path, url, "--workers", "1", settings=settings_file(tmp_path, "shutdown_grace: 1s\n"))
    pools.append(pool)
    wait_for(lambda: runs(children, "child-sleeping"), 20, what="all three children started")
    ((worker,),) = run_pids(children, "child-sleeping").values()  # the pid of the worker that started it
    assert worker in pool.spawned_workers()
    os.kill(worker, signal.SIGKILL)
    assert_attached_children_die_and_the_detached_one_lives(children, "SIGKILL")
