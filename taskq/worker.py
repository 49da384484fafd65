"""One worker process: its own engine, a claim -> execute loop, lease renewal, and an idle wait that
costs nothing (it sleeps on a pipe the supervisor writes to when the database changes).

Started by the pool as `python -m taskq.worker '<json config>'`; talks to the supervisor over two
inherited pipes: `wake_fd` (supervisor -> worker: "there may be work") and `status_fd` (worker ->
supervisor: JSON lines saying which task it runs, so the supervisor can enforce timeouts).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from taskq import registry
from taskq.api import open_store
from taskq.context import TaskContext
from taskq.executor import execute
from taskq.model import Completion, Task
from taskq.store import Store

IDLE_POLL_MIN_SECONDS = 0.05  # fallback poll when no wake-up arrives: starts here after work...
IDLE_POLL_MAX_SECONDS = 5.0  # ...and backs off to this while idle (wake-ups and next_run_after do the real work)
PROGRESS_FLUSH_SECONDS = 0.25  # throttled progress reaches the database at least this often
CANCEL_CHECK_SECONDS = 0.5  # how often a running task's cancel flag is read
WORKER_ROW_SECONDS = 10.0  # how often the workers-table heartbeat is written
QUICK_TASK_SECONDS = 0.05  # tasks faster than this let the claim batch grow (fewer round trips per task)
PREFETCH_HOLD_SECONDS = 0.25  # prefetched tasks waiting behind a task slower than this are handed back

log = logging.getLogger("taskq.worker")


@dataclass(frozen=True)
class WorkerConfig:
    name: str  # worker-N
    database: str
    queues: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    lease_seconds: float = 30.0
    prefetch: int = 8  # most tasks claimed per round trip; the batch adapts from 1 up to this
    max_tasks: int | None = None  # recycle after this many tasks
    max_memory_mb: float | None = None  # recycle once resident memory exceeds this
    log_level: str = "INFO"
    wake_fd: int = -1
    status_fd: int = -1

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class Worker:
    def __init__(self, config: WorkerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.id = f"{socket.gethostname()}:{os.getpid()}:{config.name}"
        # A plain flag, not a threading.Event: the SIGTERM handler runs on the main thread between two
        # bytecodes, possibly while that thread holds an Event's lock, and would deadlock taking it again.
        self.stop_requested = False
        self.prefetched: deque[Task] = deque()
        self.unrecorded: list[Completion] = []  # successes recorded with the next claim, one transaction
        self._prefetch_lock = threading.Lock()  # guards prefetched and unrecorded (main vs heartbeat thread)
        self.batch_size = 1
        self.current: TaskContext | None = None
        self.tasks_done = 0
        self._status_lock = threading.Lock()
        self._parent_pid = os.getppid()
        self._stop_r, self._stop_w = os.pipe()
        self._task_started = threading.Event()
        self._current_started = 0.0

    # -- talking to the supervisor ----------------------------------------------------------------

    def report(self, event: str, **fields: Any) -> None:
        if self.config.status_fd < 0:
            return
        line = (json.dumps({"e": event, **fields}) + "\n").encode()
        with self._status_lock:
            try:
                os.write(self.config.status_fd, line)
            except OSError:  # supervisor gone: finish the current task and leave
                self.stop_requested = True

    def request_stop(self, *_: object) -> None:
        """Also the SIGTERM handler: only async-signal-safe work (a flag and a pipe write)."""
        self.stop_requested = True
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    def wait_for_work(self, timeout: float) -> None:
        watched = [self._stop_r] + ([self.config.wake_fd] if self.config.wake_fd >= 0 else [])
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if self.config.wake_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.config.wake_fd, 65536)  # drain every queued nudge at once

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        self.store.register_worker(
            self.id, hostname=socket.gethostname(), pid=os.getpid(), name=self.config.name, queues=self.config.queues
        )
        log.info("worker_started worker_id=%s queues=%s", self.id, ",".join(self.config.queues) or "*")
        self.report("ready")  # imports done, database reachable: the supervisor's READY=1 waits for this
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        idle_poll = IDLE_POLL_MIN_SECONDS
        try:
            while not self.stop_requested:
                task = self._next_task()
                if task is None:
                    self.wait_for_work(self._idle_timeout(idle_poll))
                    idle_poll = min(idle_poll * 2, IDLE_POLL_MAX_SECONDS)
                    continue
                idle_poll = IDLE_POLL_MIN_SECONDS
                seconds = self.run_task(task)
                # Quick tasks grow the claim batch (one write transaction serves several tasks); a slow
                # one shrinks it back so long tasks are spread over all workers.
                quick = seconds < QUICK_TASK_SECONDS
                self.batch_size = min(self.batch_size * 2, self.config.prefetch) if quick else 1
                if self._should_recycle():
                    break
        finally:
            self._record_finished()
            self._hand_back_prefetched()
            self.stop_requested = True
            self._task_started.set()
            self.store.unregister_worker(self.id)
            log.info("worker_stopped worker_id=%s tasks_done=%d", self.id, self.tasks_done)
        return 0

    def _next_task(self) -> Task | None:
        with self._prefetch_lock:
            if self.prefetched:
                return self.prefetched.popleft()
            finished, self.unrecorded = self.unrecorded, []
        recorded, claimed = self.store.finish_and_claim(
            self.id,
            finished,
            self.config.queues or None,
            limit=self.batch_size,
            lease_seconds=self.config.lease_seconds,
        )
        self._log_lost(finished, recorded)
        if not claimed:
            return None
        if len(claimed) > 1:
            # Tell the supervisor, so that if this process dies they go straight back to pending.
            self.report("prefetched", ids=[task.id for task in claimed[1:]])
        with self._prefetch_lock:
            self.prefetched.extend(claimed[1:])
        return claimed[0]

    def _record_finished(self) -> None:
        with self._prefetch_lock:
            finished, self.unrecorded = self.unrecorded, []
        if finished:
            recorded, _ = self.store.finish_and_claim(self.id, finished, limit=0)
            self._log_lost(finished, recorded)

    def _log_lost(self, finished: list[Completion], recorded: list[int]) -> None:
        for completion in finished:
            if completion.task_id not in recorded:
                log.warning(
                    "task_lost task_id=%s: its lease was recovered before the result was stored", completion.task_id
                )

    def _defer(self, completion: Completion) -> None:
        with self._prefetch_lock:
            self.unrecorded.append(completion)

    def _hand_back_prefetched(self) -> None:
        """Prefetched tasks go back to pending (attempt not counted) for other workers to take."""
        with self._prefetch_lock:
            waiting = [task.id for task in self.prefetched]
            self.prefetched.clear()
        if waiting:
            self.store.release(waiting, worker_id=self.id)
            self.report("released", ids=waiting)

    def _idle_timeout(self, idle_poll: float) -> float:
        """Sleep until the earliest delayed task is due, if that comes before the next fallback poll."""
        next_due = self.store.next_run_after(self.config.queues or None)
        if next_due is None:
            return idle_poll
        return min(idle_poll, max(0.0, next_due.timestamp() - time.time()))

    def _should_recycle(self) -> bool:
        if self.config.max_tasks is not None and self.tasks_done >= self.config.max_tasks:
            log.info("worker_recycle worker_id=%s reason=max_tasks tasks_done=%d", self.id, self.tasks_done)
            return True
        if self.config.max_memory_mb is not None and resident_mb() > self.config.max_memory_mb:
            log.info("worker_recycle worker_id=%s reason=max_memory rss_mb=%.0f", self.id, resident_mb())
            return True
        return False

    @staticmethod
    def timeout_of(task: Task) -> float | None:
        """The row's timeout, else the task's @task(timeout=...) (the enqueuer may not have imported it)."""
        if task.timeout is not None:
            return task.timeout
        spec = registry.find(task.name)
        return None if spec is None else spec.timeout

    def run_task(self, task: Task) -> float:
        """Run one task to its outcome; returns how long it took."""
        context = TaskContext(self.store, task, self.id)
        self.current = context
        self._current_started = time.monotonic()
        self._task_started.set()
        self.report("start", id=task.id, attempt=task.attempts, timeout=self.timeout_of(task))
        log.debug("task_started task_id=%s name=%s attempt=%d worker_id=%s", task.id, task.name, task.attempts, self.id)
        started = time.monotonic()
        outcome = execute(self.store, task, self.id, context, defer_success=self._defer)
        self.current = None
        self.tasks_done += 1
        self.report("end", id=task.id)
        seconds = time.monotonic() - started
        log.info(
            "%s task_id=%s name=%s attempt=%d seconds=%.3f",
            outcome.event if outcome.status is not None else "task_lost",
            task.id,
            task.name,
            task.attempts,
            seconds,
        )
        return seconds

    # -- heartbeat: leases, progress, cancellation ---------------------------------------------------

    def _heartbeat_loop(self) -> None:
        renew_every = self.config.lease_seconds / 3
        last_renew = last_cancel_check = last_row = time.monotonic()
        while not self.stop_requested:
            # Idle workers sleep until the next lease/row duty; run_task wakes us when a task starts.
            self._task_started.wait(PROGRESS_FLUSH_SECONDS if self.current is not None else renew_every)
            self._task_started.clear()
            try:
                now = time.monotonic()
                if os.getppid() != self._parent_pid:
                    log.warning("supervisor_lost worker_id=%s: finishing the current task and exiting", self.id)
                    self.request_stop()
                current = self.current
                if current is not None:
                    if now - self._current_started > PREFETCH_HOLD_SECONDS:
                        self._record_finished()
                        self._hand_back_prefetched()
                    current.flush_progress()
                    if not current.cancelled and now - last_cancel_check >= CANCEL_CHECK_SECONDS:
                        last_cancel_check = now
                        if self.store.is_cancel_requested(current.task_id):
                            self._cancel(current)
                if now - last_renew >= renew_every:
                    last_renew = now
                    with self._prefetch_lock:
                        held = [task.id for task in self.prefetched] + [c.task_id for c in self.unrecorded]
                    held += [current.task_id] if current else []
                    for task_id in self.store.renew_leases(self.id, held, lease_seconds=self.config.lease_seconds):
                        if current is not None and task_id == current.task_id and not current.cancelled:
                            self._cancel(current)
                if now - last_row >= WORKER_ROW_SECONDS:
                    last_row = now
                    self.store.heartbeat_worker(
                        self.id, current_task_id=current.task_id if current else None, tasks_done=self.tasks_done
                    )
            except Exception:  # a heartbeat must outlive a database hiccup; the lease gives it 3 chances
                log.exception("heartbeat_error worker_id=%s", self.id)

    def _cancel(self, context: TaskContext) -> None:
        context.cancel_event.set()
        self.report("cancel", id=context.task_id)
        log.info("task_cancel_requested task_id=%s worker_id=%s", context.task_id, self.id)


def main(argv: list[str] | None = None) -> int:
    config = WorkerConfig(**json.loads((argv or sys.argv[1:])[0]))
    logging.basicConfig(
        level=config.log_level,
        format=f"%(asctime)s %(levelname)s [{config.name} pid {os.getpid()}] %(message)s",
        stream=sys.stderr,
    )
    # The terminal's Ctrl-C reaches the whole process group; only the supervisor decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    early_stop: list[int] = []  # a SIGTERM during start-up (imports can be slow) must not be lost
    signal.signal(signal.SIGTERM, lambda signum, _frame: early_stop.append(signum))
    registry.import_task_modules(config.imports)
    store = open_store(config.database, upgrade=False)
    worker = Worker(config, store)
    signal.signal(signal.SIGTERM, worker.request_stop)
    if early_stop:
        worker.request_stop()
    for fd in (config.wake_fd, worker._stop_r):
        if fd >= 0:
            os.set_blocking(fd, False)
    try:
        return worker.run()
    finally:
        store.dispose()


if __name__ == "__main__":
    sys.exit(main())
