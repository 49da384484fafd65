"""Parents and children: fan-out, the last child completing its parent, continuations, cancelling a
parent's children. `after_finish` is what every finished task (completed, failed, cancelled) runs."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    Integer,
    bindparam,
    case,
    select,
    update,
)

from taskq import tracing
from taskq.lifecycle import ChildCounts, Event, parent_error, parent_outcome
from taskq.model import Enqueued, Status, TaskRequest
from taskq.schema import tasks
from taskq.store.base import (
    ATTEMPT_COUNTED,
    STARTED_AT,
    StoreContext,
    _from,
    _owned,
    _owner_params,
    _status_is,
    _to,
)
from taskq.store.enqueue import insert_many, insert_one, row_values


@functools.cache
def _count_children_statement(status: Status) -> Executable:
    """Built once per status: child completions are the fan-out's hot path, and building the expression
    each time cost more than running it (cProfile: ~60% of a child's completion in a 5,000-child fan-out)."""
    counter = {
        Status.COMPLETED: tasks.c.children_completed,
        Status.FAILED: tasks.c.children_failed,
        Status.CANCELLED: tasks.c.children_cancelled,
    }[status]
    count = bindparam("finished_count", type_=Integer)
    finished = tasks.c.children_completed + tasks.c.children_failed + tasks.c.children_cancelled + count
    return (
        update(tasks)
        .where(tasks.c.id == bindparam("counted_parent_id"), _from(Event.LAST_CHILD))
        .values(
            {
                counter: counter + count,
                tasks.c.progress: case(
                    (tasks.c.children_total > 0, 100.0 * finished / tasks.c.children_total), else_=0.0
                ),
            }
        )
        .returning(
            tasks.c.children_total,
            tasks.c.children_completed,
            tasks.c.children_failed,
            tasks.c.children_cancelled,
            tasks.c.cancel_requested,
            tasks.c.parent_id,
            tasks.c.continuation,
            tasks.c.queue,
            tasks.c.priority,
        )
    )


def after_finish(
    conn: Connection, ctx: StoreContext, task_id: int, row: Mapping[str, Any] | Any, status: Status, now: datetime
) -> None:
    values = row._mapping if hasattr(row, "_mapping") else row
    if status is Status.COMPLETED and values["continuation"]:
        _enqueue_continuation(conn, ctx, task_id, values, now)
    if values["parent_id"] is not None:
        count_finished_children(conn, ctx, values["parent_id"], status, 1, now)


def _enqueue_continuation(
    conn: Connection, ctx: StoreContext, task_id: int, values: Mapping[str, Any], now: datetime
) -> None:
    # The continuation inherits the finished task's dedup key in the same transaction that released
    # it, so a key given to a pipeline's first step stays held until the last step has finished.
    finished = conn.execute(select(tasks.c.dedup_key, tasks.c.trace_context).where(tasks.c.id == task_id)).one()
    request = TaskRequest(values["continuation"], [task_id], dedup_key=finished.dedup_key)
    row = row_values(ctx, request, now)
    # Enqueued by whichever process recorded the last outcome (a worker, the supervisor), after the
    # finished task's span ended: the continuation carries that task's own context, as a link.
    row["trace_context"] = tracing.as_link(finished.trace_context)
    insert_one(conn, ctx, row)
    ctx.dialect.notify_new_tasks(conn)


def count_finished_children(
    conn: Connection, ctx: StoreContext, parent_id: int, status: Status, count: int, now: datetime
) -> None:
    """Add `count` children that reached `status` to a waiting parent; the update that makes the counts
    reach the total finishes the parent. The increment is one UPDATE ... RETURNING: the row lock
    (PostgreSQL) or the write lock (SQLite) makes exactly one caller see finished == total.
    Only a waiting parent counts: a child retried after its parent finished leaves the parent alone."""
    params = {"counted_parent_id": parent_id, "finished_count": count}
    parent = conn.execute(_count_children_statement(status), params).first()
    if parent is None:
        return
    if ChildCounts.of(parent).all_finished:
        _finish_parent(conn, ctx, parent_id, parent._mapping, now)


def _finish_parent(
    conn: Connection, ctx: StoreContext, parent_id: int, parent: Mapping[Any, Any], now: datetime
) -> None:
    children = ChildCounts.of(parent)
    outcome = parent_outcome(children, cancel_requested=parent["cancel_requested"])
    failed_ids: Sequence[int] = ()
    if outcome is Status.FAILED:
        failed_ids = (
            conn.execute(
                select(tasks.c.id)
                .where(tasks.c.parent_id == parent_id, _status_is(Status.FAILED))
                .order_by(tasks.c.id)
                .limit(50)
            )
            .scalars()
            .all()
        )
    error = parent_error(outcome, children, cancel_requested=parent["cancel_requested"], failed_ids=failed_ids)
    conn.execute(
        update(tasks)
        .where(tasks.c.id == parent_id, _from(Event.LAST_CHILD))
        .values(status=outcome.value, finished_at=now, progress=100.0, error=error, lease_until=None)
    )
    after_finish(conn, ctx, parent_id, parent, outcome, now)


def wait_for_children(
    conn: Connection,
    ctx: StoreContext,
    task_id: int,
    rows: Sequence[dict[str, Any]],
    *,
    continuation: str | None,
    worker_id: str | None,
    attempt: int | None,
    started_at: datetime | None,
    now: datetime,
) -> list[Enqueued] | None:
    """Insert the children's `rows` (row_values, parent_id set) under `task_id` and move it to
    waiting_for_children; with no children it completes at once. None when the task is no longer this
    worker's."""
    values: dict[str, Any] = {
        "status": _to(Event.SPAWN),
        "children_total": len(rows),
        "children_completed": 0,
        "children_failed": 0,
        "children_cancelled": 0,
        "lease_until": None,
        "attempts": ATTEMPT_COUNTED,
        "started_at": STARTED_AT,
    }
    if continuation is not None:
        values["continuation"] = continuation
    owner, params = _owner_params(task_id, worker_id, attempt)
    params["started"] = started_at or now
    parent = conn.execute(
        update(tasks)
        .where(_owned(Event.SPAWN, *owner))
        .values(**values)
        .returning(
            tasks.c.parent_id,
            tasks.c.continuation,
            tasks.c.queue,
            tasks.c.priority,
            tasks.c.cancel_requested,
            tasks.c.children_total,
            tasks.c.children_completed,
            tasks.c.children_failed,
            tasks.c.children_cancelled,
        ),
        params,
    ).first()
    if parent is None:
        return None
    enqueued = insert_many(conn, ctx, list(rows))
    if not rows:
        _finish_parent(conn, ctx, task_id, parent._mapping, now)
    elif parent.cancel_requested:
        # Cancelled while it ran, and it spawned anyway: its children must not run either.
        cancel_children(conn, ctx, task_id, now)
    return enqueued


def cancel_children(conn: Connection, ctx: StoreContext, parent_id: int, now: datetime) -> None:
    """Ask the running children of `parent_id` to stop (and theirs, recursively); cancel the pending ones."""
    stopping = conn.execute(
        update(tasks)
        .where(tasks.c.parent_id == parent_id, _from(Event.REQUEST_CANCEL))
        .values(cancel_requested=True)
        .returning(tasks.c.id, tasks.c.status)
    ).all()
    for child in stopping:
        if child.status == Status.WAITING_FOR_CHILDREN.value:
            cancel_children(conn, ctx, child.id, now)
    pending = (
        conn.execute(
            update(tasks)
            .where(tasks.c.parent_id == parent_id, _from(Event.CANCEL))
            .values(status=_to(Event.CANCEL), finished_at=now, cancel_requested=True)
            .returning(tasks.c.id)
        )
        .scalars()
        .all()
    )
    if pending:
        count_finished_children(conn, ctx, parent_id, Status.CANCELLED, len(pending), now)
