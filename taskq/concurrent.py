"""A worker's loop when it runs several tasks at once (`concurrency` > 1): `async def` tasks share one
event loop, up to `concurrency` of them, and sync tasks still run one at a time, in a thread of their own,
so a blocking function never stalls the coroutines beside it.

The loop thread only awaits: every store call (claims, outcomes, the idle wait's next due time) runs on one
database thread, so a coroutine never waits for SQLite's write lock. What the worker promises the supervisor
is unchanged: each task is reported Started right before its function is called and Ended (or Deferred)
once it returned, so a kill settles exactly the tasks that were executing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from taskq import registry
from taskq.context import TaskContext
from taskq.executor import DEFERRED, Announcer, call_async, event_loop, settle, timeout_of
from taskq.worker_kernel import Worker

if TYPE_CHECKING:
    from taskq.model import Task

T = TypeVar("T")


class ConcurrentLoop:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.slots = worker.config.concurrency
        self.running: set[asyncio.Task[None]] = set()
        self.database = ThreadPoolExecutor(1, thread_name_prefix="taskq-db")
        self.sync_thread = ThreadPoolExecutor(1, thread_name_prefix="taskq-sync")
        self.changed: asyncio.Event | None = None
        self.failure: BaseException | None = None  # a task's outcome that could not be stored: the worker exits

    def run(self) -> None:
        try:
            event_loop().run_until_complete(self._serve())
        finally:
            self.database.shutdown()
            self.sync_thread.shutdown()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.changed = changed = asyncio.Event()
        watched = [fd for fd in (self.worker.config.wake_fd, self.worker.stop_fd) if fd >= 0]
        for fd in watched:
            loop.add_reader(fd, self._readable, fd)
        idle_poll = self.worker.idle_poll
        try:
            while not self.worker.stop_requested:
                if self.failure is not None:
                    raise self.failure
                # Cleared before looking: a task ending or a nudge from here on wakes the wait below.
                changed.clear()
                free = self.slots - len(self.running)
                claimed = await self._in_database(self.worker.finish_and_claim, free) if free else []
                for task in claimed:
                    self._start(task)
                if claimed:
                    idle_poll.reset()
                    continue  # maybe more is ready: claim again while slots are free
                timeout = None
                if free:  # nothing ready: sleep until a delayed task is due, a nudge, or the fallback poll
                    self.worker.flush_logs()
                    timeout = await self._in_database(self.worker.idle_timeout)
                try:
                    await asyncio.wait_for(changed.wait(), timeout)
                except TimeoutError:
                    idle_poll.back_off()
        finally:
            for fd in watched:
                loop.remove_reader(fd)
            # Stopping lets running tasks finish, as the one-at-a-time loop does; the supervisor's
            # shutdown grace bounds that.
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)

    def _readable(self, fd: int) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            if not os.read(fd, 65536) and fd == self.worker.config.wake_fd:  # drain every queued nudge at once
                # End of file: the supervisor, the only writer, is gone. Claim nothing more (and stop
                # watching a descriptor that stays readable for ever).
                asyncio.get_running_loop().remove_reader(fd)
                self.worker.request_stop()
        assert self.changed is not None
        self.changed.set()

    def _start(self, task: Task) -> None:
        running = asyncio.get_running_loop().create_task(self._run(task))
        self.running.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Task[None]) -> None:
        self.running.discard(running)
        if not running.cancelled() and running.exception() is not None and self.failure is None:
            # As in the one-at-a-time loop, the worker dies of it and the supervisor settles its tasks.
            self.failure = running.exception()
        assert self.changed is not None
        self.changed.set()

    async def _run(self, task: Task) -> None:
        worker = self.worker
        spec = registry.find(task.name)
        if spec is not None and spec.is_async:
            # Reported started only once its coroutine gets the loop: a kill before that (a coroutine
            # claimed beside one that blocks the loop) must release it uncounted, not charge an attempt.
            context = TaskContext(worker.store, task, worker.id)
            worker.waiting[task.id] = task
            started = time.monotonic()
            # A success is told to the supervisor in the loop step in which its coroutine returned (the
            # announcer), not once this resumes: a coroutine scheduled in between may block the loop, and a
            # kill meanwhile must not fail or re-run a task whose function returned. Nor after a turn on the
            # database thread: that may be busy for seconds (a claim waiting for the write lock).
            announcer = Announcer(task, context, spec, worker.announce)
            call = await call_async(
                spec,
                task,
                context,
                timeout_of(task),
                on_start=functools.partial(worker.begin, task, context),
                on_return=announcer,
            )
            worker.waiting.pop(task.id, None)
            completion = announcer.completion
            if completion is None:
                outcome = await self._in_database(
                    settle, worker.store, task, worker.id, context, spec, call, worker.defer
                )
            else:
                # Its last progress is written before the success can be recorded (with the next claim), so
                # the row keeps the final message.
                report = context.take_progress()
                if report is not None:
                    await self._in_database(worker.store.set_progress_many, [report])
                worker.keep(completion)
                outcome = DEFERRED
            worker.end(task, outcome, started)
        else:  # sync (or unknown: the executor records that), one at a time in its own thread
            worker.waiting[task.id] = task
            try:
                await asyncio.get_running_loop().run_in_executor(self.sync_thread, self._run_sync, task)
            finally:
                worker.waiting.pop(task.id, None)
        if worker.should_recycle():
            worker.request_stop()

    def _run_sync(self, task: Task) -> None:
        self.worker.waiting.pop(task.id, None)
        if self.worker.stop_requested:  # stopping while it waited: it never started, so it goes back
            self.worker.release([task.id])
            return
        self.worker.run_task(task)

    async def _in_database(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.database, function, *args)
