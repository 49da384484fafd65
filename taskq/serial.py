"""A worker's loop when it runs one task at a time (`concurrency` 1, the default): claim, run, repeat, with
an idle wait that costs nothing (it sleeps on a pipe the supervisor writes to when the database changes).

Quick tasks grow the claim batch, so that one write transaction serves several tasks; the tasks claimed
ahead wait in the kernel (`Worker.hold`), where the heartbeat renews their leases and hands them back
if the task before them runs long.
"""

from __future__ import annotations

import contextlib
import os
import select

from taskq.model import Task
from taskq.worker_kernel import Worker

QUICK_TASK_SECONDS = 0.05  # tasks faster than this let the claim batch grow (fewer round trips per task)


class SerialLoop:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.batch_size = 1

    def run(self) -> None:
        worker = self.worker
        while not worker.stop_requested:
            task = self._next_task()
            if task is None:
                worker.flush_logs()
                self.wait_for_work(worker.idle_timeout())
                worker.idle_poll.back_off()
                continue
            worker.idle_poll.reset()
            seconds = worker.run_task(task)
            # Quick tasks grow the claim batch (one write transaction serves several tasks); a slow
            # one shrinks it back so long tasks are spread over all workers.
            quick = seconds < QUICK_TASK_SECONDS
            self.batch_size = min(self.batch_size * 2, worker.config.prefetch) if quick else 1
            if worker.should_recycle():
                break

    def _next_task(self) -> Task | None:
        task = self.worker.take_prefetched()
        if task is not None:
            return task
        claimed = self.worker.finish_and_claim(self.batch_size)
        if not claimed:
            return None
        self.worker.hold(claimed[1:])
        return claimed[0]

    def wait_for_work(self, timeout: float) -> None:
        worker = self.worker
        wake_fd = worker.config.wake_fd
        watched = [worker.stop_fd] + ([wake_fd] if wake_fd >= 0 else [])
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if wake_fd in ready:
            with contextlib.suppress(BlockingIOError):
                if not os.read(wake_fd, 65536):  # drain every queued nudge at once
                    # End of file: the supervisor, the only writer, is gone. Claim nothing more.
                    worker.request_stop()
