"""Recording what happened to claimed tasks: results, failures, leases, progress, what a dead worker held.
Every finished task goes through workflow.after_finish (parent counts, continuations). Claiming is in
claim.py."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, select, update

from taskq.clock import as_utc
from taskq.lifecycle import Event, Failure, FailureKind, RetryPolicy, decide_failure, decide_pass_on, traceback_text
from taskq.model import Completion, Interrupted, Interruption, SettledCounts, Status, Task
from taskq.schema import tasks
from taskq.store.base import (
    ATTEMPT_COUNTED,
    ATTEMPT_UNCOUNTED,
    COMPLETED,
    ERROR_LOG_LIMIT,
    RUNNING,
    STARTED_AT,
    StoreContext,
    _clip,
    _from,
    _held_by_worker,
    _owned,
    _owner_params,
    _safe_text,
    _status_is,
    _to,
)
from taskq.store.workflow import after_finish

# Hot-path statements are built once: constructing a Core statement and its cache key costs more than
# running it on SQLite, so the claim/complete cycle reuses these objects with bound parameters.
_FINISH_RETURNING = (tasks.c.parent_id, tasks.c.continuation, tasks.c.queue, tasks.c.priority)


_COMPLETED_VALUES = {
    "status": _to(Event.COMPLETE),
    "attempts": ATTEMPT_COUNTED,
    "started_at": STARTED_AT,
    "result": bindparam("result"),
    "progress": 100.0,
    "finished_at": bindparam("now"),
    "lease_until": None,
    "cancel_requested": False,
}
# Tasks without parent or continuation need nothing back: executemany-able, no RETURNING.
_COMPLETE_PLAIN = update(tasks).where(_owned(Event.COMPLETE, True, True)).values(**_COMPLETED_VALUES)


@functools.cache
def _complete_statement(owner: tuple[bool, bool]) -> Executable:
    return update(tasks).where(_owned(Event.COMPLETE, *owner)).values(**_COMPLETED_VALUES).returning(*_FINISH_RETURNING)


@functools.cache
def _cancelled_statement(owner: tuple[bool, bool]) -> Executable:
    return (
        update(tasks)
        .where(_owned(Event.STOP, *owner))
        .values(
            status=_to(Event.STOP),
            attempts=ATTEMPT_COUNTED,
            started_at=STARTED_AT,
            finished_at=bindparam("now"),
            lease_until=None,
            error=bindparam("reason"),
        )
        .returning(*_FINISH_RETURNING)
    )


@functools.cache
def _failing_row_statement(owner: tuple[bool, bool]) -> Executable:
    return (
        select(
            tasks.c.name,
            tasks.c.attempts,
            tasks.c.started_at,
            tasks.c.max_retries,
            tasks.c.error_log,
            tasks.c.worker_id,
            tasks.c.cancel_requested,
            *_FINISH_RETURNING,
        )
        .where(_owned(Event.FAIL, *owner))  # or BACK_OFF: decide_failure chooses, from the same status
        .with_for_update()
    )


_SET_PROGRESS = (
    update(tasks)
    .where(tasks.c.id == bindparam("task_id"), _from(Event.PROGRESS))
    .values(progress=bindparam("progress"), progress_message=bindparam("message"))
)
_MARK_STARTED = (
    update(tasks)
    .where(_owned(Event.START, True, False), tasks.c.started_at.is_(None))
    .values(attempts=tasks.c.attempts + 1, started_at=bindparam("started"))
)
_RELEASE_VALUES = {
    "status": _to(Event.RELEASE),
    "attempts": ATTEMPT_UNCOUNTED,
    "worker_id": None,
    "lease_until": None,
    "started_at": None,
}
# Released rows are those still held (in the release's from-status), by the given worker when one is given.
_RELEASE = (
    update(tasks)
    .where(tasks.c.id.in_(bindparam("task_ids", expanding=True)), _from(Event.RELEASE))
    .values(**_RELEASE_VALUES)
)
_RELEASE_OWNED = _RELEASE.where(tasks.c.worker_id == bindparam("owner_worker_id"))
_RUNNING_OF_WORKER = select(tasks.c.id, tasks.c.started_at).where(_held_by_worker()).with_for_update()
_RUNNING_WORKER_IDS = select(tasks.c.worker_id).where(_status_is(RUNNING)).distinct()
_CANCEL_REQUESTED_AMONG = select(tasks.c.id).where(
    tasks.c.id.in_(bindparam("ids", expanding=True)), tasks.c.cancel_requested.is_(True)
)
# A batch at a time, skipping rows another recoverer holds: the rest are found on its next round.
_EXPIRED_LEASES = (
    select(tasks.c.id, tasks.c.worker_id, tasks.c.lease_until, tasks.c.started_at)
    .where(_status_is(RUNNING), tasks.c.lease_until < bindparam("now"))
    .with_for_update(skip_locked=True)
    .limit(500)
)
_RENEW_LEASES = (
    update(tasks)
    .where(
        tasks.c.id.in_(bindparam("task_ids", expanding=True)),
        _from(Event.RENEW_LEASE),
        tasks.c.worker_id == bindparam("owner_worker_id"),
    )
    .values(lease_until=bindparam("lease_until"))
    .returning(tasks.c.id, tasks.c.cancel_requested)
)


_RECORDED_AMONG = select(tasks.c.id).where(
    tasks.c.id.in_(bindparam("ids", expanding=True)),
    _status_is(COMPLETED),
    tasks.c.worker_id == bindparam("owner_worker_id"),
)


_RECORDED_ONE = select(tasks.c.id).where(
    tasks.c.id == bindparam("id"), _status_is(COMPLETED), tasks.c.worker_id == bindparam("owner_worker_id")
)


def _plain_completion_row(worker_id: str, completion: Completion) -> dict[str, Any]:
    return {
        "owner_task_id": completion.task_id,
        "owner_worker_id": worker_id,
        "owner_attempt": completion.attempt,
        "result": completion.result,
        "now": completion.finished_at,
        "started": completion.started_at or completion.finished_at,
    }


# -- outcomes ---------------------------------------------------------------------------------------------


def record_completions(
    conn: Connection, ctx: StoreContext, worker_id: str, completions: Sequence[Completion]
) -> list[int]:
    plain = [c for c in completions if not c.has_follow_up]
    recorded = _complete_plain(conn, worker_id, plain) if plain else []
    recorded += [
        c.task_id
        for c in completions
        if c.has_follow_up
        and complete(conn, ctx, c.task_id, c.result, worker_id, c.attempt, c.finished_at, c.continuation, c.started_at)
    ]
    return recorded


def _complete_plain(conn: Connection, worker_id: str, completions: Sequence[Completion]) -> list[int]:
    """Tasks without parent or continuation: one executemany, no RETURNING, no follow-up queries."""
    rows = [_plain_completion_row(worker_id, c) for c in completions]
    updated = conn.execute(_COMPLETE_PLAIN, rows).rowcount
    if updated == len(rows):
        return [c.task_id for c in completions]
    # Some were no longer ours (lease recovered): find out which ones we did record.
    params = {"ids": [c.task_id for c in completions], "owner_worker_id": worker_id}
    return list(conn.execute(_RECORDED_AMONG, params).scalars())


def complete(
    conn: Connection,
    ctx: StoreContext,
    task_id: int,
    result: Any,
    worker_id: str | None,
    attempt: int | None,
    now: datetime,
    continuation: str | None = None,
    started_at: datetime | None = None,
) -> bool:
    """Record success; False when the task is no longer this worker's. `continuation` is enqueued when the
    row names none."""
    owner, params = _owner_params(task_id, worker_id, attempt)
    params.update(result=result, now=now, started=started_at or now)
    row = conn.execute(_complete_statement(owner), params).first()
    if row is None:
        return False
    values: Mapping[Any, Any] = row._mapping
    if values["continuation"] is None and continuation is not None:
        values = {**values, "continuation": continuation}
    if values["parent_id"] is not None or values["continuation"] is not None:
        after_finish(conn, ctx, task_id, values, Status.COMPLETED, now)
    return True


def as_failure(error: str | BaseException | Failure, retry: bool) -> Failure:
    """What `fail` was given, as a Failure with its text clipped: a string or an exception is an error,
    retried when `retry`; a Failure says what happened itself."""
    if isinstance(error, Failure):
        failure = error
    else:
        text = error if isinstance(error, str) else traceback_text(error)
        failure = Failure(FailureKind.ERROR if retry else FailureKind.PERMANENT, text)
    return Failure(failure.kind, _clip(failure.text), failure.delay)


def fail_running(
    conn: Connection,
    ctx: StoreContext,
    task_id: int,
    failure: Failure,
    now: datetime,
    worker_id: str | None,
    attempt: int | None,
    started_at: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> Status | None:
    """Apply `decide_failure` to a running attempt: back to pending with a backoff, or failed. None when
    the task is no longer this worker's."""
    owner, params = _owner_params(task_id, worker_id, attempt)
    row = conn.execute(_failing_row_statement(owner), params).mappings().first()
    if row is None:
        return None
    attempts = row["attempts"] + (1 if row["started_at"] is None else 0)
    decision = decide_failure(
        failure,
        policy or ctx.retry_policy_for(row["name"]),
        attempts=attempts,
        max_retries=row["max_retries"],
        cancel_requested=row["cancel_requested"],
        now=now,
        draw=random.random(),
    )
    attempt_started = row["started_at"] or started_at or now
    # Who ran the attempt and when it began, beside its error: the row keeps neither once it runs again
    # (the Django backend's worker_ids and started_at are read from here).
    entry = {**decision.log_entry, "worker_id": row["worker_id"], "started_at": attempt_started.isoformat()}
    values: dict[str, Any] = {
        "error_log": [*_readable_log(row["error_log"]), entry][-ERROR_LOG_LIMIT:],
        "lease_until": None,
        "worker_id": None,
        "attempts": attempts,
        "started_at": attempt_started,
    }
    if decision.error is not None:
        values["error"] = decision.error
    values["status"] = _to(decision.event)
    if decision.retry_at is not None:
        values["run_after"] = decision.retry_at
    else:
        values["finished_at"] = now
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
    if decision.retry_at is not None:
        ctx.dialect.notify_new_tasks(conn)
        return Status.PENDING
    after_finish(conn, ctx, task_id, row, Status.FAILED, now)
    return Status.FAILED


def _readable_log(value: Any) -> list[Any]:
    """A row's error log; one that cannot be read back (an Undecodable placeholder) starts again rather
    than block the outcome being recorded."""
    return value if isinstance(value, list) else []


def fail_unreadable(conn: Connection, ctx: StoreContext, worker_id: str, claimed: Sequence[Task], now: datetime) -> int:
    """Claimed tasks whose arguments cannot be read back (`Task.unreadable`) fail for good: every attempt
    would read the same row. Returns how many were still this worker's."""
    failed = 0
    for task in claimed:
        failure = Failure(FailureKind.PERMANENT, _clip(f"task {task.id} ({task.name}) cannot run: {task.unreadable}"))
        failed += fail_running(conn, ctx, task.id, failure, now, worker_id, task.attempts, now) is not None
    return failed


def pass_on(
    conn: Connection,
    ctx: StoreContext,
    task_id: int,
    worker_id: str | None,
    attempt: int | None,
    why: str,
    now: datetime,
) -> Status | None:
    """A worker that does not know the task's name hands it back: pending again later for a worker that
    knows it, no attempt counted (it never ran), or failed once `decide_pass_on` says too many workers in
    a row did not know it. None when the task is no longer this worker's."""
    owner, params = _owner_params(task_id, worker_id, attempt)
    row = conn.execute(_failing_row_statement(owner), params).mappings().first()
    if row is None:
        return None
    # The row holds the attempt counted only if its start was recorded (it never is for an unknown name
    # by a worker, but a caller may have): uncount it, as a release does.
    attempts = row["attempts"] - (1 if row["started_at"] is not None and row["attempts"] > 0 else 0)
    error_log = _readable_log(row["error_log"])
    decision = decide_pass_on(row["name"], error_log, attempt=attempts + 1, why=_safe_text(why), now=now)
    entry = {**decision.log_entry, "worker_id": row["worker_id"]}  # as fail_running's entries: who it was
    values: dict[str, Any] = {
        "status": _to(decision.event),
        "error_log": [*error_log, entry][-ERROR_LOG_LIMIT:],
        "lease_until": None,
        "worker_id": None,
    }
    if decision.retry_at is not None:
        values.update(attempts=attempts, started_at=None, run_after=decision.retry_at)
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
        ctx.dialect.notify_new_tasks(conn)  # idle workers learn when it is due again
        return Status.PENDING
    # Failing for good ends the task's one attempt to find a worker: counted, as any failure's.
    values.update(attempts=attempts + 1, error=_clip(decision.error or ""), finished_at=now)
    values["started_at"] = row["started_at"] or now
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
    after_finish(conn, ctx, task_id, row, Status.FAILED, now)
    return Status.FAILED


def mark_cancelled(
    conn: Connection,
    ctx: StoreContext,
    task_id: int,
    worker_id: str | None,
    attempt: int | None,
    reason: str,
    started_at: datetime | None,
    now: datetime,
) -> bool:
    """A running task stopped because cancellation was requested."""
    owner, params = _owner_params(task_id, worker_id, attempt)
    params.update(now=now, reason=_safe_text(reason), started=started_at or now)
    row = conn.execute(_cancelled_statement(owner), params).first()
    if row is None:
        return False
    after_finish(conn, ctx, task_id, row, Status.CANCELLED, now)
    return True


def release(conn: Connection, ctx: StoreContext, task_ids: Sequence[int], worker_id: str | None) -> int:
    """Running tasks back to pending without counting the attempt."""
    if worker_id is None:
        count = conn.execute(_RELEASE, {"task_ids": list(task_ids)}).rowcount
    else:
        count = conn.execute(_RELEASE_OWNED, {"task_ids": list(task_ids), "owner_worker_id": worker_id}).rowcount
    if count:
        ctx.dialect.notify_new_tasks(conn)
    return int(count)


def mark_started_many(conn: Connection, worker_id: str, started: Sequence[tuple[int, datetime]]) -> int:
    """Count the attempts of tasks still running (ones that run long); returns how many were still this
    worker's."""
    rows = [
        {"owner_task_id": task_id, "owner_worker_id": worker_id, "started": started_at}
        for task_id, started_at in started
    ]
    return int(conn.execute(_MARK_STARTED, rows).rowcount)


# -- what a dead worker held ------------------------------------------------------------------------------


def settle_dead_worker(
    conn: Connection,
    ctx: StoreContext,
    worker_id: str,
    finished: Sequence[Completion],
    executing: Sequence[Interrupted],
    now: datetime,
) -> SettledCounts:
    """Everything a dead worker held: successes it had not recorded are recorded, the tasks it was
    executing get their outcome (`Interrupted.how`), and every other task it had claimed goes back to
    pending without counting an attempt (it never started)."""
    recorded = record_completions(conn, ctx, worker_id, finished) if finished else []
    interrupted = 0
    for task in executing:
        interrupted += _interrupt(conn, ctx, worker_id, task, now)
    released = recover_worker(conn, ctx, worker_id, now, f"worker lost: {worker_id} died")
    return SettledCounts(len(recorded), interrupted, released)


def _interrupt(conn: Connection, ctx: StoreContext, worker_id: str, task: Interrupted, now: datetime) -> int:
    started = task.started_at or now
    if task.how is Interruption.RELEASE:
        return release(conn, ctx, [task.task_id], worker_id)
    if task.how is Interruption.CANCEL:
        return int(mark_cancelled(conn, ctx, task.task_id, worker_id, task.attempt, task.message, started, now))
    failure = Failure(FailureKind.ERROR, _clip(task.message))
    status = fail_running(conn, ctx, task.task_id, failure, now, worker_id, task.attempt, started)
    return int(status is not None)


def recover_worker(conn: Connection, ctx: StoreContext, worker_id: str, now: datetime, message: str) -> int:
    """The worker's running rows whose start was never recorded go back to pending (no attempt);
    one whose start was recorded ran and was cut short: a failed attempt, retried per policy."""
    rows = conn.execute(_RUNNING_OF_WORKER, {"owner_worker_id": worker_id}).all()
    never_started = [row.id for row in rows if row.started_at is None]
    released = release(conn, ctx, never_started, worker_id) if never_started else 0
    for row in rows:
        if row.started_at is not None:
            fail_running(conn, ctx, row.id, Failure(FailureKind.ERROR, message), now, worker_id, None)
    return released + len(rows) - len(never_started)


def running_worker_ids(conn: Connection) -> list[str]:
    """Ids of the workers holding running tasks (for same-host recovery of dead ones)."""
    return list(conn.execute(_RUNNING_WORKER_IDS).scalars().all())


# -- leases and progress ----------------------------------------------------------------------------------


def renew_leases(conn: Connection, worker_id: str, task_ids: Sequence[int], until: datetime) -> list[int]:
    """Extend the leases of `task_ids` still held by `worker_id` to `until`; returns those whose
    cancellation was requested, so one round trip serves both heartbeat and cancellation check."""
    params = {"task_ids": list(task_ids), "owner_worker_id": worker_id, "lease_until": until}
    return [row.id for row in conn.execute(_RENEW_LEASES, params).all() if row.cancel_requested]


def recover_expired(conn: Connection, ctx: StoreContext, now: datetime) -> int:
    """Tasks whose worker stopped renewing their lease (its whole host is gone, or stalled): those it
    never started go back to pending without an attempt; those it had started are retried with
    backoff, or failed when out of retries. A live worker renews well before expiry."""
    expired = conn.execute(_EXPIRED_LEASES, {"now": now}).all()
    never_started = [task.id for task in expired if task.started_at is None]
    if never_started:
        release(conn, ctx, never_started, None)
    for task in expired:
        if task.started_at is None:
            continue
        message = (
            f"worker lost: {task.worker_id} stopped renewing its lease (expired {as_utc(task.lease_until).isoformat()})"
        )
        fail_running(conn, ctx, task.id, Failure(FailureKind.ERROR, message), now, None, None)
    return len(expired)


def set_progress_many(conn: Connection, reports: Sequence[tuple[int, float, str | None]]) -> int:
    """Store the latest progress of running tasks; returns how many were running."""
    rows = [
        {
            "task_id": task_id,
            "progress": max(0.0, min(100.0, float(percent))),
            "message": None if message is None else _safe_text(str(message)),
        }
        for task_id, percent, message in reports
    ]
    return int(conn.execute(_SET_PROGRESS, rows).rowcount)


def cancel_requested_among(conn: Connection, task_ids: Sequence[int]) -> list[int]:
    """Which of these tasks someone asked to cancel: one read for all the tasks a worker runs."""
    return list(conn.execute(_CANCEL_REQUESTED_AMONG, {"ids": list(task_ids)}).scalars().all())
