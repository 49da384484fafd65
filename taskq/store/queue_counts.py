"""Counts per queue and status, for `taskq queues` (bulk retry and cancel live in queries.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select

from taskq.clock import utc_now
from taskq.model import Status
from taskq.schema import tasks
from taskq.store.base import PENDING, StoreBase


class QueueCountOps(StoreBase):
    def queue_counts(self, *, now: datetime | None = None) -> dict[str, dict[str, int]]:
        """Tasks per queue and status, plus `delayed`: pending tasks whose run_after is still ahead."""
        now = now or utc_now()
        delayed = func.sum(case((tasks.c.run_after > now, 1), else_=0))
        query = select(tasks.c.queue, tasks.c.status, func.count(), delayed).group_by(tasks.c.queue, tasks.c.status)
        counts: dict[str, dict[str, int]] = {}
        for queue, status, count, later in self.read(lambda conn: conn.execute(query).all()):
            row = counts.setdefault(queue, {**{s.value: 0 for s in Status}, "delayed": 0})
            row[status] = int(count)
            if status == PENDING:
                row["delayed"] = int(later or 0)
        return dict(sorted(counts.items()))
