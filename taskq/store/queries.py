"""Reading tasks (keyset pages, search, counts) and operator actions: retry, bulk retry and cancel, purge."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Text,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from taskq.clock import as_utc, utc_now
from taskq.lifecycle import Event, sources
from taskq.model import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    BulkResult,
    InvalidTransition,
    Status,
    Task,
    TaskFilter,
    TaskNotFinished,
    TaskNotFound,
    TaskPage,
)
from taskq.schema import tasks
from taskq.store.base import (
    _from,
    _status_is,
    _to,
)
from taskq.store.metrics import MetricsOps

BULK_BATCH = 500  # rows per bulk-action transaction: a few ms of write lock on SQLite, a few row locks on PostgreSQL
MAX_NAME_MATCHES = 20  # a name substring matching more task names than this is searched with LIKE instead


WAIT_POLL_MIN_SECONDS = 0.02  # first re-read of a task being waited for...
WAIT_POLL_MAX_SECONDS = 0.5  # ...doubling up to this: a quick task is seen done at once, a long wait costs 2 reads/s


class Waiting:
    """The schedule of one wait, shared by the blocking and the async one. It polls: a finished task
    sends no notification (LISTEN/NOTIFY and the SQLite file watch announce new tasks to workers), and
    a read by primary key costs well under a millisecond on either dialect."""

    def __init__(self, task_id: int, timeout: float | None) -> None:
        self.task_id, self.timeout = task_id, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.poll = WAIT_POLL_MIN_SECONDS

    def after(self, task: Task) -> Task | float:
        """The finished task, else the seconds to sleep before reading it again; TaskNotFinished once
        the deadline has passed."""
        if task.status in TERMINAL_STATUSES:
            return task
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TaskNotFinished(f"task {self.task_id} is still {task.status.value} after {self.timeout:g} s")
        pause = self.poll if left is None else min(self.poll, left)
        self.poll = min(self.poll * 2, WAIT_POLL_MAX_SECONDS)
        return pause


def _retried(now: datetime) -> dict[str, Any]:
    """The columns a retry resets: pending, runnable now, a fresh attempt budget."""
    return {
        "status": _to(Event.RETRY),
        "run_after": now,
        "attempts": 0,
        "finished_at": None,
        "started_at": None,
        "cancel_requested": False,
        "worker_id": None,
        "lease_until": None,
        "progress": 0.0,
        "progress_message": None,
    }


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally (escape character \\)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class QueryOps(MetricsOps):
    def retry(self, task_id: int, *, now: datetime | None = None) -> None:
        """failed or cancelled -> pending, runnable now, with a fresh attempt budget."""
        now = now or utc_now()

        def work(conn: Connection) -> None:
            columns = (tasks.c.status, tasks.c.queue, tasks.c.finished_at)
            row = conn.execute(select(*columns).where(tasks.c.id == task_id).with_for_update()).first()
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            if Status(row.status) not in sources(Event.RETRY):
                raise InvalidTransition(
                    f"task {task_id} is {row.status}; only failed or cancelled tasks can be retried"
                )
            self._forget_finished(conn, [row])
            conn.execute(update(tasks).where(tasks.c.id == task_id, _from(Event.RETRY)).values(**_retried(now)))
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
        # literals let the planner use ix_tasks_parent
        active_child = exists().where(
            child.c.parent_id == tasks.c.id, _status_is(*ACTIVE_STATUSES, column=child.c.status)
        )
        statement = delete(tasks).where(
            _status_is(*TERMINAL_STATUSES), tasks.c.finished_at < cutoff, tasks.c.parent_id.is_(None), ~active_child
        )

        def work(conn: Connection) -> int:
            deleted = int(conn.execute(statement).rowcount)
            if deleted:
                self._counts_need_recount(conn)  # ON DELETE CASCADE took children too: count them afresh
            return deleted

        return self.write(work)

    def bulk_retry(
        self, *, ids: Sequence[int] | None = None, where: TaskFilter | None = None, now: datetime | None = None
    ) -> BulkResult:
        """Retry the failed and cancelled tasks among `ids`, or every one matching `where`, BULK_BATCH rows
        per write transaction, so the write lock (SQLite) or the row locks (PostgreSQL) are held only
        briefly and workers keep going in between. A row holding a dedup key an active task took since is
        skipped, not failed."""
        now = now or utc_now()
        matched = changed = skipped = 0
        for batch in self._batches(ids, where, sources(Event.RETRY)):

            def work(conn: Connection, batch: list[int] = batch) -> tuple[int, int]:
                rows = conn.execute(
                    select(tasks.c.id, tasks.c.queue, tasks.c.status, tasks.c.finished_at, tasks.c.dedup_key)
                    .where(tasks.c.id.in_(batch), _from(Event.RETRY))
                    .with_for_update()
                ).all()
                free = [row for row in rows if row.dedup_key is None or not self._key_taken(conn, row.dedup_key)]
                if free:
                    self._forget_finished(conn, free)
                    conn.execute(update(tasks).where(tasks.c.id.in_([r.id for r in free])).values(**_retried(now)))
                    self.dialect.notify_new_tasks(conn)
                return len(free), len(rows) - len(free)

            try:
                done, _taken = self.write(work)
            except DBAPIError as error:
                if "unique" not in str(error.orig).lower():
                    raise
                # An enqueue took one of these dedup keys between the check and the update: the batch
                # rolled back whole, so go through it one task at a time and skip the one that clashes.
                done = sum(self._retry_if_free(task_id, now) for task_id in batch)
            matched += len(batch)
            changed += done
            skipped += len(batch) - done
        return BulkResult(matched, changed, skipped)

    def bulk_cancel(
        self, *, ids: Sequence[int] | None = None, where: TaskFilter | None = None, now: datetime | None = None
    ) -> BulkResult:
        """Cancel the active tasks among `ids`, or every one matching `where`: one short transaction per
        task through `cancel` (children and running tasks need its per-status handling)."""
        now = now or utc_now()
        matched = changed = 0
        for batch in self._batches(ids, where, tuple(ACTIVE_STATUSES)):
            for task_id in batch:
                matched += 1
                try:
                    self.cancel(task_id, now=now)
                except (InvalidTransition, TaskNotFound):
                    continue  # finished (or purged) since the batch was read
                changed += 1
        return BulkResult(matched, changed, matched - changed)

    def _retry_if_free(self, task_id: int, now: datetime) -> bool:
        try:
            self.retry(task_id, now=now)
        except (InvalidTransition, TaskNotFound):
            return False
        return True

    def _key_taken(self, conn: Connection, dedup_key: str) -> bool:
        query = select(tasks.c.id).where(tasks.c.dedup_key == dedup_key, _status_is(*ACTIVE_STATUSES)).limit(1)
        return conn.execute(query).first() is not None

    def _batches(
        self, ids: Sequence[int] | None, where: TaskFilter | None, statuses: tuple[Status, ...]
    ) -> Iterator[list[int]]:
        """Ids to act on, BULK_BATCH at a time, newest first; a filter is re-read from a cursor after each
        batch (keyset, so changed rows neither repeat nor shift the next batch)."""
        if ids is not None:
            unique = sorted(set(ids), reverse=True)
            for start in range(0, len(unique), BULK_BATCH):
                yield unique[start : start + BULK_BATCH]
            return
        where = where or TaskFilter()
        if where.status is not None and where.status not in statuses:
            return
        cursor: int | None = None
        while True:
            page = self.page(where, before_id=cursor, limit=BULK_BATCH, statuses=statuses)
            if not page.tasks:
                return
            yield [task.id for task in page.tasks]
            if page.older_than is None:
                return
            cursor = page.older_than

    def count(self, where: TaskFilter) -> int:
        """How many tasks match (the dashboard shows it before a bulk action). Reads every matching row's
        index entry: fast with a status, name or queue filter, a scan for text searches."""
        names = self._names_for(where)
        query = select(func.count()).select_from(tasks).where(*self._conditions(where, None, names))
        if names is not None:
            query = query.where(tasks.c.name.in_(names))
        return int(self.read(lambda conn: conn.execute(query).scalar_one()))

    # -- queries -------------------------------------------------------------------------------------

    def get(self, task_id: int) -> Task | None:
        row = self.read(lambda conn: conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first())
        return None if row is None else Task.from_row(row)

    def wait(self, task_id: int, timeout: float | None = None) -> Task:
        """Block until the task finished (completed, failed or cancelled) and return it; after `timeout`
        seconds (None: no limit) raise TaskNotFinished."""
        waiting = Waiting(task_id, timeout)
        while True:
            pause = waiting.after(self.require(task_id))
            if isinstance(pause, Task):
                return pause
            time.sleep(pause)

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
        before_id: int | None = None,
    ) -> list[Task]:
        """Newest first; `before_id` pages by cursor (stable under inserts)."""
        where = TaskFilter(
            status=None if status is None else Status(status), name=name, queue=queue, parent_id=parent_id
        )
        return self.page(where, before_id=before_id, limit=limit).tasks

    def page(
        self,
        where: TaskFilter,
        *,
        before_id: int | None = None,
        after_id: int | None = None,
        limit: int = 50,
        statuses: Sequence[Status | str] | None = None,
    ) -> TaskPage:
        """One page of the tasks matching `where`, newest first, by keyset: `before_id` gives the page of
        older rows, `after_id` the page of newer ones (after_id=0: the oldest page). Never OFFSET, so
        the last page of a million rows costs what the first does.

        A name substring is resolved to the task names it matches (known_names) and each name is read
        through ix_tasks_name_id, `limit` rows at most per name, merged here; without a rollup yet, or
        for text searches (error, arguments), rows are walked by id and filtered."""
        ascending = after_id is not None and before_id is None
        names = self._names_for(where)
        conditions = self._conditions(where, statuses, names)
        if ascending:
            conditions.append(tasks.c.id > after_id)
        elif before_id is not None:
            conditions.append(tasks.c.id < before_id)
        base = select(tasks).where(*conditions).order_by(tasks.c.id.asc() if ascending else tasks.c.id.desc())
        base = base.limit(limit + 1)
        queries = [base] if names is None else [base.where(tasks.c.name == name) for name in names]

        def work(conn: Connection) -> list[Any]:
            return [row for query in queries for row in conn.execute(query).mappings().all()]

        rows = sorted(self.read(work), key=lambda row: row["id"], reverse=not ascending)
        more = len(rows) > limit
        found = [Task.from_row(row) for row in rows[:limit]]
        if not found:
            return TaskPage([], None, None)
        if ascending:
            found.reverse()
            # after_id > 0 came from an older page, so older rows exist; after_id = 0 is the oldest page.
            return TaskPage(found, found[-1].id if after_id else None, found[0].id if more else None)
        return TaskPage(found, found[-1].id if more else None, found[0].id if before_id is not None else None)

    def _conditions(
        self, where: TaskFilter, statuses: Sequence[Status | str] | None, names: list[str] | None
    ) -> list[Any]:
        conditions: list[Any] = []
        if where.name_contains and names is None:
            conditions.append(func.lower(tasks.c.name).like(_like(where.name_contains.lower()), escape="\\"))
        wanted = (where.status,) if where.status is not None else statuses
        if wanted is not None:
            conditions.append(_status_is(*wanted, listing=True))
        if where.name is not None:
            conditions.append(tasks.c.name == where.name)
        if where.queue is not None:
            conditions.append(tasks.c.queue == where.queue)
        if where.parent_id is not None:
            conditions.append(tasks.c.parent_id == where.parent_id)
        if where.error_contains:
            conditions.append(tasks.c.error.like(_like(where.error_contains), escape="\\"))
        if where.args_contains:
            pattern = _like(where.args_contains)
            conditions.append(
                or_(
                    cast(tasks.c.args, Text).like(pattern, escape="\\"),
                    cast(tasks.c.kwargs, Text).like(pattern, escape="\\"),
                )
            )
        return conditions

    def _names_for(self, where: TaskFilter) -> list[str] | None:
        """The task names a name substring stands for (None: no substring, or names unknown -> LIKE)."""
        if not where.name_contains:
            return None
        known = self.known_names()
        needle = where.name_contains.lower()
        if known is None:
            return None
        matches = [name for name in known if needle in name.lower()]
        return None if len(matches) > MAX_NAME_MATCHES else matches

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

    def next_run_after(self, queues: Sequence[str] | None = None) -> datetime | None:
        """When the earliest pending task becomes ready (lets an idle worker sleep exactly that long)."""
        query = select(func.min(tasks.c.run_after)).where(_status_is(Status.PENDING))
        if queues:
            query = query.where(tasks.c.queue.in_(list(queues)))
        value = self.read(lambda conn: conn.execute(query).scalar_one_or_none())
        return None if value is None else as_utc(value)
