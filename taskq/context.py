"""What a running task can ask of taskq: its id and attempt, progress, cancellation, spawning children."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from taskq.clock import utc_now
from taskq.model import Enqueued, Task, TaskqError, TaskRequest
from taskq.store import Store

PROGRESS_MIN_INTERVAL = 0.25  # seconds between progress writes of one task; the last value is always written

_CANCEL_EVENTS = threading.Lock()  # a context's cancel_event made and set without a request slipping between
_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("taskq_current", default=None)


class TaskCancelled(Exception):
    """Raised by check_cancelled(); the worker records the task as cancelled."""


class NotInTask(TaskqError):
    pass


def current() -> TaskContext:
    """The context of the task running in this thread or coroutine (for functions without `ctx`)."""
    context = _current.get()
    if context is None:
        raise NotInTask("taskq.current() called outside a running task")
    return context


def _as_request(child: TaskRequest | Mapping[str, Any] | Sequence[Any] | str) -> TaskRequest:
    if isinstance(child, TaskRequest):
        return child
    if isinstance(child, str):
        return TaskRequest(child)
    if isinstance(child, Mapping):
        return TaskRequest(**child)
    return TaskRequest(*child)


class TaskContext:
    def __init__(self, store: Store, task: Task, worker_id: str) -> None:
        self.store = store
        self.task = task
        self.worker_id = worker_id
        self._cancelled = False
        self._cancel_event: threading.Event | None = None  # made on first use: few tasks are ever cancelled
        self.started_at = utc_now()  # stored with the outcome, when the attempt is counted
        self.start_recorded = False  # the worker records the start of a task that runs long
        self.spawned = False
        # On an event loop, progress() only keeps the value: the worker's heartbeat thread writes it, so a
        # coroutine never waits on the database (a write can wait for SQLite's lock).
        self.buffer_progress = False
        self._on_cancel: Callable[[], object] | None = None
        self._progress_lock = threading.Lock()
        self._last_write = 0.0
        self._unwritten: tuple[float, str | None] | None = None
        # Set while the run has a span (taskq/tracing.py): each progress report becomes a span event too.
        self.on_progress: Callable[[float, str | None], None] | None = None

    @property
    def task_id(self) -> int:
        return self.task.id

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, ..."""
        return self.task.attempts

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def cancel_event(self) -> threading.Event:
        """Set once the task's cancellation was requested (what `cancelled` says), for code that waits on it.
        Made on first use: a worker starts thousands of tasks a second, and an Event costs a lock each."""
        with _CANCEL_EVENTS:
            if self._cancel_event is None:
                self._cancel_event = threading.Event()
                if self._cancelled:
                    self._cancel_event.set()
            return self._cancel_event

    def request_cancel(self) -> None:
        """Called by the worker when the task's cancellation was requested: sets the flag that
        check_cancelled() reads and, for a coroutine, cancels it (CancelledError at its next await)."""
        with _CANCEL_EVENTS:
            self._cancelled = True
            event = self._cancel_event
        if event is not None:
            event.set()
        hook = self._on_cancel
        if hook is not None:
            hook()

    def on_cancel(self, hook: Callable[[], object]) -> None:
        """Run `hook` when cancellation is requested (at once if it already was). The flag is set before
        the hook is read and the hook stored before the flag is read, so a request racing with this call
        runs the hook at least once; hooks must tolerate a second call."""
        self._on_cancel = hook
        if self._cancelled:
            hook()

    def check_cancelled(self) -> None:
        """Raise TaskCancelled if someone asked to cancel this task; call it between units of work."""
        if self._cancelled:
            raise TaskCancelled(f"task {self.task.id} was cancelled")

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100). Writes are throttled to one per PROGRESS_MIN_INTERVAL; a throttled
        value is kept and written by flush_progress(), which the worker calls at least that often."""
        if self.on_progress is not None:
            self.on_progress(percent, message)
        with self._progress_lock:
            now = time.monotonic()
            if not self.buffer_progress and now - self._last_write >= PROGRESS_MIN_INTERVAL:
                self._last_write = now
                self._unwritten = None
            else:
                self._unwritten = (percent, message)
                return
        self.store.set_progress(self.task.id, percent, message)

    def flush_progress(self) -> None:
        report = self.take_progress()
        if report is not None:
            self.store.set_progress(*report)

    def take_progress(self) -> tuple[int, float, str | None] | None:
        """The progress not written yet, as (task id, percent, message), now counted as written: the
        worker's heartbeat writes those of every task it runs in one transaction."""
        with self._progress_lock:
            unwritten, self._unwritten = self._unwritten, None
            if unwritten is None:
                return None
            self._last_write = time.monotonic()
        return (self.task.id, *unwritten)

    def spawn_children(
        self,
        children: Iterable[TaskRequest | Mapping[str, Any] | Sequence[Any] | str],
        *,
        then: str | None = None,
    ) -> list[Enqueued]:
        """Create child tasks and put this task in waiting_for_children, in one transaction. The task
        should return right after; when the last child finishes, this task completes (failed if a child
        failed for good, cancelled if all were cancelled) and its continuation (`then`, else the task's
        @task(then=...)) is enqueued with this task's id as its only argument."""
        if self.spawned:
            raise TaskqError("spawn_children may be called once per run")
        requests = [_as_request(child) for child in children]
        # The registry's catalog comes with the store (taskq.open_store hands it over): the registry's
        # @task typing names this module, so this module does not import the registry.
        catalog = self.store.catalog
        check_arguments = catalog.check_arguments
        if check_arguments is not None:
            for request in requests:  # a bad child call fails this task now, naming the argument
                check_arguments(request.name, request.args, request.kwargs or {})
        # The row's continuation was filled from @task(then=...) by whoever enqueued the task, and only if
        # that process had imported the task's module; the worker running it always has, so fill it here too.
        declared = catalog.defaults_for(self.task.name)
        continuation = then or self.task.continuation or (declared.continuation if declared else None)
        enqueued = self.store.wait_for_children(
            self.task.id,
            requests,
            continuation=continuation,
            worker_id=self.worker_id,
            attempt=self.task.attempts,
            started_at=self.started_at,
        )
        if enqueued is None:
            raise TaskqError(f"task {self.task.id} is no longer owned by this worker; children not created")
        self.spawned = True
        return enqueued

    def __enter__(self) -> TaskContext:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
