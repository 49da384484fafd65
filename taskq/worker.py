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
from taskq.model import Task
from taskq.store import Store

IDLE_POLL_MIN_SECONDS = 0.05  # fallback poll when no wake-up arrives: starts here after work...
IDLE_POLL_MAX_SECONDS = 5.0  # ...and backs off to this while idle (wake-ups and next_run_after do the real work)
PROGRESS_FLUSH_SECONDS = 0.25  # throttled progress reaches the database at least this often
CANCEL_CHECK_SECONDS = 0.5  # how often a running task's cancel flag is read
WORKER_ROW_SECONDS = 10.0  # how often the workers-table heartbeat is written

log = logging.getLogger("taskq.worker")


@dataclass(frozen=True)
class WorkerConfig:
    name: str  # worker-N
    database: str
    queues: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    lease_seconds: float = 30.0
    prefetch: int = 1
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
        self.stopping = threading.Event()
        self.prefetched: deque[Task] = deque()
        self.current: TaskContext | None = None
        self.tasks_done = 0
        self._status_lock = threading.Lock()
        self._parent_pid = os.getppid()
        self._stop_r, self._stop_w = os.pipe()
        self._task_started = threading.Event()

    # -- talking to the supervisor ----------------------------------------------------------------

    def report(self, event: str, **fields: Any) -> None:
        if self.config.status_fd < 0:
            return
        line = (json.dumps({"e": event, **fields}) + "\n").encode()
        with self._status_lock:
            try:
                os.write(self.config.status_fd, line)
            except OSError:  # supervisor gone: finish the current task and leave
                self.stopping.set()

    def request_stop(self, *_: object) -> None:
        self.stopping.set()
        self._task_started.set()
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
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        idle_poll = IDLE_POLL_MIN_SECONDS
        try:
            while not self.stopping.is_set():
                if not self.prefetched:
                    self.prefetched.extend(
                        self.store.claim_batch(
                            self.id,
                            self.config.queues or None,
                            limit=self.config.prefetch,
                            lease_seconds=self.config.lease_seconds,
                        )
                    )
                if not self.prefetched:
                    self.wait_for_work(self._idle_timeout(idle_poll))
                    idle_poll = min(idle_poll * 2, IDLE_POLL_MAX_SECONDS)
                    continue
                idle_poll = IDLE_POLL_MIN_SECONDS
                self.run_task(self.prefetched.popleft())
                if self._should_recycle():
                    break
        finally:
            if self.prefetched:
                self.store.release([task.id for task in self.prefetched], worker_id=self.id)
            self.stopping.set()
            self.store.unregister_worker(self.id)
            log.info("worker_stopped worker_id=%s tasks_done=%d", self.id, self.tasks_done)
        return 0

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

    def run_task(self, task: Task) -> None:
        context = TaskContext(self.store, task, self.id)
        self.current = context
        self._task_started.set()
        self.report("start", id=task.id, attempt=task.attempts, timeout=task.timeout)
        log.info("task_started task_id=%s name=%s attempt=%d worker_id=%s", task.id, task.name, task.attempts, self.id)
        started = time.monotonic()
        outcome = execute(self.store, task, self.id, context)
        self.current = None
        self.tasks_done += 1
        self.report("end", id=task.id)
        log.info(
            "%s task_id=%s name=%s attempt=%d seconds=%.3f",
            outcome.event if outcome.status is not None else "task_lost",
            task.id,
            task.name,
            task.attempts,
            time.monotonic() - started,
        )

    # -- heartbeat: leases, progress, cancellation ---------------------------------------------------

    def _heartbeat_loop(self) -> None:
        renew_every = self.config.lease_seconds / 3
        last_renew = last_cancel_check = last_row = time.monotonic()
        while not self.stopping.is_set():
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
                    current.flush_progress()
                    if not current.cancelled and now - last_cancel_check >= CANCEL_CHECK_SECONDS:
                        last_cancel_check = now
                        if self.store.is_cancel_requested(current.task_id):
                            self._cancel(current)
                if now - last_renew >= renew_every:
                    last_renew = now
                    held = [task.id for task in self.prefetched] + ([current.task_id] if current else [])
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
    registry.import_task_modules(config.imports)
    store = open_store(config.database, upgrade=False)
    worker = Worker(config, store)
    signal.signal(signal.SIGTERM, worker.request_stop)
    for fd in (config.wake_fd, worker._stop_r):
        if fd >= 0:
            os.set_blocking(fd, False)
    try:
        return worker.run()
    finally:
        store.dispose()


if __name__ == "__main__":
    sys.exit(main())
