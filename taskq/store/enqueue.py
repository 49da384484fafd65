"""Creating tasks: a checked request's row values, and inserting them, deduplicated by key, in the caller's
transaction (the facade's, a workflow step's, or the scheduler's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from taskq.model import ACTIVE_STATUSES, Enqueued, TaskRequest
from taskq.requests import ArgumentCheck, CheckedRequest, check
from taskq.schema import tasks
from taskq.store.base import NO_DEFAULTS, StoreContext, _status_is

_INSERT_PLAIN = insert(tasks).returning(tasks.c.id)
# PostgreSQL: multi-row INSERT ... RETURNING in batches, ids in parameter order (SQLAlchemy's
# insertmanyvalues). SQLite inserts plain rows through the driver instead (`_insert_consecutive`).
_INSERT_MANY = insert(tasks).returning(tasks.c.id, sort_by_parameter_order=True)
_LAST_ROWID = "SELECT last_insert_rowid()"


def checked(
    request: TaskRequest | CheckedRequest, now: datetime, check_arguments: ArgumentCheck | None = None
) -> CheckedRequest:
    """`request` checked once: a TaskRequest field by field, a CheckedRequest (parsed where it came in)
    only against the task's signature, which its parser could not see."""
    if isinstance(request, CheckedRequest):
        if check_arguments is not None:
            check_arguments(request.name, request.args, request.kwargs or {})
        return request
    return check(request, now, check_arguments)


def row_values(
    ctx: StoreContext,
    request: TaskRequest | CheckedRequest,
    now: datetime,
    check_arguments: ArgumentCheck | None = None,
) -> dict[str, Any]:
    return values_of(ctx, checked(request, now, check_arguments), now)


def values_of(ctx: StoreContext, request: CheckedRequest, now: datetime) -> dict[str, Any]:
    """The row a checked request makes, its options left out filled from the task's @task defaults."""
    defaults = ctx.catalog.defaults_for(request.name) or NO_DEFAULTS
    run_after = request.run_after
    if run_after is None:
        run_after = now if request.delay is None else request.run_at(now)
    return {
        "name": request.name,
        "queue": request.queue or defaults.queue,
        "args": request.args_json,  # the text the check encoded: bound as it is
        "kwargs": request.kwargs_json,
        # status, attempts, progress, cancel_requested and the children counters take their server
        # defaults (pending, 0, 0, false, 0): fewer parameters to bind on the hottest insert.
        "priority": defaults.priority if request.priority is None else request.priority,
        "run_after": run_after,
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
        return Enqueued(_insert_plain(conn, ctx, [values])[0], store=ctx.handles)
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
    """Insert `rows`: first every row without a dedup key, in one statement, then each row with one, in
    order (an active task holding its key, or an earlier row of this batch with the same key, is returned
    instead, deduplicated). Returns one Enqueued per row, in the rows' order."""
    plain = [row for row in rows if row["dedup_key"] is None]
    ids = iter(_insert_plain(conn, ctx, plain) if plain else ())
    out = [
        Enqueued(next(ids), store=ctx.handles) if row["dedup_key"] is None else insert_one(conn, ctx, row)
        for row in rows
    ]
    if out:
        ctx.dialect.notify_new_tasks(conn)
    return out


def _insert_plain(conn: Connection, ctx: StoreContext, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows without a dedup key; their ids, in the rows' order."""
    if ctx.sqlite_insert is not None:
        return _insert_consecutive(conn, ctx, rows)
    if len(rows) == 1:  # the common single enqueue: a plain execute beats the executemany machinery
        return [conn.execute(_INSERT_PLAIN, rows[0]).scalar_one()]
    return list(conn.execute(_INSERT_MANY, rows).scalars())


def _insert_consecutive(conn: Connection, ctx: StoreContext, rows: list[dict[str, Any]]) -> list[int]:
    """SQLite: one driver-level executemany without RETURNING, the ids read as the consecutive rowids
    ending at the last one inserted. SQLAlchemy runs INSERT ... RETURNING row by row there (SQLite does
    not promise the order of a multi-row RETURNING), one statement per task.

    Why the ids are consecutive: `tasks.id` is INTEGER PRIMARY KEY AUTOINCREMENT, so each row without an
    id gets one more than the largest id the table has ever held (sqlite_sequence) or holds now; and from
    its first write to COMMIT the transaction holds SQLite's only write lock (BEGIN IMMEDIATE takes it at
    once), so no other connection inserts in between. No trigger writes to `tasks`, and these rows carry no
    dedup key, so the partial unique index cannot refuse one: either every row is inserted, or the
    statement raises and the transaction rolls back."""
    plan = ctx.sqlite_insert
    assert plan is not None
    sql, params = plan.many(rows)
    if len(params) == 1:
        return [conn.exec_driver_sql(sql, params[0]).lastrowid]
    inserted = conn.exec_driver_sql(sql, params).rowcount
    last = conn.exec_driver_sql(_LAST_ROWID).scalar_one()
    assert inserted == len(params), f"{inserted} of {len(params)} rows inserted"
    return list(range(last - len(params) + 1, last + 1))
