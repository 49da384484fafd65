"""A worker's kernel: what it holds and the operations its loops and its heartbeat share.

`Worker` holds the store, the tasks it claimed (prefetched, waiting to start, executing, returned and not
recorded), its copy of the supervisor's ledger, and the flags the loops stop on. Its operations are the
steps every loop takes: claim with the successes to record (`finish_and_claim`), `begin` and `end` a task
(reporting Started and Ended to the supervisor over `status_fd`), `defer`/`announce`/`keep` a success,
`held_task_ids` for the lease renewal, `cancel_executing`, and what an orphan does in its supervisor's
place (`settle_and_exit`). The loops that drive them sit above this module: one task at a time
(taskq/serial.py), coroutines at once (taskq/concurrent.py), the heartbeat's duties (taskq/heartbeat.py);
the process around them is taskq/worker.py.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import resource
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from taskq import protocol, registry
from taskq.context import TaskContext
from taskq.events import log_event
from taskq.executor import Outcome, execute, pass_on, timeout_of
from taskq.identity import WorkerIdentity
from taskq.model import Completion, Task
from taskq.protocol import KillReason
from taskq.store import Store
from taskq.supervision import Overdue, WorkerLedger
from taskq.worker_config import WorkerConfig

IDLE_POLL_MIN_SECONDS = 0.05  # fallback poll when no wake-up arrives: starts here after work...
IDLE_POLL_MAX_SECONDS = 5.0  # ...and backs off to this while idle (wake-ups and next_run_after do the real work)
ERROR_LOG_CHARS = 200  # of a failure's exception line on its task_failed / task_retry line
TRACEBACK_LOG_CHARS = 4000  # of its traceback, logged at DEBUG (the end: the innermost frames and the error)

log = logging.getLogger("taskq.worker")


def one_line(text: str, limit: int = ERROR_LOG_CHARS) -> str:
    """`text` on one log line (newlines escaped), at most `limit` characters."""
    text = text.strip().replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_part(text: str, limit: int = TRACEBACK_LOG_CHARS) -> str:
    """The end of `text`, at most `limit` characters plus a marker where it was cut."""
    text = text.rstrip()
    return text if len(text) <= limit else "...(clipped)...\n" + text[-limit:]


class LineBatch(logging.handlers.MemoryHandler):
    """A MemoryHandler that hands its stream every buffered line in one write: a StreamHandler writes and
    flushes line by line, a system call per task."""

    def flush(self) -> None:
        target = self.target
        if not isinstance(target, logging.StreamHandler):
            super().flush()
            return
        self.acquire()
        try:
            lines = []
            for record in self.buffer:
                if target.filter(record):  # what target.handle(record) checks before emitting it
                    try:
                        lines.append(target.format(record) + target.terminator)
                    except RecursionError:
                        raise
                    except Exception:
                        target.handleError(record)
            if lines:
                target.acquire()
                try:
                    target.stream.write("".join(lines))
                    target.flush()
                except RecursionError:
                    raise
                except Exception:
                    target.handleError(self.buffer[-1])
                finally:
                    target.release()
            self.buffer.clear()
        finally:
            self.release()


class LogBuffer:
    """Holds a worker's log records until flush() (or a warning, or a full buffer)."""

    def __init__(self) -> None:
        self.handler: logging.handlers.MemoryHandler | None = None

    def attach(self, target: logging.Handler) -> logging.Handler:
        self.handler = LineBatch(256, flushLevel=logging.WARNING, target=target)
        return self.handler

    def flush(self) -> None:
        if self.handler is not None:
            self.handler.flush()


LOG_BUFFER = LogBuffer()


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


@dataclass
class Executing:
    context: TaskContext
    started: float  # time.monotonic() at its start


class IdlePoll:
    """The fallback poll of an idle worker (wake-ups and next_run_after do the real work): it starts at
    IDLE_POLL_MIN_SECONDS after work and doubles up to IDLE_POLL_MAX_SECONDS while nothing comes."""

    def __init__(self) -> None:
        self.seconds = IDLE_POLL_MIN_SECONDS

    def reset(self) -> None:
        self.seconds = IDLE_POLL_MIN_SECONDS

    def back_off(self) -> None:
        self.seconds = min(self.seconds * 2, IDLE_POLL_MAX_SECONDS)


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
        self.idle_poll = IdlePoll()
        self.executing: dict[int, Executing] = {}  # from Started to the outcome; several with coroutines
        # Claimed, not started yet (the concurrent loop): sync tasks queued for its sync thread, coroutines
        # waiting for their first turn on the loop. Their leases are renewed; a kill releases them uncounted.
        self.waiting: dict[int, Task] = {}
        self.tasks_done = 0
        # Names of tasks claimed here that this worker does not know, avoided by its claims; replaced,
        # never changed in place, since the concurrent loop's database thread reads it.
        self.lacking: frozenset[str] = frozenset()
        self._status_lock = threading.Lock()
        self.parent_pid = os.getppid()  # the supervisor's: a worker re-parented has lost it
        self._stop_r, self._stop_w = os.pipe()
        self.heartbeat_wake = threading.Event()  # begin() sets it: a task started while the heartbeat slept long
        self.heartbeat_idle = False  # set while the heartbeat thread sleeps its long, idle wait
        # Rule 14: a stop is a state. The heartbeat renews leases until the loop has ended and every outcome
        # is recorded, whatever stop was asked: this flag, not stop_requested, ends it.
        self.heartbeat_done = False
        # What this worker told its supervisor, as the supervisor's own ledger reads it: should the supervisor
        # die, the worker settles its tasks exactly as the supervisor would have (OrphanGuard, heartbeat.py).
        self.ledger = WorkerLedger(config.name, cancel_grace=config.cancel_grace)
        self.supervisor_lost_at: float | None = None  # monotonic; set by SupervisorWatch

    # -- talking to the supervisor ----------------------------------------------------------------

    def report(self, message: protocol.Message) -> None:
        line = protocol.encode(message) if self.config.status_fd >= 0 else b""
        with self._status_lock:
            self.ledger.apply(message, time.monotonic())
            if not line:
                return
            try:
                os.write(self.config.status_fd, line)
            except OSError:  # supervisor gone: finish the current task and leave
                self.stop_requested = True

    def request_stop(self, *_: object) -> None:
        """Also the SIGTERM handler: only async-signal-safe work (a flag and a pipe write)."""
        self.stop_requested = True
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    @property
    def stop_fd(self) -> int:
        """Readable once a stop was requested (the SIGTERM handler writes it)."""
        return self._stop_r

    @staticmethod
    def flush_logs() -> None:
        LOG_BUFFER.flush()

    def release(self, task_ids: list[int]) -> None:
        """Claimed tasks that never started go back to pending, their attempt not counted."""
        self.store.release(task_ids, worker_id=self.id)

    # -- the steps every loop takes ------------------------------------------------------------------

    def take_prefetched(self) -> Task | None:
        """The next task claimed ahead, if any."""
        with self._prefetch_lock:
            return self.prefetched.popleft() if self.prefetched else None

    def hold(self, tasks: list[Task]) -> None:
        """Tasks claimed ahead, to run next (their leases are renewed meanwhile)."""
        with self._prefetch_lock:
            self.prefetched.extend(tasks)

    def finish_and_claim(self, limit: int) -> list[Task]:
        """Record the deferred successes and claim up to `limit` tasks, in one transaction."""
        with self._prefetch_lock:
            finished, self.unrecorded = self.unrecorded, []
        recorded, claimed = self.store.finish_and_claim(
            self.id,
            finished,
            self.config.queues or None,
            limit=limit,
            lease_seconds=self.config.lease_seconds,
            limits=self.claim_limits,
            avoid=sorted(self.lacking) or None,
        )
        self._after_recording(finished, recorded)
        return claimed

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
                log_event(
                    log,
                    logging.WARNING,
                    "task_lost",
                    task_id=completion.task_id,
                    detail="its lease was recovered before the result was stored",
                )

    def defer(self, completion: Completion) -> None:
        """A success to record with the next claim. Told to the supervisor first: if this process dies
        before the success is committed, the supervisor records it from that message instead of running
        the task again."""
        self.announce(completion)
        self.keep(completion)

    def announce(self, completion: Completion) -> None:
        """The first half of `defer`: the supervisor learns the function returned (a kill from now on records
        the success, never runs the task again). Before `keep`, so its Recorded cannot overtake it."""
        self.report(protocol.Deferred(completion))

    def keep(self, completion: Completion) -> None:
        with self._prefetch_lock:
            self.unrecorded.append(completion)

    def wind_down(self) -> None:
        """The loop has ended: the deferred successes are recorded, the prefetched tasks go back, and the
        heartbeat, with nothing left to renew, ends."""
        self._record_finished()
        self._hand_back_prefetched()
        self.stop_requested = True
        self.heartbeat_done = True
        self.heartbeat_wake.set()

    def _hand_back_prefetched(self) -> None:
        """Prefetched tasks go back to pending (attempt not counted) for other workers to take."""
        with self._prefetch_lock:
            waiting = [task.id for task in self.prefetched]
            self.prefetched.clear()
        if waiting:
            self.release(waiting)

    def idle_timeout(self) -> float:
        """Sleep until the earliest delayed task is due, if that comes before the next fallback poll."""
        idle_poll = self.idle_poll.seconds
        next_due = self.store.next_run_after(self.config.queues or None)
        if next_due is None:
            return idle_poll
        due_in = next_due.timestamp() - time.time()
        if due_in < -IDLE_POLL_MIN_SECONDS:
            # Ready for a while, yet our claim did not take it: its max_concurrency slots are full (or
            # another worker just took it). Back off as when idle instead of claiming again at once.
            return idle_poll
        return min(idle_poll, max(0.0, due_in))

    def should_recycle(self) -> bool:
        if self.config.max_tasks is not None and self.tasks_done >= self.config.max_tasks:
            log_event(
                log, logging.INFO, "worker_recycle", worker_id=self.id, reason="max_tasks", tasks_done=self.tasks_done
            )
            return True
        if self.config.max_memory_mb is not None and resident_mb() > self.config.max_memory_mb:
            log_event(
                log, logging.INFO, "worker_recycle", worker_id=self.id, reason="max_memory", rss_mb=round(resident_mb())
            )
            return True
        return False

    def run_task(self, task: Task) -> float:
        """Run one task to its outcome, here; returns how long it took."""
        if registry.find(task.name) is None:
            return self.pass_on(task)
        context = self.begin(task)
        started = time.monotonic()
        outcome = execute(self.store, task, self.id, context, defer_success=self.keep, announce=self.announce)
        return self.end(task, outcome, started)

    def pass_on(self, task: Task) -> float:
        """A task this worker does not know never starts here (no Started: a kill meanwhile releases it
        uncounted); it goes back for a worker that knows it. The supervisor hears of each name once."""
        started = time.monotonic()
        if task.name not in self.lacking:
            self.lacking = self.lacking | {task.name}
            self.report(protocol.UnknownName(task.name))
        outcome = pass_on(self.store, task, self.id)
        self._log_outcome(task, outcome, time.monotonic() - started)
        return time.monotonic() - started

    def begin(self, task: Task, context: TaskContext | None = None) -> TaskContext:
        """The task starts now: the heartbeat watches it and the supervisor knows it is executing."""
        if context is None:
            context = TaskContext(self.store, task, self.id)
        self.waiting.pop(task.id, None)
        self.executing[task.id] = Executing(context, time.monotonic())
        if self.heartbeat_idle:  # it sleeps for a whole lease third: wake it to watch this task
            self.heartbeat_wake.set()
        spec = registry.find(task.name)
        is_async = spec is not None and spec.is_async
        self.report(protocol.Started(task.id, task.attempts, timeout_of(task), worker_enforces_timeout=is_async))
        log_event(
            log,
            logging.DEBUG,
            "task_started",
            task_id=task.id,
            name=task.name,
            attempt=task.attempts,
            worker_id=self.id,
        )
        return context

    def end(self, task: Task, outcome: Outcome, started: float) -> float:
        self.executing.pop(task.id, None)
        self.tasks_done += 1
        if not outcome.deferred:
            self.report(protocol.Ended(task.id))
        seconds = time.monotonic() - started
        self._log_outcome(task, outcome, seconds)
        return seconds

    def _log_outcome(self, task: Task, outcome: Outcome, seconds: float) -> None:
        """One line per task; a failure's ends with its exception line, and its traceback follows at DEBUG."""
        event = outcome.event if outcome.status is not None else "task_lost"
        error = None if outcome.error is None else one_line(outcome.error)
        log_event(
            log,
            logging.INFO,
            event,
            task_id=task.id,
            name=task.name,
            attempt=task.attempts,
            seconds=round(seconds, 3),
            error=error,
        )
        if outcome.traceback is not None and log.isEnabledFor(logging.DEBUG):
            log_event(
                log,
                logging.DEBUG,
                "task_traceback",
                task_id=task.id,
                attempt=task.attempts,
                traceback=last_part(outcome.traceback),
            )

    # -- what the heartbeat's duties ask (taskq/heartbeat.py) -------------------------------------------

    def held_task_ids(self) -> list[int]:
        """Every task whose lease this worker holds: prefetched, returned but not recorded, executing, and
        claimed and waiting to start (the concurrent loop)."""
        with self._prefetch_lock:
            held = [task.id for task in self.prefetched] + [c.task_id for c in self.unrecorded]
        return held + [e.context.task_id for e in list(self.executing.values())] + list(self.waiting)

    def hand_back_prefetched(self) -> None:
        """A task runs long: the deferred successes are recorded and the prefetched tasks go back to
        pending, so that they do not wait behind it."""
        self._record_finished()
        self._hand_back_prefetched()

    # -- without a supervisor (DESIGN.md rule 14; the duties are heartbeat.py's) -----------------------

    def orphaned(self) -> bool:
        """Whether the supervisor that started this worker is gone (it was re-parented)."""
        return self.supervisor_lost_at is not None or os.getppid() != self.parent_pid

    def overdue(self, now: float) -> list[Overdue]:
        """The executing tasks past their timeout or cancel grace, as the supervisor's ledger decides."""
        with self._status_lock:
            return self.ledger.overdue(now)

    def settle_and_exit(self, reason: KillReason, task_id: int | None = None) -> None:
        """What the supervisor does when it kills a worker, done by the worker itself (its supervisor is gone):
        settle everything it holds as the ledger decides (`reason` for `task_id`, or for every executing task
        when None), then SIGKILL its own process group, so the task and what it started stop at once."""
        with self._status_lock:
            self.ledger.record_kill(reason, task_id)
            executing = self.ledger.settlement(-signal.SIGKILL)
            finished = list(self.ledger.deferred.values())
        try:
            counts = self.store.settle_dead_worker(self.id, finished=finished, executing=executing)
            self.store.unregister_worker(self.id)
            log_event(
                log,
                logging.WARNING,
                "orphan_exiting",
                worker_id=self.id,
                reason=reason.value,
                task_id=task_id,
                recorded=counts.recorded,
                interrupted=counts.interrupted,
                released=counts.released,
            )
        except Exception:  # the database is away: the leases, no longer renewed, recover the tasks
            log_event(log, logging.ERROR, "orphan_settle_failed", exc_info=True, worker_id=self.id)
        LOG_BUFFER.flush()
        self.kill_own_group()

    def kill_own_group(self) -> None:
        """SIGKILL this worker and what its tasks started (its process group, when it leads one), as the
        supervisor does when it reaps a worker."""
        sys.stderr.flush()
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    def cancel_executing(self, task_ids: list[int]) -> int:
        """Tell these tasks, those still executing and not told yet, that they are cancelled; returns how many."""
        told = 0
        for task_id in task_ids:
            running = self.executing.get(task_id)
            if running is not None and not running.context.cancelled:
                self._cancel(running.context)
                told += 1
        return told

    def _cancel(self, context: TaskContext) -> None:
        context.request_cancel()
        self.report(protocol.CancelSeen(context.task_id))
        log_event(log, logging.INFO, "task_cancel_requested", task_id=context.task_id, worker_id=self.id)
