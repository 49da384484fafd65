"""One worker process: its own engine, a claim -> execute loop, lease renewal, and an idle wait that
costs nothing (it sleeps on a pipe the supervisor writes to when the database changes).

Forked by the pool's fork server (taskq/forkserver.py), or started as `python -m taskq.worker '<json config>'`
where that is not available; talks to the supervisor over two
inherited pipes: `wake_fd` (supervisor -> worker: "there may be work") and `status_fd` (worker ->
supervisor: JSON lines saying which task it runs, so the supervisor can enforce timeouts).
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import resource
import select
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from taskq import protocol, registry
from taskq.api import open_store
from taskq.context import TaskContext
from taskq.executor import execute
from taskq.identity import WorkerIdentity, hostname
from taskq.model import Completion, Task
from taskq.store import Store

IDLE_POLL_MIN_SECONDS = 0.05  # fallback poll when no wake-up arrives: starts here after work...
IDLE_POLL_MAX_SECONDS = 5.0  # ...and backs off to this while idle (wake-ups and next_run_after do the real work)
PROGRESS_FLUSH_SECONDS = 0.25  # throttled progress reaches the database at least this often
CANCEL_CHECK_SECONDS = 0.5  # how often a running task's cancel flag is read
WORKER_ROW_SECONDS = 10.0  # how often the workers-table heartbeat is written
# A 10,000-no-op drain with 2 workers: 4.3-4.7k/s at 8, 4.9-5.3k/s at 32, 5.2k/s at 64 (same run). Exact
# accounting makes a big batch safe: a dead worker's unstarted tasks go straight back, uncounted.
DEFAULT_PREFETCH = 32
QUICK_TASK_SECONDS = 0.05  # tasks faster than this let the claim batch grow (fewer round trips per task)
PREFETCH_HOLD_SECONDS = 0.25  # past this, a task's start is recorded and the prefetched tasks behind it handed back

log = logging.getLogger("taskq.worker")


class LogBuffer:
    """Holds a worker's log records until flush() (or a warning, or a full buffer)."""

    def __init__(self) -> None:
        self.handler: logging.handlers.MemoryHandler | None = None

    def attach(self, target: logging.Handler) -> logging.Handler:
        self.handler = logging.handlers.MemoryHandler(256, flushLevel=logging.WARNING, target=target)
        return self.handler

    def flush(self) -> None:
        if self.handler is not None:
            self.handler.flush()


LOG_BUFFER = LogBuffer()


@dataclass(frozen=True)
class WorkerConfig:
    name: str  # worker-N
    database: str
    queues: list[str] = field(default_factory=list)
    queue_limits: dict[str, int] = field(default_factory=dict)  # queue -> max_concurrency (settings.yaml)
    imports: list[str] = field(default_factory=list)
    lease_seconds: float = 30.0
    prefetch: int = DEFAULT_PREFETCH  # most tasks claimed per round trip; the batch adapts from 1 up to this
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
        self.id = str(WorkerIdentity.of_process(os.getpid(), config.name))
        # A plain flag, not a threading.Event: the SIGTERM handler runs on the main thread between two
        # bytecodes, possibly while that thread holds an Event's lock, and would deadlock taking it again.
        self.stop_requested = False
        # Computed once: task modules are imported before the worker is built, and caps change only with
        # a restart (a settings change restarts the workers).
        self.claim_limits = registry.claim_limits(config.queue_limits)
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
        self._heartbeat_idle = False  # set while the heartbeat thread sleeps its long, idle wait
        self._current_started = 0.0

    # -- talking to the supervisor ----------------------------------------------------------------

    def report(self, message: protocol.Message) -> None:
        if self.config.status_fd < 0:
            return
        line = protocol.encode(message)
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
            self.id, hostname=hostname(), pid=os.getpid(), name=self.config.name, queues=self.config.queues
        )
        log.info("worker_started worker_id=%s queues=%s", self.id, ",".join(self.config.queues) or "*")
        LOG_BUFFER.flush()  # lifecycle lines go out at once; per-task lines are the ones worth batching
        self.report(protocol.Ready())  # imports done, database reachable: the supervisor's READY=1 waits for this
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        idle_poll = IDLE_POLL_MIN_SECONDS
        try:
            while not self.stop_requested:
                task = self._next_task()
                if task is None:
                    LOG_BUFFER.flush()
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
            LOG_BUFFER.flush()
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
            limits=self.claim_limits,
        )
        self._after_recording(finished, recorded)
        if not claimed:
            return None
        with self._prefetch_lock:
            self.prefetched.extend(claimed[1:])
        return claimed[0]

    def _record_finished(self) -> None:
        with self._prefetch_lock:
            finished, self.unrecorded = self.unrecorded, []
        if finished:
            recorded, _ = self.store.finish_and_claim(self.id, finished, limit=0)
            self._after_recording(finished, recorded)

    def _after_recording(self, finished: list[Completion], recorded: list[int]) -> None:
        if not finished:
            return
        self.report(protocol.Recorded(tuple(completion.task_id for completion in finished)))
        for completion in finished:
            if completion.task_id not in recorded:
                log.warning(
                    "task_lost task_id=%s: its lease was recovered before the result was stored", completion.task_id
                )

    def _defer(self, completion: Completion) -> None:
        # Told to the supervisor before anything else happens: if this process dies before the success
        # is committed, the supervisor records it from this message instead of running the task again.
        with self._prefetch_lock:
            self.unrecorded.append(completion)
            self.report(protocol.Deferred(completion))

    def _hand_back_prefetched(self) -> None:
        """Prefetched tasks go back to pending (attempt not counted) for other workers to take."""
        with self._prefetch_lock:
            waiting = [task.id for task in self.prefetched]
            self.prefetched.clear()
        if waiting:
            self.store.release(waiting, worker_id=self.id)

    def _idle_timeout(self, idle_poll: float) -> float:
        """Sleep until the earliest delayed task is due, if that comes before the next fallback poll."""
        next_due = self.store.next_run_after(self.config.queues or None)
        if next_due is None:
            return idle_poll
        due_in = next_due.timestamp() - time.time()
        if due_in < -IDLE_POLL_MIN_SECONDS:
            # Ready for a while, yet our claim did not take it: its max_concurrency slots are full (or
            # another worker just took it). Back off as when idle instead of claiming again at once.
            return idle_poll
        return min(idle_poll, max(0.0, due_in))

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
        if self._heartbeat_idle:  # it sleeps for a whole lease third: wake it to watch this task
            self._task_started.set()
        self.report(protocol.Started(task.id, task.attempts, self.timeout_of(task)))
        log.debug("task_started task_id=%s name=%s attempt=%d worker_id=%s", task.id, task.name, task.attempts, self.id)
        started = time.monotonic()
        outcome = execute(self.store, task, self.id, context, defer_success=self._defer)
        self.current = None
        self.tasks_done += 1
        if not outcome.deferred:
            self.report(protocol.Ended(task.id))
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
            self._heartbeat_idle = self.current is None
            self._task_started.wait(renew_every if self._heartbeat_idle else PROGRESS_FLUSH_SECONDS)
            self._heartbeat_idle = False
            self._task_started.clear()
            try:
                now = time.monotonic()
                if os.getppid() != self._parent_pid:
                    log.warning("supervisor_lost worker_id=%s: finishing the current task and exiting", self.id)
                    self.request_stop()
                LOG_BUFFER.flush()
                current = self.current
                if current is not None:
                    if now - self._current_started > PREFETCH_HOLD_SECONDS and not current.start_recorded:
                        # A slow task: the tasks behind it should not wait, and its attempt is counted
                        # now so that even a whole-host loss during it counts against its retries.
                        self._record_finished()
                        self._hand_back_prefetched()
                        current.start_recorded = True
                        self.store.mark_started(current.task_id, worker_id=self.id, started_at=current.started_at)
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
        self.report(protocol.CancelSeen(context.task_id))
        log.info("task_cancel_requested task_id=%s worker_id=%s", context.task_id, self.id)


def main(argv: list[str] | None = None) -> int:
    return run_worker(WorkerConfig(**json.loads((argv or sys.argv[1:])[0])))


def run_worker(config: WorkerConfig) -> int:
    """The whole life of a worker process, started fresh or forked from the fork server."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{config.name} pid {os.getpid()}] %(message)s"))
    # A line per task written and flushed one by one cost a fifth of a quick task's time (cProfile);
    # buffered, they reach stderr when the worker goes idle, every PROGRESS_FLUSH_SECONDS while it is
    # busy, at once for warnings, and at exit.
    logging.basicConfig(level=config.log_level, handlers=[LOG_BUFFER.attach(stream)])
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
