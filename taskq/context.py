"""What a running task can ask of taskq: its id and attempt, progress, cancellation, spawning children."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taskq import registry
from taskq.clock import utc_now
from taskq.model import Enqueued, Task, TaskqError, TaskRequest
from taskq.store import Store

PROGRESS_MIN_INTERVAL = 0.25  # seconds between progress writes of one task; the last value is always written

_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("taskq_current", default=None)


class TaskCancelled(Exception):
    """Raised by check_cancelled(); the worker records the task as cancelled."""


class NotInTask(TaskqError):
    pass


def current() -> TaskContext:
    """The context of the task running in this thread (for functions that do not take `ctx`)."""
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
        self.cancel_event = threading.Event()
        self.started_at = utc_now()  # stored with the outcome, when the attempt is counted
        self.start_recorded = False  # the worker records the start of a task that runs long
        self.spawned = False
        self._progress_lock = threading.Lock()
        self._last_write = 0.0
        self._unwritten: tuple[float, str | None] | None = None

    @property
    def task_id(self) -> int:
        return self.task.id

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, ..."""
        return self.task.attempts

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise TaskCancelled if someone asked to cancel this task; call it between units of work."""
        if self.cancel_event.is_set():
            raise TaskCancelled(f"task {self.task.id} was cancelled")

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100). Writes are throttled to one per PROGRESS_MIN_INTERVAL; a throttled
        value is kept and written by flush_progress(), which the worker calls at least that often."""
        with self._progress_lock:
            now = time.monotonic()
            if now - self._last_write >= PROGRESS_MIN_INTERVAL:
                self._last_write = now
                self._unwritten = None
            else:
                self._unwritten = (percent, message)
                return
        self.store.set_progress(self.task.id, percent, message)

    def flush_progress(self) -> None:
        with self._progress_lock:
            unwritten, self._unwritten = self._unwritten, None
            if unwritten is None:
                return
            self._last_write = time.monotonic()
        self.store.set_progress(self.task.id, *unwritten)

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
        for request in requests:  # a bad child call fails this task now, naming the argument
            registry.check_arguments(request.name, request.args, request.kwargs or {})
        # The row's continuation was filled from @task(then=...) by whoever enqueued the task, and only if
        # that process had imported the task's module; the worker running it always has, so fill it here too.
        declared = registry.defaults_for(self.task.name)
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
