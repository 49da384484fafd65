"""The worker's heartbeat duties, each driven with run_once(now) and explicit monotonic times, against a
real SQLite store and a worker object that holds real claimed tasks (no process, no heartbeat thread)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from taskq.clock import utc_now
from taskq.heartbeat import (
    CANCEL_CHECK_SECONDS,
    PREFETCH_HOLD_SECONDS,
    WORKER_ROW_SECONDS,
    CancelWatch,
    LeaseRenewal,
    OrphanGuard,
    ProgressFlush,
    SlowStarts,
    SupervisorWatch,
    WorkerRow,
)
from taskq.model import Completion, Status, Task
from taskq.store import Store
from taskq.worker_config import WorkerConfig
from taskq.worker_kernel import Worker


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
def worker(store: Store) -> Iterator[Worker]:
    config = WorkerConfig(name="worker-1", database=str(store.engine.url), shutdown_grace=5.0)
    made = Worker(config, store)
    yield made
    for fd in (made._stop_r, made._stop_w):
        os.close(fd)


@pytest.fixture
def exits(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the worker's SIGKILL of its own process group would have done, recorded instead."""
    killed: list[str] = []
    monkeypatch.setattr(worker, "kill_own_group", lambda: killed.append("killed"))
    return killed


def claim(worker: Worker, count: int) -> list[Task]:
    """`count` tasks enqueued and claimed by this worker: the first is executing, the rest prefetched."""
    for number in range(count):
        worker.store.enqueue("taskq.echo", [number])
    claimed = worker.finish_and_claim(count)
    assert len(claimed) == count
    worker.prefetched.extend(claimed[1:])
    worker.begin(claimed[0])
    return claimed


def test_leases_of_every_held_task_are_renewed_once_a_third_of_the_lease_passed(worker: Worker) -> None:
    claimed = claim(worker, 3)
    returned = worker.store.enqueue("taskq.echo").id
    [late] = worker.finish_and_claim(1)
    assert late.id == returned
    worker.defer(Completion(late.id, late.attempts, "ok", utc_now()))
    before = {task.id: worker.store.get(task.id).lease_until for task in [*claimed, late]}
    start = time.monotonic()
    duty = LeaseRenewal(worker, start)
    every = worker.config.lease_seconds / 3
    assert duty.run_once(start + every - 0.01) == {"leases_renewed": 0, "cancelled": 0}
    assert duty.run_once(start + every) == {"leases_renewed": 4, "cancelled": 0}
    for task_id, lease in before.items():
        assert worker.store.get(task_id).lease_until > lease
    assert duty.run_once(start + every + 1.0)["leases_renewed"] == 0, "not again before the next third"


def test_a_lease_renewal_tells_an_executing_task_its_cancellation(worker: Worker) -> None:
    [executing, prefetched] = claim(worker, 2)
    worker.store.cancel(executing.id)
    worker.store.cancel(prefetched.id)  # not executing: the worker's loop finds out when it claims it
    start = time.monotonic()
    duty = LeaseRenewal(worker, start)
    assert duty.run_once(start + worker.config.lease_seconds / 3)["cancelled"] == 1
    assert worker.executing[executing.id].context.cancelled


def test_cancel_requests_are_read_every_check_period_and_told_once(worker: Worker) -> None:
    start = time.monotonic()
    duty = CancelWatch(worker, start)
    assert duty.run_once(start + 60.0) == {"cancelled": 0}, "nothing executing: nothing read"
    [task] = claim(worker, 1)
    worker.store.cancel(task.id)
    duty = CancelWatch(worker, start)
    assert duty.run_once(start + CANCEL_CHECK_SECONDS - 0.01) == {"cancelled": 0}
    assert not worker.executing[task.id].context.cancelled
    assert duty.run_once(start + CANCEL_CHECK_SECONDS) == {"cancelled": 1}
    assert worker.executing[task.id].context.cancelled
    assert duty.run_once(start + 2 * CANCEL_CHECK_SECONDS) == {"cancelled": 0}, "told once"


def test_throttled_progress_of_executing_tasks_is_stored_in_one_statement(worker: Worker) -> None:
    [task] = claim(worker, 1)
    context = worker.executing[task.id].context
    context.progress(10.0)  # the first report is written at once...
    context.progress(50.0, "half")  # ...the next, within the throttle interval, waits for the heartbeat
    assert worker.store.get(task.id).progress == 10.0
    duty = ProgressFlush(worker)
    assert duty.run_once(time.monotonic()) == {"progress_stored": 1}
    stored = worker.store.get(task.id)
    assert (stored.progress, stored.progress_message) == (50.0, "half")
    assert duty.run_once(time.monotonic()) == {"progress_stored": 0}, "nothing new"


def test_a_slow_task_records_its_start_and_hands_back_the_prefetched_tasks(worker: Worker) -> None:
    [slow, *behind] = claim(worker, 3)
    started = worker.executing[slow.id].started
    duty = SlowStarts(worker)
    assert duty.run_once(started + PREFETCH_HOLD_SECONDS) == {"starts_recorded": 0}
    assert worker.store.get(slow.id).started_at is None
    assert duty.run_once(started + PREFETCH_HOLD_SECONDS + 0.01) == {"starts_recorded": 1}
    assert worker.store.get(slow.id).started_at is not None
    assert not worker.prefetched
    assert [worker.store.get(task.id).status for task in behind] == [Status.PENDING, Status.PENDING]
    assert duty.run_once(started + 60.0) == {"starts_recorded": 0}, "recorded once"


def test_the_workers_row_is_written_every_row_period(worker: Worker) -> None:
    worker.store.register_worker(worker.id, hostname="host", pid=os.getpid(), name="worker-1", queues=[])
    registered = worker.store.list_workers()[0].heartbeat_at
    [task] = claim(worker, 1)
    worker.tasks_done = 7
    start = time.monotonic()
    duty = WorkerRow(worker, start)
    assert duty.run_once(start + WORKER_ROW_SECONDS - 0.01) == {"worker_row": 0}
    assert duty.run_once(start + WORKER_ROW_SECONDS) == {"worker_row": 1}
    [row] = worker.store.list_workers()
    assert (row.current_task_id, row.tasks_done) == (task.id, 7)
    assert row.heartbeat_at > registered


def test_a_worker_whose_supervisor_is_gone_stops(worker: Worker) -> None:
    assert SupervisorWatch(worker, os.getppid()).run_once(time.monotonic()) == {"supervisor_lost": 0}
    assert not worker.stop_requested
    someone_else = os.getppid() + 1
    assert SupervisorWatch(worker, someone_else).run_once(time.monotonic()) == {"supervisor_lost": 1}
    assert worker.stop_requested


def test_a_lost_supervisor_is_noticed_even_after_a_stop_was_asked(worker: Worker) -> None:
    worker.request_stop()  # a SIGTERM first, then the supervisor dies: the worker must still know
    someone_else = os.getppid() + 1
    now = time.monotonic()
    assert SupervisorWatch(worker, someone_else).run_once(now) == {"supervisor_lost": 1}
    assert worker.supervisor_lost_at == now and worker.orphaned()
    assert SupervisorWatch(worker, someone_else).run_once(now + 1.0) == {"supervisor_lost": 0}, "once"


def test_an_orphan_fails_a_task_past_its_timeout_as_the_supervisor_would_and_ends_itself(
    worker: Worker, exits: list[str]
) -> None:
    task_id = worker.store.enqueue("taskq.echo", ["hung"], timeout=3, max_retries=1).id
    [task] = worker.finish_and_claim(1)
    worker.begin(task)
    started = worker.executing[task.id].started
    guard = OrphanGuard(worker)
    assert guard.run_once(started + 60.0) == {"orphan_exits": 0}, "the supervisor enforces it while it lives"
    worker.supervisor_lost_at = started + 1.0
    assert guard.run_once(started + 2.9) == {"orphan_exits": 0}
    assert guard.run_once(started + 3.1) == {"orphan_exits": 1}
    assert exits == ["killed"]
    row = worker.store.require(task_id)
    assert row.status is Status.PENDING and row.attempts == 1  # a failed attempt, retried per its policy
    assert "TimeoutError" in row.error_log[0]["error"]


def test_an_orphan_releases_what_it_holds_uncounted_once_its_grace_passed(worker: Worker, exits: list[str]) -> None:
    claimed = claim(worker, 2)  # one executing, one prefetched
    lost = time.monotonic()
    worker.supervisor_lost_at = lost
    guard = OrphanGuard(worker)
    assert guard.run_once(lost + worker.config.shutdown_grace - 0.01) == {"orphan_exits": 0}
    assert guard.run_once(lost + worker.config.shutdown_grace + 0.01) == {"orphan_exits": 1}
    assert exits == ["killed"]
    rows = [worker.store.require(task.id) for task in claimed]
    assert [(row.status, row.attempts, row.worker_id) for row in rows] == [(Status.PENDING, 0, None)] * 2
