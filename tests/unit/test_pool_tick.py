"""The supervisor's decisions, one `Pool.tick(now)` at a time with explicit monotonic times, as the heartbeat's
duties are driven: a real Pool on a real SQLite file, whose worker is a real process standing in for one
(`cat`, as busy as a worker in a long task: it ignores SIGTERM and exits once its stdin closes). Its status
lines are written into the real pipe the pool reads, so the pool learns what it runs as from a worker.
The pool wants no workers of its own (`workers: 0`): no tick starts one."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from poolkit import wait_for

import taskq
from taskq import protocol
from taskq.identity import WorkerIdentity
from taskq.model import Status
from taskq.pool import Pool, WorkerHandle, has_exited
from taskq.protocol import KillReason
from taskq.settings import Settings
from taskq.supervision import WorkerLedger

GRACE = 5.0  # shutdown_grace


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    url = f"sqlite:///{tmp_path / 'taskq.db'}"
    taskq.open_store(url).dispose()  # migrated, as `taskq worker` leaves it for its pool
    made = Pool(dataclasses.replace(Settings(), database=url, workers=0, shutdown_grace=GRACE), fork_server=False)
    yield made
    for handle in made.handles:
        handle.process.kill()
        handle.process.wait()
        os.close(handle.status_fd)
        os.close(handle.wake_fd)
    os.close(made._signal_r)
    os.close(made._signal_w)
    made.store.dispose()


class StandIn:
    """A process in a worker's place, with the worker's end of its status pipe."""

    def __init__(self, pool: Pool, number: int = 1) -> None:
        # Ignored here, so ignored from the child's first instruction on (ignored signals survive exec).
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.process = subprocess.Popen(
                ["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
        status_r, self.status_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.close(wake_r)
        os.set_blocking(status_r, False)
        config = pool.worker_config(f"worker-{number}")
        worker_id = str(WorkerIdentity.of_process(self.process.pid, config.name))
        ledger = WorkerLedger(config.name, cancel_grace=pool.settings.cancel_grace)
        self.handle = WorkerHandle(number, config, self.process, status_r, wake_w, time.monotonic(), worker_id, ledger)
        pool.handles.append(self.handle)
        self.pool = pool

    def says(self, message: protocol.Message) -> None:
        """A status line, read by the pool as its loop reads them."""
        os.write(self.status_w, protocol.encode(message))
        assert self.pool.read_status(self.handle)

    def finishes(self) -> None:
        """Its task returned and it exits, as a retiring worker does (exit code 0)."""
        os.close(self.status_w)
        assert self.process.stdin is not None
        self.process.stdin.close()

    def exited(self) -> bool:
        return has_exited(self.process.pid)  # without reaping it: that is the pool's


def test_a_worker_past_its_tasks_timeout_is_killed_for_it_and_the_task_fails_as_a_timeout(pool: Pool) -> None:
    task_id = pool.store.enqueue("taskq.sleep", [60], timeout=3, max_retries=0).id
    worker = StandIn(pool)
    task = pool.store.claim(worker.handle.worker_id)
    assert task is not None and task.id == task_id
    worker.says(protocol.Started(task.id, task.attempts, 3.0))
    started = worker.handle.ledger.running[task.id].started
    assert pool.tick(started + 2.9) is None
    assert not worker.handle.ledger.killed and not worker.exited()
    assert pool.tick(started + 3.1) is None
    assert worker.handle.ledger.kill_reasons == {task.id: KillReason.TIMEOUT}
    wait_for(lambda: worker.handle not in pool.handles or worker.exited(), timeout=10, what="the SIGKILL")
    os.close(worker.status_w)
    assert pool.tick(started + 3.2) is None
    assert pool.handles == []
    row = pool.store.require(task_id)
    assert (row.status, row.attempts) == (Status.FAILED, 1)
    assert row.error is not None and protocol.timeout_message(3.0) in row.error


def test_a_retiring_worker_still_running_past_its_stop_deadline_is_killed_and_its_task_released(pool: Pool) -> None:
    task_id = pool.store.enqueue("taskq.sleep", [60]).id
    worker = StandIn(pool)
    task = pool.store.claim(worker.handle.worker_id)
    assert task is not None and task.id == task_id
    worker.says(protocol.Started(task.id, task.attempts, None))
    now = time.monotonic()
    pool.retire(worker.handle, now)  # a scale-down or a settings edit: SIGTERM, which it sits out
    assert worker.handle.stop_deadline == now + GRACE
    assert pool.tick(now + GRACE - 0.1) is None
    assert not worker.handle.ledger.killed and not worker.exited()
    assert pool.tick(now + GRACE + 0.1) is None
    assert worker.handle.ledger.kill_reasons == {task.id: KillReason.SHUTDOWN}
    wait_for(lambda: worker.handle not in pool.handles or worker.exited(), timeout=10, what="the SIGKILL")
    os.close(worker.status_w)
    assert pool.tick(now + GRACE + 0.2) is None
    assert pool.handles == []
    row = pool.store.require(task_id)
    assert (row.status, row.attempts, row.worker_id) == (Status.PENDING, 0, None)  # released, not counted


def test_shutdown_completes_once_no_worker_is_left(pool: Pool) -> None:
    worker = StandIn(pool)
    pool.begin_shutdown("SIGTERM")
    assert pool.shutting_down and worker.handle.retiring
    now = time.monotonic()
    assert pool.tick(now) is None, "its worker still runs"
    assert pool.tick(now + GRACE - 0.1) is None
    assert pool.handles == [worker.handle] and not worker.handle.ledger.killed
    worker.finishes()
    wait_for(worker.exited, timeout=10, what="the worker's exit")
    assert pool.tick(now + GRACE - 0.05) == 0
    assert pool.handles == []


def test_a_shutdown_without_workers_completes_at_the_first_tick(pool: Pool) -> None:
    assert pool.tick(time.monotonic()) is None, "running: it converges to the wanted count, none"
    pool.begin_shutdown("SIGTERM")
    assert pool.tick(time.monotonic()) == 0
