"""Reading tasks, operator actions on finished ones (retry, purge), and statistics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    delete,
    exists,
    func,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError

from taskq.clock import as_utc, utc_now
from taskq.model import (
    InvalidTransition,
    Status,
    Task,
    TaskNotFound,
)
from taskq.schema import SETTLED, tasks
from taskq.store.base import (
    _ACTIVE,
    _TERMINAL,
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    StoreBase,
    _status_is,
)

_ACTIVE_LITERALS = [literal_column(f"'{status}'") for status in _ACTIVE]  # literals let the planner use ix_tasks_parent


# Each part counts through its own partial index (claim, lease, status): a GROUP BY over the whole table
# would scan every row instead.
_STATS = union_all(
    select(literal_column(f"'{PENDING}'"), func.count()).select_from(tasks).where(_status_is(PENDING)),
    select(literal_column(f"'{RUNNING}'"), func.count()).select_from(tasks).where(_status_is(RUNNING)),
    select(tasks.c.status, func.count()).where(SETTLED).group_by(tasks.c.status),
)


class QueryOps(StoreBase):
    def retry(self, task_id: int, *, now: datetime | None = None) -> None:
        """failed or cancelled -> pending, runnable now, with a fresh attempt budget."""
        now = now or utc_now()

        def work(conn: Connection) -> None:
            status = conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar_one_or_none()
            if status is None:
                raise TaskNotFound(f"no task with id {task_id}")
            if status not in (FAILED, CANCELLED):
                raise InvalidTransition(f"task {task_id} is {status}; only failed or cancelled tasks can be retried")
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id)
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
            self.dialect.notify_new_tasks(conn)

        try:
            self.write(work)
        except DBAPIError as error:
            if "unique" in str(error.orig).lower():
                raise InvalidTransition(
                    f"task {task_id} cannot be retried: another active task holds its dedup key"
                ) from None
            raise

    def purge(self, older_than: timedelta, *, now: datetime | None = None) -> int:
        """Delete finished top-level tasks that finished before now - older_than; their children go with them
        (ON DELETE CASCADE). A parent keeps its rows while a child of it is active again (`taskq retry`)."""
        cutoff = (now or utc_now()) - older_than
        child = tasks.alias("child")
        active_child = exists().where(child.c.parent_id == tasks.c.id, child.c.status.in_(_ACTIVE_LITERALS))
        statement = delete(tasks).where(
            _status_is(*_TERMINAL), tasks.c.finished_at < cutoff, tasks.c.parent_id.is_(None), ~active_child
        )
        return int(self.write(lambda conn: conn.execute(statement).rowcount))

    # -- queries -------------------------------------------------------------------------------------

    def get(self, task_id: int) -> Task | None:
        row = self.read(lambda conn: conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first())
        return None if row is None else Task.from_row(row)

    def require(self, task_id: int) -> Task:
        task = self.get(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return task

    def list(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        queue: str | None = None,
        parent_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[Task]:
        """Newest first. `before_id` pages by cursor (stable under inserts); `offset` by position."""
        query = select(tasks).order_by(tasks.c.id.desc()).limit(limit).offset(offset)
        if status is not None:
            query = query.where(_status_is(Status(status).value))
            if Status(status).value not in (PENDING, RUNNING):
                query = query.where(SETTLED)  # lets SQLite use ix_tasks_status_id / ix_tasks_name_id
        if name is not None:
            query = query.where(tasks.c.name == name)
        if queue is not None:
            query = query.where(tasks.c.queue == queue)
        if parent_id is not None:
            query = query.where(tasks.c.parent_id == parent_id)
        if before_id is not None:
            query = query.where(tasks.c.id < before_id)
        rows = self.read(lambda conn: conn.execute(query).mappings().all())
        return [Task.from_row(row) for row in rows]

    def children_results(self, parent_id: int) -> list[Task]:
        """Every child of `parent_id`, oldest first (continuations read their inputs here)."""
        query = select(tasks).where(tasks.c.parent_id == parent_id).order_by(tasks.c.id)
        return [Task.from_row(row) for row in self.read(lambda conn: conn.execute(query).mappings().all())]

    def children_counts(self, parent_id: int) -> dict[str, int]:
        query = select(tasks.c.status, func.count()).where(tasks.c.parent_id == parent_id).group_by(tasks.c.status)
        rows = self.read(lambda conn: conn.execute(query).all())
        counts = {status.value: 0 for status in Status}
        counts.update({row[0]: row[1] for row in rows})
        return counts

    def stats(self) -> dict[str, int]:
        """Number of tasks in each status; every status present, zeros included."""
        rows = self.read(lambda conn: conn.execute(_STATS).all())
        counts = {status.value: 0 for status in Status}
        counts.update({row[0]: row[1] for row in rows})
        return counts

    def next_run_after(self, queues: Sequence[str] | None = None) -> datetime | None:
        """When the earliest pending task becomes ready (lets an idle worker sleep exactly that long)."""
        query = select(func.min(tasks.c.run_after)).where(_status_is(PENDING))
        if queues:
            query = query.where(tasks.c.queue.in_(list(queues)))
        value = self.read(lambda conn: conn.execute(query).scalar_one_or_none())
        return None if value is None else as_utc(value)
