"""Creating tasks: a request's row values, and inserting them, deduplicated by key, in the caller's
transaction (the facade's, a workflow step's, or the scheduler's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from taskq.model import ACTIVE_STATUSES, Enqueued, TaskRequest
from taskq.requests import ArgumentCheck, check_request
from taskq.schema import tasks
from taskq.store.base import StoreContext, TaskDefaults, _status_is

_INSERT_PLAIN = insert(tasks).returning(tasks.c.id)
# Multi-row INSERT ... RETURNING in batches, ids in parameter order (SQLAlchemy's insertmanyvalues).
_INSERT_MANY = insert(tasks).returning(tasks.c.id, sort_by_parameter_order=True)


def row_values(
    ctx: StoreContext, request: TaskRequest, now: datetime, check_arguments: ArgumentCheck | None = None
) -> dict[str, Any]:
    when = check_request(request, now, check_arguments)
    defaults = ctx.defaults_for(request.name) or TaskDefaults()
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
        "trace_context": None,  # set by tracing.send when an SDK is configured
    }


def insert_one(conn: Connection, ctx: StoreContext, values: dict[str, Any]) -> Enqueued:
    if values["dedup_key"] is None:
        return Enqueued(conn.execute(_INSERT_PLAIN, values).scalar_one(), store=ctx.handles)
    new_id = conn.execute(ctx.insert_dedup, values).scalar_one_or_none()
    if new_id is not None:
        return Enqueued(new_id, store=ctx.handles)
    existing = conn.execute(
        select(tasks.c.id).where(tasks.c.dedup_key == values["dedup_key"], _status_is(*ACTIVE_STATUSES))
    ).scalar_one_or_none()
    if existing is None:
        # The holder finished between our INSERT and SELECT (possible only on PostgreSQL, where
        # the conflict check does not lock); our row was not inserted, so insert it now.
        return insert_one(conn, ctx, values)
    return Enqueued(existing, deduplicated=True, store=ctx.handles)


def insert_many(conn: Connection, ctx: StoreContext, rows: list[dict[str, Any]]) -> list[Enqueued]:
    plain = [row for row in rows if row["dedup_key"] is None]
    plain_ids: list[int] = []
    if len(plain) == 1:  # the common single enqueue: a plain execute beats the executemany machinery
        plain_ids = [conn.execute(_INSERT_PLAIN, plain[0]).scalar_one()]
    elif plain:
        plain_ids = list(conn.execute(_INSERT_MANY, plain).scalars())
    ids = iter(plain_ids)
    out = [
        Enqueued(next(ids), store=ctx.handles) if row["dedup_key"] is None else insert_one(conn, ctx, row)
        for row in rows
    ]
    if out:
        ctx.dialect.notify_new_tasks(conn)
    return out
