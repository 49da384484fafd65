"""What a worker process is told at its start: the supervisor builds it, the fork server passes it on and the
worker runs by it. A module of its own so that the supervisor need not import the worker's code to build
one (taskq/worker.py, with the executor and the heartbeat, belongs to the processes that run tasks)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from taskq.settings import CANCEL_GRACE, CONCURRENCY, LEASE, LOG_FORMAT, LOG_LEVEL, PREFETCH, SHUTDOWN_GRACE


@dataclass(frozen=True)
class WorkerConfig:
    name: str  # worker-N
    database: str
    queues: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    queue_limits: dict[str, int] = field(default_factory=dict)  # queue -> most of its tasks run at once
    lease_seconds: float = LEASE.default
    prefetch: int = PREFETCH.default  # most tasks claimed per round trip; the batch adapts from 1 up to this
    concurrency: int = CONCURRENCY.default  # tasks run at once: above 1, coroutines share an event loop (concurrent.py)
    max_tasks: int | None = None  # recycle after this many tasks
    max_memory_mb: float | None = None  # recycle once resident memory exceeds this
    log_level: str = LOG_LEVEL.default
    log_format: str = LOG_FORMAT.default
    # What the supervisor enforces, kept here for when it is gone: an orphan enforces them itself (heartbeat.py).
    shutdown_grace: float = SHUTDOWN_GRACE.default
    cancel_grace: float = CANCEL_GRACE.default
    wake_fd: int = -1
    status_fd: int = -1

    def to_json(self) -> str:
        return json.dumps(asdict(self))
