"""One worker process: its start-up (logging, signals, task modules, its own engine), its loop, a heartbeat
thread, and its exit.

Forked by the pool's fork server (taskq/forkserver.py), or started as `python -m taskq.worker '<json config>'`
where that is not available; talks to the supervisor over two inherited pipes: `wake_fd` (supervisor ->
worker: "there may be work") and `status_fd` (worker -> supervisor: JSON lines saying which task it runs,
so the supervisor can enforce timeouts). What the loops share is taskq/worker_kernel.py; the loops are
taskq/serial.py and taskq/concurrent.py, the heartbeat's duties taskq/heartbeat.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

from taskq import heartbeat, protocol, registry, urls
from taskq.api import open_store
from taskq.events import log_event
from taskq.identity import hostname
from taskq.logformat import formatter
from taskq.serial import SerialLoop
from taskq.worker_config import WorkerConfig
from taskq.worker_kernel import LOG_BUFFER, Worker

log = logging.getLogger("taskq.worker")


def serve(worker: Worker) -> int:
    """Register, say Ready, run the loop until a stop, and leave nothing held behind."""
    worker.store.register_worker(
        worker.id, hostname=hostname(), pid=os.getpid(), name=worker.config.name, queues=worker.config.queues
    )
    log_event(
        log,
        logging.INFO,
        "worker_started",
        worker_id=worker.id,
        queues=",".join(worker.config.queues) or "*",
        concurrency=worker.config.concurrency,
        database=urls.describe(worker.config.database),
    )
    LOG_BUFFER.flush()  # lifecycle lines go out at once; per-task lines are the ones worth batching
    worker.report(protocol.Ready())  # imports done, database reachable: the supervisor's READY=1 waits for this
    threading.Thread(target=heartbeat.beat, args=(worker,), name="heartbeat", daemon=True).start()
    try:
        if worker.config.concurrency > 1:
            from taskq.concurrent import ConcurrentLoop

            ConcurrentLoop(worker).run()
        else:
            SerialLoop(worker).run()
    finally:
        worker.wind_down()
        worker.store.unregister_worker(worker.id)
        log_event(log, logging.INFO, "worker_stopped", worker_id=worker.id, tasks_done=worker.tasks_done)
        LOG_BUFFER.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_worker(WorkerConfig(**json.loads((argv or sys.argv[1:])[0])))


def run_worker(config: WorkerConfig) -> int:
    """The whole life of a worker process, started fresh or forked from the fork server."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter(config.log_format, config.name))
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
    for fd in (config.wake_fd, worker.stop_fd):
        if fd >= 0:
            os.set_blocking(fd, False)
    try:
        code = serve(worker)
    finally:
        store.dispose()
    if worker.orphaned():
        # No supervisor is left to kill what its tasks left running in its process group: the last act.
        worker.kill_own_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
