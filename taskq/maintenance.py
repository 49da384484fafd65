"""Background duties every pool runs, on every host: small objects with run_once(now) -> counts, so tests
drive them with an explicit clock, and a thin thread that ticks them."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from taskq.clock import utc_now
from taskq.events import log_event
from taskq.identity import WorkerIdentity
from taskq.store import Store

log = logging.getLogger("taskq.maintenance")

WORKER_ROW_TTL_SECONDS = 3600.0  # rows of workers silent this long (crashed hosts) are deleted


class Duty(Protocol):
    def run_once(self, now: datetime) -> dict[str, int]: ...


class LeaseRescuer:
    """Requeues (or fails, when out of retries) running tasks whose worker stopped renewing the lease.
    Safe on many hosts at once: a live worker renews long before expiry, so its tasks are never touched."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run_once(self, now: datetime) -> dict[str, int]:
        return {"recovered": self.store.recover_expired(now=now)}


class DeadWorkerRescuer:
    """Recovers at once the running tasks of workers of this host and boot whose process is gone (a pool
    SIGKILLed and restarted, a crashed sibling pool): their ids say so for certain, so there is no need
    to wait for the lease. Workers of other hosts are left to their leases."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run_once(self, now: datetime) -> dict[str, int]:
        recovered = 0
        for worker_id in self.store.running_worker_ids():
            identity = WorkerIdentity.parse(worker_id)
            if identity is not None and identity.is_certainly_dead():
                recovered += self.store.recover_worker(worker_id, reason=f"{worker_id} is gone", now=now)
        return {"recovered_from_dead_workers": recovered}


class Retention:
    """Purges finished tasks older than the retention period, and forgets long-silent workers."""

    def __init__(self, store: Store, retention_seconds: float | None) -> None:
        self.store = store
        self.retention_seconds = retention_seconds

    def run_once(self, now: datetime) -> dict[str, int]:
        purged = 0
        if self.retention_seconds is not None:
            purged = self.store.purge(timedelta(seconds=self.retention_seconds), now=now)
        pruned = self.store.prune_workers(silent_for=WORKER_ROW_TTL_SECONDS, now=now)
        return {"purged": purged, "workers_pruned": pruned}


class StatsRollup:
    """Folds finished tasks into the per-minute rollups the dashboard's charts, `stats` and /metrics read,
    samples queue depth, and forgets rollups older than the charts show. Off the hot path: enqueue, claim
    and complete never touch these tables; between runs, reads add the newest rows live."""

    def __init__(self, store: Store, *, budget_seconds: float = 2.0) -> None:
        self.store = store
        self.budget_seconds = budget_seconds  # a long catch-up (first run on a big table) continues next tick

    def run_once(self, now: datetime) -> dict[str, int]:
        recounted = int(self.store.recount())
        rolled = 0
        deadline = time.monotonic() + self.budget_seconds
        while time.monotonic() < deadline:
            folded = self.store.rollup(now=now)
            if not folded:
                break
            rolled += folded
        self.store.sample_queues(now=now)  # every run samples: not a count worth a log line
        pruned = self.store.prune_history(now=now)
        return {"rolled_up": rolled, "recounted": recounted, "history_pruned": pruned}


class MaintenanceThread(threading.Thread):
    """Runs each duty every `interval` seconds. A failing duty is logged and tried again next time."""

    def __init__(self, duties: list[tuple[Duty, float]]) -> None:
        super().__init__(name="maintenance", daemon=True)
        self.duties = duties
        self._stop = threading.Event()
        self._next = [0.0] * len(duties)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(max(0.0, min(self._next, default=1.0) - time.monotonic())):
            for index, (duty, interval) in enumerate(self.duties):
                if time.monotonic() < self._next[index]:
                    continue
                self._next[index] = time.monotonic() + interval
                try:
                    counts = duty.run_once(utc_now())
                except Exception:
                    log_event(log, logging.ERROR, "maintenance_error", exc_info=True, duty=type(duty).__name__)
                    continue
                if any(counts.values()):
                    shown: dict[str, Any] = dict(counts)  # Any: mypy would check each count against exc_info
                    log_event(log, logging.INFO, "maintenance", duty=type(duty).__name__, **shown)
