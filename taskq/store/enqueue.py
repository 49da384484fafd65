"""Creating tasks: single, batched, deduplicated, and inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    insert,
    select,
)

from taskq.clock import utc_now
from taskq.model import (
    ACTIVE_STATUSES,
    Enqueued,
    TaskRequest,
)
from taskq.requests import ArgumentCheck, check_request
from taskq.schema import tasks
from taskq.store.base import (
    StoreBase,
    TaskDefaults,
    _status_is,
)

# Multi-row INSERT ... RETURNING in batches, ids in parameter order (SQLAlchemy's insertmanyvalues).
_INSERT_MANY = insert(tasks).returning(tasks.c.id, sort_by_parameter_order=True)


class EnqueueOps(StoreBase):
    check_arguments: ArgumentCheck | None = None  # set by taskq.api.open_store

    # -- enqueue -------------------------------------------------------------------------------------

    def _row_values(
        self, request: TaskRequest, now: datetime, check_arguments: ArgumentCheck | None = None
    ) -> dict[str, Any]:
        when = check_request(request, now, check_arguments)
        defaults = self.defaults_for(request.name) or TaskDefaults()
        return {
            "name": request.name,
            "queue": request.queue or defaults.queue,
            "args": list(request.args),
            "kwargs": dict(request.kwargs or {}),
            # status, attempts, progress, cancel_requested and the children counters take their server
            # defaults (pending, 0, 0, false, 0): fewer parameters to bind on the hottest insert.
            "priority": defaults.priority if request.priority is None else request.priority,
            "run_after": when,
            "max_retries": defaults.max_retries if request.max_retries is None else request.max_retries,
            "dedup_key": request.dedup_key,
            "parent_id": request.parent_id,
            "timeout": defaults.timeout if request.timeout is None else request.timeout,
            "continuation": request.continuation or defaults.continuation,
            "created_at": now,
        }

    def _insert_one(self, connection: Connection, values: dict[str, Any]) -> Enqueued:
        if values["dedup_key"] is None:
            return Enqueued(connection.execute(self._insert_plain, values).scalar_one(), store=self)
        new_id = connection.execute(self._insert_dedup, values).scalar_one_or_none()
        if new_id is not None:
            return Enqueued(new_id, store=self)
        existing = connection.execute(
            select(tasks.c.id).where(tasks.c.dedup_key == values["dedup_key"], _status_is(*ACTIVE_STATUSES))
        ).scalar_one_or_none()
        if existing is None:
            # The holder finished between our INSERT and SELECT (possible only on PostgreSQL, where
            # the conflict check does not lock); our row was not inserted, so insert it now.
            return self._insert_one(connection, values)
        return Enqueued(existing, deduplicated=True, store=self)

    def _insert_many(self, connection: Connection, rows: list[dict[str, Any]]) -> list[Enqueued]:
        plain = [row for row in rows if row["dedup_key"] is None]
        plain_ids: list[int] = []
        if len(plain) == 1:  # the common single enqueue: a plain execute beats the executemany machinery
            plain_ids = [connection.execute(self._insert_plain, plain[0]).scalar_one()]
        elif plain:
            plain_ids = list(connection.execute(_INSERT_MANY, plain).scalars())
        ids = iter(plain_ids)
        out = [
            Enqueued(next(ids), store=self) if row["dedup_key"] is None else self._insert_one(connection, row)
            for row in rows
        ]
        if out:
            self.dialect.notify_new_tasks(connection)
        return out

    def enqueue(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        priority: int | None = None,
        run_after: datetime | None = None,
        dedup_key: str | None = None,
        max_retries: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        parent_id: int | None = None,
        continuation: str | None = None,
        delay: float | timedelta | None = None,
        connection: Connection | None = None,
        now: datetime | None = None,
    ) -> Enqueued:
        """Create one task, or return the active task holding `dedup_key`.

        With `connection`, the row is written in the caller's open transaction and commits or rolls
        back with it (on SQLite, begin that transaction with BEGIN IMMEDIATE: see `begin_write`).
        """
        request = TaskRequest(
            name,
            args,
            kwargs,
            priority,
            run_after,
            dedup_key,
            max_retries,
            queue,
            timeout,
            parent_id,
            continuation,
            delay,
        )
        if self._hot is not None and connection is None and dedup_key is None:
            row = self._row_values(request, now or utc_now(), self.check_arguments)
            return Enqueued(self._retrying(lambda: self._hot.insert(row)), store=self)  # type: ignore[union-attr]
        return self.enqueue_many([request], connection=connection, now=now)[0]

    def enqueue_many(
        self,
        requests: Iterable[TaskRequest | Mapping[str, Any]],
        *,
        connection: Connection | None = None,
        now: datetime | None = None,
    ) -> list[Enqueued]:
        """Create a batch of tasks in one transaction; all or none are written."""
        now = now or utc_now()
        checked = [r if isinstance(r, TaskRequest) else TaskRequest(**r) for r in requests]
        rows = [self._row_values(request, now, self.check_arguments) for request in checked]
        if connection is not None:
            return self._insert_many(connection, rows)
        return self.write(lambda conn: self._insert_many(conn, rows))

    def begin_write(self, connection: Connection) -> None:
        """Start a write transaction on the caller's connection the way this database needs it."""
        self.dialect.begin_write(connection)
