"""Every SQL statement taskq runs. Each public method is one named operation returning domain objects.

SQLAlchemy Core, not the ORM: the queue's hot paths (enqueue, claim, complete) are single statements
whose exact SQL matters (ON CONFLICT on a partial index, UPDATE ... RETURNING over a SKIP LOCKED
subquery), and Core compiles each once and caches it, without a unit of work to flush per task.
"""

from __future__ import annotations

import json
import random
import time
import traceback as traceback_module
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from taskq.clock import as_utc, utc_now
from taskq.dialect import Dialect, dialect_for
from taskq.model import (
    ACTIVE_STATUSES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    TERMINAL_STATUSES,
    Enqueued,
    InvalidTaskArguments,
    InvalidTransition,
    Status,
    Task,
    TaskNotFound,
    TaskRequest,
    backoff_delay,
)
from taskq.schema import tasks

T = TypeVar("T")

LOCK_RETRY_SECONDS = 60.0  # a write keeps retrying a locked database this long before giving up
DEFAULT_LEASE_SECONDS = 30.0
ERROR_LOG_LIMIT = 20  # earlier attempts' errors kept per task
ERROR_TEXT_LIMIT = 20_000  # characters of one traceback kept

PENDING = Status.PENDING.value
RUNNING = Status.RUNNING.value
WAITING = Status.WAITING_FOR_CHILDREN.value
COMPLETED = Status.COMPLETED.value
FAILED = Status.FAILED.value
CANCELLED = Status.CANCELLED.value
_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)


@dataclass(frozen=True)
class TaskDefaults:
    """Per-task-name defaults, supplied by the registry so the store never imports it."""

    priority: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None
    continuation: str | None = None


DefaultsLookup = Callable[[str], TaskDefaults | None]


def _no_defaults(_name: str) -> TaskDefaults | None:
    return None


def _status_is(*statuses: str) -> ColumnElement[bool]:
    """Status as SQL literals, not bound parameters: the planners (SQLite always, PostgreSQL for generic
    plans) can use a partial index only when they see the value its WHERE clause names."""
    if len(statuses) == 1:
        return tasks.c.status == literal_column(f"'{statuses[0]}'")
    return tasks.c.status.in_([literal_column(f"'{status}'") for status in statuses])


def _check_json(what: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidTaskArguments(f"{what} must be JSON-serialisable: {error}") from None


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_LIMIT else "...(truncated)...\n" + text[-ERROR_TEXT_LIMIT:]


class Store:
    def __init__(self, engine: Engine, *, defaults_for: DefaultsLookup = _no_defaults) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect_for(engine)
        self.defaults_for = defaults_for
        self._insert_plain = insert(tasks).returning(tasks.c.id)
        self._insert_dedup = self.dialect.insert_unless_active(tasks)

    # -- transactions -------------------------------------------------------------------------------

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, retrying it whole while the database is locked/unreachable."""
        delay = 0.002
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                with self.engine.connect() as connection:
                    self.dialect.begin_write(connection)
                    result = work(connection)
                    connection.commit()
                    return result
            except DBAPIError as error:
                if not self.dialect.is_transient(error) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.25)

    def read(self, work: Callable[[Connection], T]) -> T:
        delay = 0.002
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                with self.engine.connect() as connection:
                    return work(connection)
            except DBAPIError as error:
                if not self.dialect.is_transient(error) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.25)

    # -- enqueue -------------------------------------------------------------------------------------

    def _row_values(self, request: TaskRequest, now: datetime) -> dict[str, Any]:
        if not request.name or not isinstance(request.name, str):
            raise InvalidTaskArguments("task name must be a non-empty string")
        if isinstance(request.args, (str, bytes)) or not isinstance(request.args, Sequence):
            raise InvalidTaskArguments(f"args must be a list, got {type(request.args).__name__}")
        if request.kwargs is not None and not isinstance(request.kwargs, Mapping):
            raise InvalidTaskArguments(f"kwargs must be an object, got {type(request.kwargs).__name__}")
        args, kwargs = list(request.args), dict(request.kwargs or {})
        _check_json("args", args)
        _check_json("kwargs", kwargs)
        defaults = self.defaults_for(request.name) or TaskDefaults()
        run_after = request.run_after
        if run_after is None:
            when = now
        elif isinstance(run_after, datetime):
            when = as_utc(run_after)
        elif isinstance(run_after, (int, float)) and not isinstance(run_after, bool):
            when = now + timedelta(seconds=float(run_after))
        else:
            raise InvalidTaskArguments(f"run_after must be a datetime or seconds, got {run_after!r}")
        max_retries = defaults.max_retries if request.max_retries is None else request.max_retries
        if max_retries < 0:
            raise InvalidTaskArguments("max_retries must not be negative")
        timeout = defaults.timeout if request.timeout is None else request.timeout
        if timeout is not None and timeout <= 0:
            raise InvalidTaskArguments("timeout must be positive")
        return {
            "name": request.name,
            "queue": request.queue or defaults.queue,
            "args": args,
            "kwargs": kwargs,
            "status": PENDING,
            "priority": defaults.priority if request.priority is None else int(request.priority),
            "run_after": when,
            "attempts": 0,
            "max_retries": max_retries,
            "dedup_key": request.dedup_key,
            "parent_id": request.parent_id,
            "progress": 0.0,
            "cancel_requested": False,
            "timeout": timeout,
            "continuation": request.continuation or defaults.continuation,
            "children_total": 0,
            "children_completed": 0,
            "children_failed": 0,
            "children_cancelled": 0,
            "error_log": [],
            "created_at": now,
        }

    def _insert_one(self, connection: Connection, values: dict[str, Any]) -> Enqueued:
        if values["dedup_key"] is None:
            return Enqueued(connection.execute(self._insert_plain, values).scalar_one())
        new_id = connection.execute(self._insert_dedup, values).scalar_one_or_none()
        if new_id is not None:
            return Enqueued(new_id)
        existing = connection.execute(
            select(tasks.c.id).where(tasks.c.dedup_key == values["dedup_key"], _status_is(*_ACTIVE))
        ).scalar_one_or_none()
        if existing is None:
            # The holder finished between our INSERT and SELECT (possible only on PostgreSQL, where
            # the conflict check does not lock); our row was not inserted, so insert it now.
            return self._insert_one(connection, values)
        return Enqueued(existing, deduplicated=True)

    def _insert_many(self, connection: Connection, rows: list[dict[str, Any]]) -> list[Enqueued]:
        plain = [row for row in rows if row["dedup_key"] is None]
        plain_ids: list[int] = []
        if plain:
            plain_ids = list(
                connection.execute(insert(tasks).returning(tasks.c.id, sort_by_parameter_order=True), plain).scalars()
            )
        ids = iter(plain_ids)
        out = [Enqueued(next(ids)) if row["dedup_key"] is None else self._insert_one(connection, row) for row in rows]
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
        run_after: datetime | float | int | None = None,
        dedup_key: str | None = None,
        max_retries: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        parent_id: int | None = None,
        continuation: str | None = None,
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
        )
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
        rows = [self._row_values(r if isinstance(r, TaskRequest) else TaskRequest(**r), now) for r in requests]
        if connection is not None:
            return self._insert_many(connection, rows)
        return self.write(lambda conn: self._insert_many(conn, rows))

    def begin_write(self, connection: Connection) -> None:
        """Start a write transaction on the caller's connection the way this database needs it."""
        self.dialect.begin_write(connection)

    # -- claim and outcomes ----------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None = None,
        *,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> Task | None:
        claimed = self.claim_batch(worker_id, queues, limit=1, now=now, lease_seconds=lease_seconds)
        return claimed[0] if claimed else None

    def claim_batch(
        self,
        worker_id: str,
        queues: Sequence[str] | None = None,
        *,
        limit: int = 1,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> list[Task]:
        """Atomically move up to `limit` ready tasks to running for `worker_id`: highest priority first,
        then the one ready longest (run_after), then oldest id. No task is ever handed to two claimers."""
        now = now or utc_now()
        ready = and_(_status_is(PENDING), tasks.c.run_after <= bindparam("now"))
        if queues:
            ready = and_(ready, tasks.c.queue.in_(bindparam("queues", expanding=True)))
        candidates = (
            select(tasks.c.id)
            .where(ready)
            .order_by(tasks.c.priority.desc(), tasks.c.run_after, tasks.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .cte("candidates")
        )
        # A CTE, not `id IN (subquery)`: PostgreSQL may evaluate a LIMIT ... SKIP LOCKED subquery more
        # than once inside an UPDATE and so claim more rows than asked; a CTE runs exactly once.
        statement = (
            update(tasks)
            .where(tasks.c.id == candidates.c.id, _status_is(PENDING))
            .values(
                status=RUNNING,
                started_at=bindparam("now"),
                attempts=tasks.c.attempts + 1,
                worker_id=bindparam("worker_id"),
                lease_until=bindparam("lease_until"),
                cancel_requested=False,
            )
            .returning(*tasks.c)
        )
        params: dict[str, Any] = {
            "now": now,
            "limit": limit,
            "worker_id": worker_id,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        if queues:
            params["queues"] = list(queues)
        rows = self.write(lambda conn: conn.execute(statement, params).mappings().all())
        claimed = [Task.from_row(row) for row in rows]
        claimed.sort(key=lambda task: (-task.priority, task.run_after, task.id))
        return claimed

    def _owned(self, task_id: int, worker_id: str | None, attempt: int | None) -> Any:
        condition = and_(tasks.c.id == task_id, _status_is(RUNNING))
        if worker_id is not None:
            condition = and_(condition, tasks.c.worker_id == worker_id)
        if attempt is not None:
            condition = and_(condition, tasks.c.attempts == attempt)
        return condition

    def complete(
        self,
        task_id: int,
        result: Any = None,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Record success. False when the task is no longer this worker's (its lease was recovered)."""
        _check_json("result", result)
        now = now or utc_now()

        def work(conn: Connection) -> bool:
            row = conn.execute(
                update(tasks)
                .where(self._owned(task_id, worker_id, attempt))
                .values(
                    status=COMPLETED,
                    result=result,
                    progress=100.0,
                    finished_at=now,
                    lease_until=None,
                    cancel_requested=False,
                )
                .returning(tasks.c.parent_id, tasks.c.continuation, tasks.c.queue, tasks.c.priority)
            ).first()
            if row is None:
                return False
            self._after_finish(conn, task_id, row, COMPLETED, now)
            return True

        return self.write(work)

    def fail(
        self,
        task_id: int,
        error: str | BaseException,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        retry: bool = True,
        now: datetime | None = None,
    ) -> Status | None:
        """Record a failed attempt: back to pending after 2**attempts s while attempts <= max_retries,
        else failed. Returns the new status, or None when the task is no longer this worker's."""
        text = error if isinstance(error, str) else "".join(traceback_module.format_exception(error))
        now = now or utc_now()
        return self.write(lambda conn: self._fail_running(conn, task_id, _clip(text), now, worker_id, attempt, retry))

    def _fail_running(
        self,
        conn: Connection,
        task_id: int,
        text: str,
        now: datetime,
        worker_id: str | None,
        attempt: int | None,
        retry: bool,
    ) -> Status | None:
        row = (
            conn.execute(
                select(
                    tasks.c.attempts,
                    tasks.c.max_retries,
                    tasks.c.error_log,
                    tasks.c.parent_id,
                    tasks.c.continuation,
                    tasks.c.queue,
                    tasks.c.priority,
                    tasks.c.cancel_requested,
                )
                .where(self._owned(task_id, worker_id, attempt))
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        log = [*(row["error_log"] or []), {"attempt": row["attempts"], "at": now.isoformat(), "error": text}]
        log = log[-ERROR_LOG_LIMIT:]
        again = retry and row["attempts"] <= row["max_retries"] and not row["cancel_requested"]
        values: dict[str, Any] = {"error": text, "error_log": log, "lease_until": None, "worker_id": None}
        if again:
            values.update(status=PENDING, run_after=now + timedelta(seconds=backoff_delay(row["attempts"])))
        else:
            values.update(status=FAILED, finished_at=now)
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
        if not again:
            self._after_finish(conn, task_id, row, FAILED, now)
        return Status.PENDING if again else Status.FAILED

    def mark_cancelled(
        self,
        task_id: int,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        reason: str = "cancelled while running",
        now: datetime | None = None,
    ) -> bool:
        """A running task stopped because cancellation was requested."""
        now = now or utc_now()

        def work(conn: Connection) -> bool:
            row = conn.execute(
                update(tasks)
                .where(self._owned(task_id, worker_id, attempt))
                .values(status=CANCELLED, finished_at=now, lease_until=None, error=reason)
                .returning(tasks.c.parent_id, tasks.c.continuation, tasks.c.queue, tasks.c.priority)
            ).first()
            if row is None:
                return False
            self._after_finish(conn, task_id, row, CANCELLED, now)
            return True

        return self.write(work)

    def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> int:
        """Give running tasks back to pending without counting the attempt (graceful shutdown)."""
        if not task_ids:
            return 0
        condition = and_(tasks.c.id.in_(list(task_ids)), _status_is(RUNNING))
        if worker_id is not None:
            condition = and_(condition, tasks.c.worker_id == worker_id)
        statement = (
            update(tasks)
            .where(condition)
            .values(
                status=PENDING,
                attempts=case((tasks.c.attempts > 0, tasks.c.attempts - 1), else_=0),
                worker_id=None,
                lease_until=None,
                started_at=None,
            )
        )
        count = self.write(lambda conn: conn.execute(statement).rowcount)
        if count:
            self.write(self.dialect.notify_new_tasks)
        return count

    # -- workflow bookkeeping (a finished task completes its parent and enqueues continuations) ------

    def _after_finish(
        self, conn: Connection, task_id: int, row: Mapping[str, Any] | Any, status: str, now: datetime
    ) -> None:
        values = row._mapping if hasattr(row, "_mapping") else row
        if status == COMPLETED and values["continuation"]:
            self._enqueue_continuation(conn, task_id, values, now)
        if values["parent_id"] is not None:
            self._child_finished(conn, values["parent_id"], status, now)

    def _enqueue_continuation(self, conn: Connection, task_id: int, values: Mapping[str, Any], now: datetime) -> None:
        request = TaskRequest(values["continuation"], [task_id], None, None, None, None, None, None, None, None, None)
        row = self._row_values(request, now)
        conn.execute(self._insert_plain, row)
        self.dialect.notify_new_tasks(conn)

    def _child_finished(self, conn: Connection, parent_id: int, status: str, now: datetime) -> None:
        counter = {
            COMPLETED: tasks.c.children_completed,
            FAILED: tasks.c.children_failed,
            CANCELLED: tasks.c.children_cancelled,
        }[status]
        finished = tasks.c.children_completed + tasks.c.children_failed + tasks.c.children_cancelled + 1
        # The increment is one UPDATE ... RETURNING: the row lock (PostgreSQL) or the write lock
        # (SQLite) makes exactly one finishing child see finished == total.
        parent = (
            conn.execute(
                update(tasks)
                .where(tasks.c.id == parent_id)
                .values(
                    {
                        counter: counter + 1,
                        tasks.c.progress: case(
                            (tasks.c.children_total > 0, 100.0 * finished / tasks.c.children_total), else_=0.0
                        ),
                    }
                )
                .returning(
                    tasks.c.status,
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
            .mappings()
            .first()
        )
        if parent is None or parent["status"] != WAITING:
            return
        done = parent["children_completed"] + parent["children_failed"] + parent["children_cancelled"]
        if done < parent["children_total"]:
            return
        self._finish_parent(conn, parent_id, parent, now)

    def _finish_parent(self, conn: Connection, parent_id: int, parent: Mapping[str, Any], now: datetime) -> None:
        if parent["children_failed"]:
            failed_ids = (
                conn.execute(
                    select(tasks.c.id)
                    .where(tasks.c.parent_id == parent_id, _status_is(FAILED))
                    .order_by(tasks.c.id)
                    .limit(50)
                )
                .scalars()
                .all()
            )
            outcome = FAILED
            error = (
                f"{parent['children_failed']} of {parent['children_total']} children failed"
                f" (first ids: {', '.join(map(str, failed_ids))})"
            )
        elif parent["cancel_requested"] or (
            parent["children_total"] and parent["children_cancelled"] == parent["children_total"]
        ):
            outcome, error = (
                CANCELLED,
                "cancelled" if parent["cancel_requested"] else "all children were cancelled",
            )
        else:
            outcome, error = COMPLETED, None
        conn.execute(
            update(tasks)
            .where(tasks.c.id == parent_id)
            .values(status=outcome, finished_at=now, progress=100.0, error=error, lease_until=None)
        )
        self._after_finish(conn, parent_id, parent, outcome, now)

    def wait_for_children(
        self,
        task_id: int,
        children: Sequence[TaskRequest],
        *,
        continuation: str | None = None,
        worker_id: str | None = None,
        attempt: int | None = None,
        now: datetime | None = None,
    ) -> list[Enqueued] | None:
        """In one transaction: insert `children` under `task_id` and move it to waiting_for_children.
        With no children the task completes at once. None when the task is no longer this worker's."""
        now = now or utc_now()
        rows = [self._row_values(child, now) for child in children]
        for row in rows:
            row["parent_id"] = task_id

        def work(conn: Connection) -> list[Enqueued] | None:
            values: dict[str, Any] = {
                "status": WAITING,
                "children_total": len(rows),
                "children_completed": 0,
                "children_failed": 0,
                "children_cancelled": 0,
                "lease_until": None,
            }
            if continuation is not None:
                values["continuation"] = continuation
            parent = conn.execute(
                update(tasks)
                .where(self._owned(task_id, worker_id, attempt))
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
                )
            ).first()
            if parent is None:
                return None
            enqueued = self._insert_many(conn, rows)
            if not rows:
                self._finish_parent(conn, task_id, parent._mapping, now)
            return enqueued

        return self.write(work)

    # -- leases and progress -------------------------------------------------------------------------

    def renew_leases(
        self, worker_id: str, task_ids: Sequence[int], *, now: datetime | None = None, lease_seconds: float
    ) -> list[int]:
        """Extend the leases of `task_ids` still held by `worker_id`; returns those whose cancellation
        was requested, so one round trip serves both heartbeat and cancellation check."""
        if not task_ids:
            return []
        now = now or utc_now()
        statement = (
            update(tasks)
            .where(tasks.c.id.in_(list(task_ids)), _status_is(RUNNING), tasks.c.worker_id == worker_id)
            .values(lease_until=now + timedelta(seconds=lease_seconds))
            .returning(tasks.c.id, tasks.c.cancel_requested)
        )
        rows = self.write(lambda conn: conn.execute(statement).all())
        return [row.id for row in rows if row.cancel_requested]

    def recover_expired(self, *, now: datetime | None = None) -> int:
        """Tasks whose worker stopped renewing their lease: retried with backoff, or failed when out of
        retries. A live worker renews well before expiry, so its tasks are never touched."""
        now = now or utc_now()

        def work(conn: Connection) -> int:
            expired = conn.execute(
                select(tasks.c.id, tasks.c.worker_id, tasks.c.lease_until)
                .where(_status_is(RUNNING), tasks.c.lease_until < now)
                .with_for_update(skip_locked=True)
                .limit(500)
            ).all()
            for task in expired:
                message = (
                    f"worker lost: {task.worker_id} stopped renewing its lease"
                    f" (expired {as_utc(task.lease_until).isoformat()})"
                )
                self._fail_running(conn, task.id, message, now, None, None, True)
            return len(expired)

        return self.write(work)

    def set_progress(self, task_id: int, percent: float, message: str | None = None) -> bool:
        percent = max(0.0, min(100.0, float(percent)))
        statement = (
            update(tasks)
            .where(tasks.c.id == task_id, _status_is(RUNNING))
            .values(progress=percent, progress_message=message)
        )
        return bool(self.write(lambda conn: conn.execute(statement).rowcount))

    def is_cancel_requested(self, task_id: int) -> bool:
        return bool(
            self.read(
                lambda conn: conn.execute(
                    select(tasks.c.cancel_requested).where(tasks.c.id == task_id)
                ).scalar_one_or_none()
            )
        )

    # -- operator actions ----------------------------------------------------------------------------

    def cancel(self, task_id: int, *, now: datetime | None = None) -> Status:
        """pending -> cancelled at once; running -> cancel_requested (the worker stops it);
        waiting_for_children -> its pending children are cancelled, running ones asked to stop.
        Returns the status after the call; a finished task raises InvalidTransition."""
        now = now or utc_now()

        def work(conn: Connection) -> Status:
            row = conn.execute(
                select(tasks.c.status, tasks.c.parent_id, tasks.c.continuation, tasks.c.queue, tasks.c.priority)
                .where(tasks.c.id == task_id)
                .with_for_update()
            ).first()
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            status = row.status
            if status == PENDING:
                conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id)
                    .values(status=CANCELLED, finished_at=now, cancel_requested=True)
                )
                self._after_finish(conn, task_id, row, CANCELLED, now)
                return Status.CANCELLED
            if status in (RUNNING, WAITING):
                conn.execute(update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True))
                if status == WAITING:
                    self._cancel_children(conn, task_id, now)
                return Status(conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar_one())
            raise InvalidTransition(f"task {task_id} is already {status}")

        return self.write(work)

    def _cancel_children(self, conn: Connection, parent_id: int, now: datetime) -> None:
        stopping = conn.execute(
            update(tasks)
            .where(tasks.c.parent_id == parent_id, _status_is(RUNNING, WAITING))
            .values(cancel_requested=True)
            .returning(tasks.c.id, tasks.c.status)
        ).all()
        for child in stopping:
            if child.status == WAITING:
                self._cancel_children(conn, child.id, now)
        pending = (
            conn.execute(
                update(tasks)
                .where(tasks.c.parent_id == parent_id, _status_is(PENDING))
                .values(status=CANCELLED, finished_at=now, cancel_requested=True)
                .returning(tasks.c.id)
            )
            .scalars()
            .all()
        )
        if not pending:
            return
        parent = (
            conn.execute(
                update(tasks)
                .where(tasks.c.id == parent_id)
                .values(children_cancelled=tasks.c.children_cancelled + len(pending))
                .returning(*tasks.c)
            )
            .mappings()
            .one()
        )
        done = parent["children_completed"] + parent["children_failed"] + parent["children_cancelled"]
        if parent["status"] == WAITING and done >= parent["children_total"]:
            self._finish_parent(conn, parent_id, parent, now)

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
        """Delete finished top-level tasks that finished before now - older_than; their children go with them."""
        cutoff = (now or utc_now()) - older_than
        statement = delete(tasks).where(
            _status_is(*_TERMINAL), tasks.c.finished_at < cutoff, tasks.c.parent_id.is_(None)
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
            query = query.where(tasks.c.status == Status(status).value)
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
        query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
        rows = self.read(lambda conn: conn.execute(query).all())
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

    def dispose(self) -> None:
        self.engine.dispose()
