"""A worker's heartbeat: small duties with run_once(now) -> counts, as the pool's maintenance duties
(taskq/maintenance.py), ticked in order by the worker's heartbeat thread (`beat`).

`now` is time.monotonic() seconds, the clock the worker stamps executing tasks with, so tests drive the
duties with explicit times. Each duty reads what the worker holds when it runs and writes through the
store in one batched statement for all the tasks it concerns: a worker running many coroutines costs one
round trip per duty and tick, not one per task.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Protocol

from taskq.events import log_event
from taskq.protocol import KillReason
from taskq.worker_kernel import Worker

PROGRESS_FLUSH_SECONDS = 0.25  # throttled progress reaches the database at least this often
CANCEL_CHECK_SECONDS = 0.5  # how often a running task's cancel flag is read
WORKER_ROW_SECONDS = 10.0  # how often the workers-table heartbeat is written
PREFETCH_HOLD_SECONDS = 0.25  # past this, a task's start is recorded and the prefetched tasks behind it handed back

log = logging.getLogger("taskq.worker")


class HeartbeatDuty(Protocol):
    def run_once(self, now: float) -> dict[str, int]: ...


class SupervisorWatch:
    """A worker whose supervisor died (it was re-parented) claims nothing more, finishes what it runs and
    exits: a restarted pool starts workers of its own. Noticed even when a stop was asked before (a SIGTERM
    then the supervisor's death): from then on, OrphanGuard enforces what the supervisor would have."""

    def __init__(self, worker: Worker, parent_pid: int) -> None:
        self.worker = worker
        self.parent_pid = parent_pid

    def run_once(self, now: float) -> dict[str, int]:
        if os.getppid() == self.parent_pid or self.worker.supervisor_lost_at is not None:
            return {"supervisor_lost": 0}
        log_event(
            log,
            logging.WARNING,
            "supervisor_lost",
            worker_id=self.worker.id,
            shutdown_grace=self.worker.config.shutdown_grace,
            detail="claiming nothing more; finishing its tasks (their timeouts enforced here) and exiting",
        )
        self.worker.supervisor_lost_at = now
        self.worker.request_stop()
        return {"supervisor_lost": 1}


class OrphanGuard:
    """The supervisor's duties, done by a worker whose supervisor is gone: a task past its timeout or its
    cancel grace, or any task still running `shutdown_grace` after the loss, ends the worker as the
    supervisor's kill would have. The worker's copy of the supervisor's ledger decides each task's outcome
    (a timeout is a failed attempt, a grace that expired puts the tasks back to pending uncounted), and the
    worker settles them in the database before it SIGKILLs its own process group."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run_once(self, now: float) -> dict[str, int]:
        worker = self.worker
        if worker.supervisor_lost_at is None:
            return {"orphan_exits": 0}
        overdue = worker.overdue(now)
        if overdue:
            culprit = overdue[0]
            log_event(
                log,
                logging.WARNING,
                "task_timeout" if culprit.reason is KillReason.TIMEOUT else "task_cancel_forced",
                task_id=culprit.task_id,
                worker_id=worker.id,
                detail="the worker (orphaned) ends itself",
            )
            worker.settle_and_exit(culprit.reason, culprit.task_id)
        elif now - worker.supervisor_lost_at > worker.config.shutdown_grace:
            log_event(
                log,
                logging.WARNING,
                "shutdown_grace_expired",
                worker_id=worker.id,
                detail="(orphaned) releasing its tasks",
            )
            worker.settle_and_exit(KillReason.SHUTDOWN)
        else:
            return {"orphan_exits": 0}
        return {"orphan_exits": 1}  # reached only where settle_and_exit does not kill (unit tests)


class SlowStarts:
    """Tasks executing past PREFETCH_HOLD_SECONDS: the prefetched tasks behind them go back for other
    workers (after the deferred successes are recorded), and their starts are recorded now, so that even
    a whole-host loss during them counts against their retries."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run_once(self, now: float) -> dict[str, int]:
        slow = [
            e.context
            for e in list(self.worker.executing.values())
            if now - e.started > PREFETCH_HOLD_SECONDS and not e.context.start_recorded
        ]
        if not slow:
            return {"starts_recorded": 0}
        self.worker.hand_back_prefetched()
        for context in slow:
            context.start_recorded = True
        self.worker.store.mark_started_many(self.worker.id, [(c.task_id, c.started_at) for c in slow])
        return {"starts_recorded": len(slow)}


class ProgressFlush:
    """The executing tasks' throttled progress, in one statement, every tick (PROGRESS_FLUSH_SECONDS
    while tasks execute)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run_once(self, now: float) -> dict[str, int]:
        executing = list(self.worker.executing.values())
        reports = [report for e in executing if (report := e.context.take_progress())]
        return {"progress_stored": self.worker.store.set_progress_many(reports)}


class CancelWatch:
    """Reads, every CANCEL_CHECK_SECONDS, which executing tasks someone asked to cancel, and tells them."""

    def __init__(self, worker: Worker, now: float) -> None:
        self.worker = worker
        self.last = now

    def run_once(self, now: float) -> dict[str, int]:
        executing = list(self.worker.executing.values())
        if not executing or now - self.last < CANCEL_CHECK_SECONDS:
            return {"cancelled": 0}
        self.last = now  # before the read: a failing database is tried again next period, not next tick
        watched = [e.context.task_id for e in executing if not e.context.cancelled]
        return {"cancelled": self.worker.cancel_executing(self.worker.store.cancel_requested_among(watched))}


class LeaseRenewal:
    """Every third of the lease, extends the leases of every task the worker holds: prefetched, deferred
    (returned, success not committed), executing, claimed and waiting to start. The same statement says
    which of them were asked to cancel."""

    def __init__(self, worker: Worker, now: float) -> None:
        self.worker = worker
        self.every = worker.config.lease_seconds / 3
        self.last = now

    def run_once(self, now: float) -> dict[str, int]:
        if now - self.last < self.every:
            return {"leases_renewed": 0, "cancelled": 0}
        self.last = now
        worker = self.worker
        held = worker.held_task_ids()
        cancel_requested = worker.store.renew_leases(worker.id, held, lease_seconds=worker.config.lease_seconds)
        return {"leases_renewed": len(held), "cancelled": worker.cancel_executing(cancel_requested)}


class WorkerRow:
    """The workers-table row (`taskq workers`, the dashboard): alive, current task, tasks done."""

    def __init__(self, worker: Worker, now: float) -> None:
        self.worker = worker
        self.last = now

    def run_once(self, now: float) -> dict[str, int]:
        if now - self.last < WORKER_ROW_SECONDS:
            return {"worker_row": 0}
        self.last = now
        executing = list(self.worker.executing.values())
        self.worker.store.heartbeat_worker(
            self.worker.id,
            current_task_id=executing[0].context.task_id if executing else None,
            tasks_done=self.worker.tasks_done,
        )
        return {"worker_row": 1}


def duties(worker: Worker, now: float, parent_pid: int) -> list[HeartbeatDuty]:
    """In the order of one tick (the order the heartbeat loop always had): a lost supervisor first."""
    return [
        SupervisorWatch(worker, parent_pid),
        OrphanGuard(worker),
        SlowStarts(worker),
        ProgressFlush(worker),
        CancelWatch(worker, now),
        LeaseRenewal(worker, now),
        WorkerRow(worker, now),
    ]


def beat(worker: Worker) -> None:
    """The heartbeat thread: ticks the duties until the worker's loop has ended and every outcome is recorded."""
    ticked = duties(worker, time.monotonic(), worker.parent_pid)
    renew_every = worker.config.lease_seconds / 3
    while not worker.heartbeat_done:
        # Idle workers sleep until the next lease/row duty; begin() wakes us when a task starts.
        worker.heartbeat_idle = not worker.executing
        worker.heartbeat_wake.wait(renew_every if worker.heartbeat_idle else PROGRESS_FLUSH_SECONDS)
        worker.heartbeat_idle = False
        worker.heartbeat_wake.clear()
        now = time.monotonic()
        worker.flush_logs()
        for duty in ticked:
            try:
                duty.run_once(now)
            except Exception:  # a heartbeat must outlive a database hiccup; the lease gives it 3 chances
                log_event(
                    log,
                    logging.ERROR,
                    "heartbeat_error",
                    exc_info=True,
                    worker_id=worker.id,
                    duty=type(duty).__name__,
                )
