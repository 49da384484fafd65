"""RQ on the local Redis (reference only: an in-memory broker, not a durable SQL queue)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.peers import Peer

REDIS_URL = os.environ.get("TASKQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
QUEUE = "taskq-bench"


class RqPeer(Peer):
    name = "rq"
    label = "RQ (Redis)"
    reference_only = True
    # RQ's default worker forks a work horse per job (~13 jobs/s per worker on this machine).
    max_drain = 300
    max_latency_samples = 10

    def missing(self) -> str | None:
        for package in ("rq", "redis"):
            if importlib.util.find_spec(package) is None:
                return f"{package} is not installed (see bench/requirements.txt)"
        from redis import Redis

        try:
            Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except Exception as error:
            return f"Redis at {REDIS_URL} is not reachable: {error}"
        return None

    def setup(self, workdir: Path) -> None:
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(REDIS_URL)
        self._clear()
        self.queue = Queue(QUEUE, connection=self.redis)

    def _clear(self) -> None:
        """Delete only the keys of this benchmark's queue and jobs (the database may be shared)."""
        for pattern in (f"rq:*{QUEUE}*", "rq:job:*", "rq:results:*"):
            keys = list(self.redis.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 1000):
                self.redis.delete(*keys[start : start + 1000])

    def teardown(self) -> None:
        if getattr(self, "redis", None) is not None:
            self._clear()
            self.redis.close()
            self.redis = None

    def enqueue_noops(self, count: int) -> None:
        for _ in range(count):
            self.queue.enqueue("bench.peers.rq_app.noop")

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        arguments = ["-m", "rq.cli", "worker", "--url", REDIS_URL, QUEUE]
        return [procs.start(arguments, log) for _ in range(workers)]

    def finished(self) -> int:
        return self.queue.finished_job_registry.count

    def enqueue_stamp(self) -> Any:
        return self.queue.enqueue("bench.peers.rq_app.stamp")

    def stamp_of(self, handle: Any, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = handle.return_value(refresh=True)
            if value is not None:
                return float(value)
            if time.monotonic() > deadline:
                raise TimeoutError(f"RQ job {handle.id} did not finish in {timeout:.0f} s")
            time.sleep(0.002)


PEER = RqPeer()
