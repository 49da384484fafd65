"""Operator actions on tasks that already exist: cancel (any active task), retry (one, or a batch of a
bulk retry), purge. Each function runs inside the facade's write transaction; the bulk actions' batching
over several transactions is the facade's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, select, update

from taskq.lifecycle import Event, sources
from taskq.model import ACTIVE_STATUSES, TERMINAL_STATUSES, InvalidTransition, Status, TaskNotFound
from taskq.schema import tasks
from taskq.store.base import StoreContext, _from, _status_is, _to
from taskq.store.rollup import count_purged, counts_need_recount, forget_finished, unrolled_rows_a_purge_may_delete
from taskq.store.workflow import after_finish, cancel_children


def cancel(conn: Connection, ctx: StoreContext, task_id: int, now: datetime) -> Status:
    """pending -> cancelled at once; running -> cancel_requested (the worker stops it);
    waiting_for_children -> its pending children are cancelled, running ones asked to stop.
    Returns the status after the call; a finished task raises InvalidTransition."""
    row = conn.execute(
        select(tasks.c.status, tasks.c.parent_id, tasks.c.continuation, tasks.c.queue, tasks.c.priority)
        .where(tasks.c.id == task_id)
        .with_for_update()
    ).first()
    if row is None:
        raise TaskNotFound(f"no task with id {task_id}")
    status = Status(row.status)
    if status in sources(Event.CANCEL):
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, _from(Event.CANCEL))
            .values(status=_to(Event.CANCEL), finished_at=now, cancel_requested=True)
        )
        after_finish(conn, ctx, task_id, row, Status.CANCELLED, now)
        return Status.CANCELLED
    if status in sources(Event.REQUEST_CANCEL):
        asked = update(tasks).where(tasks.c.id == task_id, _from(Event.REQUEST_CANCEL))
        conn.execute(asked.values(cancel_requested=True))
        if status is Status.WAITING_FOR_CHILDREN:
            cancel_children(conn, ctx, task_id, now)
        return Status(conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar_one())
    raise InvalidTransition(f"task {task_id} is already {status}")


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


def retry(conn: Connection, ctx: StoreContext, task_id: int, now: datetime) -> None:
    """failed or cancelled -> pending, runnable now, with a fresh attempt budget. An active task holding
    its dedup key makes the UPDATE fail on the unique index (the facade turns that into InvalidTransition)."""
    columns = (tasks.c.status, tasks.c.queue, tasks.c.name, tasks.c.started_at, tasks.c.finished_at)
    row = conn.execute(select(*columns).where(tasks.c.id == task_id).with_for_update()).first()
    if row is None:
        raise TaskNotFound(f"no task with id {task_id}")
    if Status(row.status) not in sources(Event.RETRY):
        raise InvalidTransition(f"task {task_id} is {row.status}; only failed or cancelled tasks can be retried")
    forget_finished(conn, [row], now=now)
    conn.execute(update(tasks).where(tasks.c.id == task_id, _from(Event.RETRY)).values(**_retried(now)))
    ctx.dialect.notify_new_tasks(conn)


def retry_batch(conn: Connection, ctx: StoreContext, batch: Sequence[int], now: datetime) -> tuple[int, int]:
    """Retry the failed and cancelled tasks among `batch` whose dedup key no active task took since;
    returns (retried, skipped for their key)."""
    rows = conn.execute(
        select(
            tasks.c.id,
            tasks.c.queue,
            tasks.c.name,
            tasks.c.status,
            tasks.c.started_at,
            tasks.c.finished_at,
            tasks.c.dedup_key,
        )
        .where(tasks.c.id.in_(list(batch)), _from(Event.RETRY))
        .with_for_update()
    ).all()
    free = [row for row in rows if row.dedup_key is None or not _key_taken(conn, row.dedup_key)]
    if free:
        forget_finished(conn, free, now=now)
        conn.execute(update(tasks).where(tasks.c.id.in_([r.id for r in free])).values(**_retried(now)))
        ctx.dialect.notify_new_tasks(conn)
    return len(free), len(rows) - len(free)


def _key_taken(conn: Connection, dedup_key: str) -> bool:
    query = select(tasks.c.id).where(tasks.c.dedup_key == dedup_key, _status_is(*ACTIVE_STATUSES)).limit(1)
    return conn.execute(query).first() is not None


def purge(conn: Connection, cutoff: datetime, now: datetime) -> int:
    """Delete finished top-level tasks that finished before `cutoff`; their children go with them
    (ON DELETE CASCADE). A parent keeps its rows while a child of it is active again (`taskq retry`).
    Deleted rows the rollup had not reached yet are counted first-hand, so /metrics never loses them."""
    unrolled = unrolled_rows_a_purge_may_delete(conn, cutoff)
    child = tasks.alias("child")
    # literals let the planner use ix_tasks_parent
    active_child = exists().where(child.c.parent_id == tasks.c.id, _status_is(*ACTIVE_STATUSES, column=child.c.status))
    statement = delete(tasks).where(
        _status_is(*TERMINAL_STATUSES), tasks.c.finished_at < cutoff, tasks.c.parent_id.is_(None), ~active_child
    )
    deleted = int(conn.execute(statement).rowcount)
    if deleted:
        count_purged(conn, unrolled, now=now)
        counts_need_recount(conn)  # ON DELETE CASCADE took children too: count them afresh
    return deleted
