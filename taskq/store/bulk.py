"""Operator actions on many tasks at once (retry --all, cancel --all) and counts per queue.

Bulk changes walk the matching ids in batches of BULK_BATCH, one short write transaction per batch, so
a retry of 100,000 failed tasks never holds SQLite's write lock for more than a few milliseconds and
workers keep claiming in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Select, case, func, select, update
from sqlalchemy.exc import DBAPIError

from taskq.clock import utc_now
from taskq.model import InvalidTransition, Status, TaskNotFound
from taskq.schema import tasks
from taskq.store.base import CANCELLED, FAILED, PENDING, StoreBase, _status_is

BULK_BATCH = 500  # ids per write transaction: a few ms under the write lock on SQLite


@dataclass(frozen=True)
class BulkSelection:
    """Which tasks a bulk action touches: every given field must match."""

    statuses: tuple[str, ...]
    name: str | None = None
    queue: str | None = None

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        query = query.where(_status_is(*self.statuses))
        if self.name is not None:
            query = query.where(tasks.c.name == self.name)
        if self.queue is not None:
            query = query.where(tasks.c.queue == self.queue)
        return query


@dataclass(frozen=True)
class BulkResult:
    changed: int  # tasks moved (retried: now pending; cancelled: cancelled or asked to stop)
    skipped: int  # matched but changed state meanwhile, or (retry) their dedup key is held by an active task


class BulkOps(StoreBase):
    def count_matching(self, which: BulkSelection) -> int:
        query = which.apply(select(func.count()).select_from(tasks))
        return int(self.read(lambda conn: conn.execute(query).scalar_one()))

    def _matching_ids(self, which: BulkSelection, after: int) -> list[int]:
        query = which.apply(select(tasks.c.id)).where(tasks.c.id > after).order_by(tasks.c.id).limit(BULK_BATCH)
        return list(self.read(lambda conn: conn.execute(query).scalars().all()))

    def retry_matching(self, which: BulkSelection, *, now: datetime | None = None) -> BulkResult:
        """Every matching failed or cancelled task -> pending, as `retry` does one. Walking by id upwards
        means a retried task that fails again meanwhile is not retried twice by the same call."""
        if not set(which.statuses) <= {FAILED, CANCELLED}:
            raise InvalidTransition("only failed or cancelled tasks can be retried")
        now = now or utc_now()
        changed = skipped = 0
        after = 0
        while ids := self._matching_ids(which, after):
            after = ids[-1]
            try:
                done = self.write(lambda conn, ids=ids: self._retry_batch(conn, ids, which, now))
            except DBAPIError as error:
                if "unique" not in str(error.orig).lower():
                    raise
                done = self._retry_one_by_one(ids, now)  # an active task holds one of their dedup keys
            changed += done
            skipped += len(ids) - done
        return BulkResult(changed, skipped)

    def _retry_batch(self, conn: Connection, ids: Sequence[int], which: BulkSelection, now: datetime) -> int:
        # The same reset as QueryOps.retry (tests/test_cli_bulk.py compares the two rows field by field).
        statement = (
            update(tasks)
            .where(tasks.c.id.in_(list(ids)), _status_is(*which.statuses))
            .values(
                status=PENDING,
                run_after=now,
                attempts=0,
                finished_at=None,
                started_at=None,
                cancel_requested=False,
                worker_id=None,
                lease_until=None,
                progress=0.0,
                progress_message=None,
            )
        )
        count = conn.execute(statement).rowcount
        if count:
            self.dialect.notify_new_tasks(conn)
        return int(count)

    def _retry_one_by_one(self, ids: Sequence[int], now: datetime) -> int:
        done = 0
        for task_id in ids:
            try:
                self.retry(task_id, now=now)  # type: ignore[attr-defined]  (QueryOps, in the same Store)
            except (InvalidTransition, TaskNotFound):
                continue
            done += 1
        return done

    def cancel_matching(self, which: BulkSelection, *, now: datetime | None = None) -> BulkResult:
        """Cancel every matching active task, each as `cancel` does one (a waiting parent's children
        too), each in its own short transaction."""
        if not set(which.statuses) <= {PENDING, Status.RUNNING.value, Status.WAITING_FOR_CHILDREN.value}:
            raise InvalidTransition("only pending, running or waiting tasks can be cancelled")
        changed = skipped = 0
        after = 0
        while ids := self._matching_ids(which, after):
            after = ids[-1]
            for task_id in ids:
                try:
                    self.cancel(task_id, now=now)  # type: ignore[attr-defined]  (WorkflowOps, in the same Store)
                except (InvalidTransition, TaskNotFound):  # finished meanwhile
                    skipped += 1
                else:
                    changed += 1
        return BulkResult(changed, skipped)

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
