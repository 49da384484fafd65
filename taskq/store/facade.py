"""The Store: one method per named operation, each owning its transaction. A method opens one write or
read transaction (retried whole on a transient error) and calls the topic modules' functions over its
connection; the SQL and the decisions live in those modules, the transaction boundaries here.

Two kinds of method run more than one transaction, on purpose: the bulk actions (BULK_BATCH rows per
transaction, so workers keep going in between) and the rollup/recount/queue sampling (read outside the
write lock, then a short write that checks nothing moved meanwhile).
"""

from __future__ import annotations

import asyncio
import builtins  # `list[...]` below `def list` would name the method
import functools
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from taskq import tracing
from taskq.clock import utc_now
from taskq.dialect import Dialect, dialect_for
from taskq.events import log_event
from taskq.filters import check_filter
from taskq.lifecycle import Event, Failure, FailureKind, RetryPolicy, sources
from taskq.model import (
    ACTIVE_STATUSES,
    BulkResult,
    ClaimLimits,
    ClippedValue,
    Completion,
    Enqueued,
    Interrupted,
    InvalidTaskArguments,
    InvalidTransition,
    SettledCounts,
    Status,
    Task,
    TaskFilter,
    TaskNotFound,
    TaskPage,
    TaskRequest,
    TaskSummary,
    WorkerInfo,
    check_json,
)
from taskq.requests import MAX_TASK_ID, CheckedRequest, check_task_id, validate_request
from taskq.store import claim, enqueue, metrics, outcomes, queries, rollup, schedules, transitions, workers, workflow
from taskq.store.base import DEFAULT_LEASE_SECONDS, NO_TASKS, StoreContext, TaskCatalog
from taskq.store.hot import SqliteHotPath
from taskq.store.metrics import ChartWindow, QueueDepth, RollupState, Tally
from taskq.store.queries import Waiting
from taskq.store.rollup import ROLLUP_CHUNK_ROWS
from taskq.store.schedules import Decide, ScheduleChange, ScheduledTask, ScheduleOverview, ScheduleState

T = TypeVar("T")

log = logging.getLogger("taskq.store")

LOCK_RETRY_SECONDS = 60.0  # a transaction keeps retrying a locked or unreachable database this long
RETRY_WARNING_SECONDS = 1.0  # retrying longer than this is an outage worth a log line, not lock contention
BULK_BATCH = 500  # rows per bulk-action transaction: a few ms of write lock on SQLite, a few row locks on PostgreSQL


def _is_unique_violation(error: DBAPIError) -> bool:
    return "unique" in str(error.orig).lower()


def _may_exist(task_id: int) -> bool:
    """False for an id no row can have: past BIGINT, the driver would fail on it rather than find nothing."""
    return -MAX_TASK_ID <= task_id <= MAX_TASK_ID


def _check_cursors(before_id: int | None, after_id: int | None) -> None:
    for name, cursor in (("before_id", before_id), ("after_id", after_id)):
        if cursor is not None and not _may_exist(cursor):
            raise InvalidTaskArguments(f"{name} must be at most {MAX_TASK_ID}, got {cursor}")


def _check_bulk(ids: Sequence[int] | None, where: TaskFilter | None) -> None:
    for task_id in ids or ():
        check_task_id("ids", task_id)
    if where is not None:
        check_filter(where)


class Store:
    """Every named operation on the tasks table, grouped as the topic modules are."""

    def __init__(self, engine: Engine, *, catalog: TaskCatalog = NO_TASKS) -> None:
        """`catalog`: the tasks this process knows (taskq.registry.CATALOG, as `taskq.open_store` passes):
        enqueue fills their @task defaults and checks each call against their signature."""
        self.engine = engine
        self.dialect: Dialect = dialect_for(engine)
        self._hot = SqliteHotPath(engine) if self.dialect.name == "sqlite" else None
        self._ctx = StoreContext.open(self.dialect, catalog, self._hot.plain_insert if self._hot else None, self)
        self._claims = claim.ClaimPlans(self._hot)

    @property
    def catalog(self) -> TaskCatalog:
        """The tasks this store was told of (the worker checks spawned children against it)."""
        return self._ctx.catalog

    # -- transactions -------------------------------------------------------------------------------

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, retrying it whole while the database is locked/unreachable."""

        def transaction() -> T:
            with self.engine.connect() as connection:
                self.dialect.begin_write(connection)
                result = work(connection)
                connection.commit()
                return result

        return self._retrying(transaction)

    def read(self, work: Callable[[Connection], T]) -> T:
        def query() -> T:
            with self.engine.connect() as connection:
                return work(connection)

        return self._retrying(query)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Jittered exponential backoff on transient errors (a locked SQLite file, a lost connection):
        SQLite's own busy handler is not fair between processes, random sleeps are; after a PostgreSQL
        restart pool_pre_ping replaces the dead pooled connections. A transaction whose COMMIT was cut off may
        have committed, and then runs twice: an outcome's second run finds the task no longer running
        (a no-op), a claim's first batch is left to lease recovery, and an enqueue without a dedup key
        inserts again (enqueue is at-least-once; a dedup key collapses the repeat)."""
        try:
            return attempt()  # nearly always: the loop below is for a locked or unreachable database
        except DBAPIError as error:
            if not self.dialect.is_transient(error):
                raise
        delay = 0.0002
        started = time.monotonic()
        warned = False
        while True:
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.25)
            try:
                result = attempt()
            except DBAPIError as error:
                waited = time.monotonic() - started
                if not self.dialect.is_transient(error) or waited > LOCK_RETRY_SECONDS:
                    raise
                if waited > RETRY_WARNING_SECONDS and not warned:
                    warned = True
                    log_event(
                        log,
                        logging.WARNING,
                        "database_retrying",
                        retry_for=LOCK_RETRY_SECONDS,
                        error=str(error.orig).strip().splitlines()[0],
                    )
            else:
                if warned:
                    log_event(log, logging.INFO, "database_recovered", seconds=round(time.monotonic() - started, 1))
                return result

    def begin_write(self, connection: Connection) -> None:
        """Start a write transaction on the caller's connection the way this database needs it."""
        self.dialect.begin_write(connection)

    def retry_policy_for(self, name: str) -> RetryPolicy:
        """The task's @task retry policy when this process imported it, else the default one."""
        return self._ctx.retry_policy_for(name)

    def dispose(self) -> None:
        if self._hot is not None:
            self._hot.close()
        self.engine.dispose()

    # -- enqueue (enqueue.py) -----------------------------------------------------------------------

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
        now = now or utc_now()
        request = validate_request(
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
            now=now,
            check_arguments=self._ctx.catalog.check_arguments,
        )
        row = enqueue.values_of(self._ctx, request, now)
        hot = self._hot
        if hot is not None and connection is None and dedup_key is None:
            return self._insert_hot(hot, row)
        return self._insert([row], connection)[0]

    def enqueue_many(
        self,
        requests: Iterable[TaskRequest | CheckedRequest | Mapping[str, Any]],
        *,
        connection: Connection | None = None,
        now: datetime | None = None,
    ) -> list[Enqueued]:
        """Create a batch of tasks in one transaction; all or none are written. A CheckedRequest (what
        `taskq.requests.parse_request` returns) is taken as checked; only its call is checked against the
        task's signature."""
        now = now or utc_now()
        arguments = self._ctx.catalog.check_arguments
        # Each request checked and made a row in one pass: the checked form is dropped at once, so a batch
        # of 10,000 keeps one object less per task alive (memory a large batch pays for in cache misses).
        rows = [
            enqueue.row_values(
                self._ctx, r if isinstance(r, (TaskRequest, CheckedRequest)) else TaskRequest(**r), now, arguments
            )
            for r in requests
        ]
        return self._insert(rows, connection)

    def _insert_hot(self, hot: SqliteHotPath, row: dict[str, Any]) -> Enqueued:
        """One task without dedup key on SQLite, outside a caller's transaction: one autocommit statement
        through the driver (hot.py)."""
        if tracing.on():
            return tracing.send([row], lambda: [Enqueued(self._retrying(lambda: hot.insert(row)), store=self)])[0]
        return Enqueued(self._retrying(lambda: hot.insert(row)), store=self)

    def _insert(self, rows: builtins.list[dict[str, Any]], connection: Connection | None) -> builtins.list[Enqueued]:
        hot = self._hot
        if hot is not None and connection is None and len(rows) == 1 and rows[0]["dedup_key"] is None:
            return [self._insert_hot(hot, rows[0])]

        def insert() -> builtins.list[Enqueued]:
            if connection is not None:
                return enqueue.insert_many(connection, self._ctx, rows)
            return self.write(lambda conn: enqueue.insert_many(conn, self._ctx, rows))

        return tracing.send(rows, insert) if tracing.on() and rows else insert()

    # The async twins, for Starlette/FastAPI/FastHTML handlers: the blocking call runs in the event loop's
    # default thread pool (`asyncio.to_thread`). Threads, not an async driver: the statements, the retries
    # on a locked SQLite file and the SQLite hot path are synchronous and measured; an INSERT takes well
    # under a millisecond, so the hand-off costs little, while a second, async implementation of every
    # operation would have to be kept in step with the first.

    async def enqueue_async(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Enqueued:
        """`enqueue` without blocking the event loop; takes the same options."""
        return await asyncio.to_thread(functools.partial(self.enqueue, name, args, kwargs, **options))

    async def enqueue_many_async(
        self, requests: Iterable[TaskRequest | CheckedRequest | Mapping[str, Any]], **options: Any
    ) -> list[Enqueued]:
        return await asyncio.to_thread(functools.partial(self.enqueue_many, list(requests), **options))

    # -- claim and outcomes (claim.py, outcomes.py) -------------------------------------------------

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None = None,
        *,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        limits: ClaimLimits | None = None,
    ) -> Task | None:
        claimed = self.claim_batch(worker_id, queues, limit=1, now=now, lease_seconds=lease_seconds, limits=limits)
        return claimed[0] if claimed else None

    def claim_batch(
        self,
        worker_id: str,
        queues: Sequence[str] | None = None,
        *,
        limit: int = 1,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        limits: ClaimLimits | None = None,
        avoid: Sequence[str] | None = None,
    ) -> list[Task]:
        """Atomically move up to `limit` ready tasks to running for `worker_id`: highest priority first,
        then the one ready longest (run_after), then oldest id. No task is ever handed to two claimers.
        With `limits`, no capped name or queue ends up with more running tasks than its cap (a task whose
        slots are all taken is passed over, so it never blocks the tasks behind it). `avoid`: task names
        the worker does not know, taken only once they have been ready for lifecycle.PASS_ON_GRACE_SECONDS
        (a worker that knows them goes first)."""
        now = now or utc_now()
        capped, _ = self._claims.capped_for(limits, queues)

        def claim_once() -> list[Task]:
            return self.write(
                lambda conn: claim.claim(conn, self._ctx, worker_id, queues, limit, now, lease_seconds, capped, avoid)
            )

        claimed = claim_once()
        readable = self._fail_unreadable(worker_id, claimed, now)
        while claimed and not readable:  # only unreadable rows came: look again
            claimed = claim_once()
            readable = self._fail_unreadable(worker_id, claimed, now)
        return readable

    def _fail_unreadable(self, worker_id: str, claimed: list[Task], now: datetime) -> list[Task]:
        """The claimed tasks a worker can run. Those whose arguments cannot be read back (nested past the
        depth limit, not JSON: see json_limits) are failed for good, in a transaction after the claim's:
        the claim of the others stands, and a claimer dying in between leaves the row to be released
        and claimed (and failed) again."""
        unreadable = [task for task in claimed if task.unreadable is not None]
        if not unreadable:
            return claimed
        self.write(lambda conn: outcomes.fail_unreadable(conn, self._ctx, worker_id, unreadable, now))
        for task in unreadable:
            log_event(log, logging.ERROR, "task_unreadable", task_id=task.id, name=task.name, error=task.unreadable)
        return [task for task in claimed if task.unreadable is None]

    def finish_and_claim(
        self,
        worker_id: str,
        completions: Sequence[Completion],
        queues: Sequence[str] | None = None,
        *,
        limit: int = 1,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        limits: ClaimLimits | None = None,
        avoid: Sequence[str] | None = None,
    ) -> tuple[list[int], list[Task]]:
        """Record a worker's finished runs and claim its next batch in one transaction: for quick tasks
        the commit, not the statements, is the cost. Returns the ids recorded (the others were no longer
        this worker's; a result the database refused is recorded as its task's failure) and the tasks
        claimed (none when limit is 0). `limits`, `avoid`: as for claim_batch."""
        for completion in completions:
            check_json("result", completion.result)
        now = now or utc_now()
        try:
            recorded, claimed = self._finish_and_claim_once(
                worker_id, completions, queues, limit, now, lease_seconds, limits, avoid
            )
        except DBAPIError as error:
            if not completions or self.dialect.is_transient(error):
                raise
            # The database refused the batch, maybe for one result in it (too big, refused by a constraint):
            # each is recorded alone, so only the refused ones fail, and the claim runs after them.
            recorded = self._record_each(worker_id, completions)
            _, claimed = self._finish_and_claim_once(worker_id, [], queues, limit, now, lease_seconds, limits, avoid)
        readable = self._fail_unreadable(worker_id, claimed, now)
        while claimed and not readable:  # only unreadable rows came: look again
            _, claimed = self._finish_and_claim_once(worker_id, [], queues, limit, now, lease_seconds, limits, avoid)
            readable = self._fail_unreadable(worker_id, claimed, now)
        return recorded, readable

    def finish_and_claim_for_many(
        self,
        rounds: Sequence[tuple[str, Sequence[Completion], int]],
        *,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        decode: bool = True,
    ) -> list[tuple[list[int], list[Any]]]:
        """A host writer's group commit on SQLite: each (worker_id, plain completions, limit) round of
        `finish_and_claim` over all queues, every one in a single transaction. Returns (recorded ids,
        claimed tasks) per round, in order; with decode=False the claimed rows stay driver tuples (see
        `claimed_columns`, `claim.tasks_from_raw`)."""
        if self._hot is None:
            raise NotImplementedError("finish_and_claim_for_many: SQLite only")
        for _, completions, _ in rounds:
            for completion in completions:
                check_json("result", completion.result)
        now = now or utc_now()
        return self._retrying(
            lambda: claim.finish_and_claim_for_many_hot(self._claims, rounds, now, lease_seconds, decode)
        )

    def claimed_columns(self) -> list[str]:
        """The column names of the raw rows `finish_and_claim_for_many(decode=False)` returns."""
        return claim.claimed_columns(self._claims)

    def _finish_and_claim_once(
        self,
        worker_id: str,
        completions: Sequence[Completion],
        queues: Sequence[str] | None,
        limit: int,
        now: datetime,
        lease_seconds: float,
        limits: ClaimLimits | None,
        avoid: Sequence[str] | None,
    ) -> tuple[list[int], list[Task]]:
        capped, hot_claim = self._claims.capped_for(limits, queues)

        # A worker avoiding names it does not know is rare (a badly deployed pool): it takes the Core path.
        if self._hot is not None and not queues and not avoid and not any(c.has_follow_up for c in completions):
            recorded, claimed = self._retrying(
                lambda: claim.finish_and_claim_hot(
                    self._claims, worker_id, completions, limit, now, lease_seconds, hot_claim
                )
            )
            if claimed or capped is None or limit <= 0:
                return recorded, claimed
            # A capped task was among the candidates (or none was ready): the counting claim runs through
            # Core, in a transaction of its own after the completions' (the driver path compiles each
            # statement once, and this one's IN lists change from round to round).
            return recorded, self.write(
                lambda conn: claim.claim_capped(conn, self._ctx, worker_id, queues, limit, now, lease_seconds, capped)
            )

        return self.write(
            lambda conn: claim.finish_and_claim(
                conn, self._ctx, worker_id, completions, queues, limit, now, lease_seconds, capped, avoid
            )
        )

    def _record_each(self, worker_id: str, completions: Sequence[Completion]) -> list[int]:
        """Record successes one transaction each; a result the database refuses fails its task for good
        (the same result would be refused again). Returns the ids whose outcome was recorded."""
        recorded = []
        for c in completions:
            owner: dict[str, Any] = {"worker_id": worker_id, "attempt": c.attempt, "started_at": c.started_at}
            try:
                if self.complete(c.task_id, c.result, continuation=c.continuation, now=c.finished_at, **owner):
                    recorded.append(c.task_id)
                continue
            except DBAPIError as error:
                reason = self.refusal(error)
                if reason is None:
                    raise
            log_event(log, logging.ERROR, "task_result_refused", task_id=c.task_id, error=reason)
            failure = Failure(FailureKind.PERMANENT, reason)
            if self.fail(c.task_id, failure, now=c.finished_at, **owner) is not None:
                recorded.append(c.task_id)
        return recorded

    def refusal(self, error: BaseException) -> str | None:
        """The failure of a task whose outcome the database refused to store (a statement error, not an
        outage: those are retried, then raised); None for any other error."""
        if not isinstance(error, DBAPIError) or self.dialect.is_transient(error):
            return None
        first_line = (str(error.orig).strip().splitlines() or ["(no message)"])[0]
        return f"the database refused the task's result: {type(error.orig).__name__}: {first_line}"

    def complete(
        self,
        task_id: int,
        result: Any = None,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        continuation: str | None = None,
        started_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Record success. False when the task is no longer this worker's (its lease was recovered).
        `continuation` is enqueued when the row names none (the worker knows the task's @task(then=...)
        even when the process that enqueued it did not)."""
        check_json("result", result)
        now = now or utc_now()
        return self.write(
            lambda conn: outcomes.complete(
                conn, self._ctx, task_id, result, worker_id, attempt, now, continuation, started_at
            )
        )

    def fail(
        self,
        task_id: int,
        error: str | BaseException | Failure,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        retry: bool = True,
        policy: RetryPolicy | None = None,
        started_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Status | None:
        """Record an attempt that did not succeed; `decide_failure` says whether and when it runs again
        (by default after 2**attempts s while attempts <= max_retries, else failed). A string or an
        exception is an error, retried when `retry`; a `Failure` says what happened itself (a requested
        retry, a permanent failure). `policy` defaults to the task's @task one. Returns the new status, or
        None when the task is no longer this worker's."""
        failure = outcomes.as_failure(error, retry)
        now = now or utc_now()
        return self.write(
            lambda conn: outcomes.fail_running(
                conn, self._ctx, task_id, failure, now, worker_id, attempt, started_at, policy
            )
        )

    def pass_on(
        self,
        task_id: int,
        why: str,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        now: datetime | None = None,
    ) -> Status | None:
        """A claimed task whose name this worker does not know: back to pending after a delay that grows
        with each pass-on in a row, no attempt counted, or failed ("no worker knows task ...") after
        `lifecycle.PASS_ON_TRIES` of them. `why` names the worker and what it knows. Returns the new status,
        or None when the task is no longer this worker's."""
        now = now or utc_now()
        return self.write(lambda conn: outcomes.pass_on(conn, self._ctx, task_id, worker_id, attempt, why, now))

    def mark_cancelled(
        self,
        task_id: int,
        *,
        worker_id: str | None = None,
        attempt: int | None = None,
        reason: str = "cancelled while running",
        started_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """A running task stopped because cancellation was requested."""
        now = now or utc_now()
        return self.write(
            lambda conn: outcomes.mark_cancelled(conn, self._ctx, task_id, worker_id, attempt, reason, started_at, now)
        )

    def release(self, task_ids: Sequence[int], *, worker_id: str | None = None) -> int:
        """Give running tasks back to pending without counting the attempt (graceful shutdown, or
        prefetched tasks a busy worker hands back)."""
        if not task_ids:
            return 0
        return self.write(lambda conn: outcomes.release(conn, self._ctx, task_ids, worker_id))

    def mark_started(self, task_id: int, *, worker_id: str, started_at: datetime) -> bool:
        """Count the attempt of a task that is still running (one that runs long: a whole-host loss
        then counts it; quick tasks have it counted with their outcome, in the same transaction)."""
        return self.mark_started_many(worker_id, [(task_id, started_at)]) == 1

    def mark_started_many(self, worker_id: str, started: Sequence[tuple[int, datetime]]) -> int:
        """`mark_started` for several tasks of one worker (a worker running coroutines concurrently) in one
        transaction; returns how many were still this worker's."""
        if not started:
            return 0
        return self.write(lambda conn: outcomes.mark_started_many(conn, worker_id, started))

    def settle_dead_worker(
        self,
        worker_id: str,
        *,
        finished: Sequence[Completion] = (),
        executing: Sequence[Interrupted] = (),
        now: datetime | None = None,
    ) -> SettledCounts:
        """Everything a dead worker held, in one transaction: successes it had not recorded are recorded,
        the tasks it was executing get their outcome (`Interrupted.how`), and every other task it had
        claimed goes back to pending without counting an attempt (it never started). A success the
        database refuses fails its task alone, as in `finish_and_claim`."""
        now = now or utc_now()
        try:
            return self.write(
                lambda conn: outcomes.settle_dead_worker(conn, self._ctx, worker_id, finished, executing, now)
            )
        except DBAPIError as error:
            if not finished or self.dialect.is_transient(error):
                raise
        recorded = self._record_each(worker_id, finished)
        rest = self.write(lambda conn: outcomes.settle_dead_worker(conn, self._ctx, worker_id, (), executing, now))
        return SettledCounts(len(recorded), rest.interrupted, rest.released)

    def running_worker_ids(self) -> list[str]:
        """Ids of the workers holding running tasks (for same-host recovery of dead ones)."""
        return self.read(outcomes.running_worker_ids)

    def recover_worker(self, worker_id: str, *, reason: str, now: datetime | None = None) -> int:
        """Recover the running tasks of a worker known to be dead (same host and boot, process gone)."""
        now = now or utc_now()
        message = f"worker lost: {reason}"
        return self.write(lambda conn: outcomes.recover_worker(conn, self._ctx, worker_id, now, message))

    def renew_leases(
        self, worker_id: str, task_ids: Sequence[int], *, now: datetime | None = None, lease_seconds: float
    ) -> list[int]:
        """Extend the leases of `task_ids` still held by `worker_id`; returns those whose cancellation
        was requested, so one round trip serves both heartbeat and cancellation check."""
        if not task_ids:
            return []
        until = (now or utc_now()) + timedelta(seconds=lease_seconds)
        return self.write(lambda conn: outcomes.renew_leases(conn, worker_id, task_ids, until))

    def recover_expired(self, *, now: datetime | None = None) -> int:
        """Tasks whose worker stopped renewing their lease: see outcomes.recover_expired."""
        now = now or utc_now()
        return self.write(lambda conn: outcomes.recover_expired(conn, self._ctx, now))

    def set_progress(self, task_id: int, percent: float, message: str | None = None) -> bool:
        return self.set_progress_many([(task_id, percent, message)]) == 1

    def set_progress_many(self, reports: Sequence[tuple[int, float, str | None]]) -> int:
        """Store the latest progress of running tasks, in one transaction; returns how many were running."""
        if not reports:
            return 0
        return self.write(lambda conn: outcomes.set_progress_many(conn, reports))

    def is_cancel_requested(self, task_id: int) -> bool:
        return task_id in self.cancel_requested_among([task_id])

    def cancel_requested_among(self, task_ids: Sequence[int]) -> list[int]:
        """Which of these tasks someone asked to cancel: one read for all the tasks a worker runs."""
        if not task_ids:
            return []
        return self.read(lambda conn: outcomes.cancel_requested_among(conn, task_ids))

    # -- workflows (workflow.py) --------------------------------------------------------------------

    def wait_for_children(
        self,
        task_id: int,
        children: Sequence[TaskRequest],
        *,
        continuation: str | None = None,
        worker_id: str | None = None,
        attempt: int | None = None,
        started_at: datetime | None = None,
        now: datetime | None = None,
    ) -> list[Enqueued] | None:
        """In one transaction: insert `children` under `task_id` and move it to waiting_for_children.
        With no children the task completes at once. None when the task is no longer this worker's."""
        now = now or utc_now()
        rows = [enqueue.row_values(self._ctx, child, now) for child in children]
        for row in rows:
            row["parent_id"] = task_id

        def spawn() -> list[Enqueued] | None:
            return self.write(
                lambda conn: workflow.wait_for_children(
                    conn,
                    self._ctx,
                    task_id,
                    rows,
                    continuation=continuation,
                    worker_id=worker_id,
                    attempt=attempt,
                    started_at=started_at,
                    now=now,
                )
            )

        # The children's PRODUCER span is a child of the parent's run span (current while it spawns).
        return tracing.send(rows, spawn) if tracing.on() and rows else spawn()

    # -- operator actions (transitions.py) ----------------------------------------------------------

    def cancel(self, task_id: int, *, now: datetime | None = None) -> Status:
        """pending -> cancelled at once; running -> cancel_requested (the worker stops it);
        waiting_for_children -> its pending children are cancelled, running ones asked to stop.
        Returns the status after the call; a finished task raises InvalidTransition."""
        if not _may_exist(task_id):
            raise TaskNotFound(f"no task with id {task_id}")
        now = now or utc_now()
        return self.write(lambda conn: transitions.cancel(conn, self._ctx, task_id, now))

    def retry(self, task_id: int, *, now: datetime | None = None) -> None:
        """failed or cancelled -> pending, runnable now, with a fresh attempt budget."""
        if not _may_exist(task_id):
            raise TaskNotFound(f"no task with id {task_id}")
        now = now or utc_now()
        try:
            self.write(lambda conn: transitions.retry(conn, self._ctx, task_id, now))
        except DBAPIError as error:
            if _is_unique_violation(error):
                raise InvalidTransition(
                    f"task {task_id} cannot be retried: another active task holds its dedup key"
                ) from None
            raise

    def purge(self, older_than: timedelta, *, now: datetime | None = None) -> int:
        """Delete finished top-level tasks that finished before now - older_than; their children go with them
        (ON DELETE CASCADE). A parent keeps its rows while a child of it is active again (`taskq retry`)."""
        now = now or utc_now()
        return self.write(lambda conn: transitions.purge(conn, now - older_than, now))

    def bulk_retry(
        self, *, ids: Sequence[int] | None = None, where: TaskFilter | None = None, now: datetime | None = None
    ) -> BulkResult:
        """Retry the failed and cancelled tasks among `ids`, or every one matching `where`, BULK_BATCH rows
        per write transaction, so the write lock (SQLite) or the row locks (PostgreSQL) are held only
        briefly and workers keep going in between. A row holding a dedup key an active task took since is
        skipped, not failed."""
        _check_bulk(ids, where)
        now = now or utc_now()
        matched = changed = skipped = 0
        for batch in self._batches(ids, where, sources(Event.RETRY)):
            try:
                retry = functools.partial(transitions.retry_batch, ctx=self._ctx, batch=batch, now=now)
                done, _taken = self.write(retry)
            except DBAPIError as error:
                if not _is_unique_violation(error):
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
        _check_bulk(ids, where)
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
            # Summaries: the ids are all a batch needs, and whole rows would carry their results along.
            page = self.summaries(where, before_id=cursor, limit=BULK_BATCH, statuses=statuses)
            if not page.tasks:
                return
            yield [task.id for task in page.tasks]
            if page.older_than is None:
                return
            cursor = page.older_than

    # -- reading tasks (queries.py) -----------------------------------------------------------------

    def get(self, task_id: int) -> Task | None:
        if not _may_exist(task_id):
            return None
        return self.read(lambda conn: queries.get(conn, task_id))

    def require_clipped(self, task_id: int, *, max_bytes: int) -> tuple[Task, dict[str, ClippedValue]]:
        """The task for a page polled every second: args, kwargs and result longer than `max_bytes` of
        JSON are left out of it (empty there) and given as their size and first characters (see
        queries.get_clipped); `require` reads them whole."""
        found = None
        if _may_exist(task_id):
            found = self.read(lambda conn: queries.get_clipped(conn, task_id, max_bytes))
        if found is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return found

    def require(self, task_id: int) -> Task:
        task = self.get(task_id)
        if task is None:
            raise TaskNotFound(f"no task with id {task_id}")
        return task

    def wait(self, task_id: int, timeout: float | None = None) -> Task:
        """Block until the task finished (completed, failed or cancelled) and return it; after `timeout`
        seconds (None: no limit) raise TaskNotFinished."""
        waiting = Waiting(task_id, timeout)
        while True:
            pause = waiting.after(self.require(task_id))
            if isinstance(pause, Task):
                return pause
            time.sleep(pause)

    async def get_async(self, task_id: int) -> Task | None:
        return await asyncio.to_thread(self.get, task_id)

    async def wait_async(self, task_id: int, timeout: float | None = None) -> Task:
        """`wait` for a coroutine: each read runs in a thread, each pause is an asyncio.sleep, so a
        thousand requests waiting at once hold no thread between reads."""
        waiting = Waiting(task_id, timeout)
        while True:
            pause = waiting.after(await asyncio.to_thread(self.require, task_id))
            if isinstance(pause, Task):
                return pause
            await asyncio.sleep(pause)

    def list(
        self,
        *,
        status: Status | str | None = None,
        name: str | None = None,
        queue: str | None = None,
        parent_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> builtins.list[Task]:
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
    ) -> TaskPage[Task]:
        """One page of the tasks matching `where`, newest first, by keyset (see queries.page)."""
        check_filter(where)
        _check_cursors(before_id, after_id)
        return self.read(
            lambda conn: queries.page(
                conn, where, before_id=before_id, after_id=after_id, limit=limit, statuses=statuses
            )
        )

    def summaries(
        self,
        where: TaskFilter,
        *,
        before_id: int | None = None,
        after_id: int | None = None,
        limit: int = 50,
        statuses: Sequence[Status | str] | None = None,
    ) -> TaskPage[TaskSummary]:
        """`page` for lists: each task's scalar fields, the sizes of its args, kwargs and result and its
        error's headline, measured in the database (a 50 MB result is never read out of it)."""
        check_filter(where)
        _check_cursors(before_id, after_id)
        return self.read(
            lambda conn: queries.summaries(
                conn, where, before_id=before_id, after_id=after_id, limit=limit, statuses=statuses
            )
        )

    def count(self, where: TaskFilter) -> int:
        """How many tasks match (the dashboard shows it before a bulk action)."""
        check_filter(where)
        return self.read(lambda conn: queries.count(conn, where))

    def children_results(self, parent_id: int) -> builtins.list[Task]:
        """Every child of `parent_id`, oldest first (continuations read their inputs here)."""
        return self.read(lambda conn: queries.children_results(conn, parent_id))

    def children_counts(self, parent_id: int) -> dict[str, int]:
        return self.read(lambda conn: queries.children_counts(conn, parent_id))

    def next_run_after(self, queues: Sequence[str] | None = None) -> datetime | None:
        """When the earliest pending task becomes ready (lets an idle worker sleep exactly that long)."""
        return self.read(lambda conn: queries.next_run_after(conn, queues))

    def latest_by_dedup_key(self, dedup_key: str) -> Task | None:
        """The newest task enqueued with `dedup_key`, active or finished."""
        return self.read(lambda conn: queries.latest_by_dedup_key(conn, dedup_key))

    def active(self, *, names: Sequence[str] | None = None, limit: int = 50) -> builtins.list[Task]:
        """Pending, running and waiting tasks, oldest first; only those called one of `names` if given."""
        return self.read(lambda conn: queries.active(conn, names=names, limit=limit))

    def queue_counts(self, *, now: datetime | None = None) -> dict[str, dict[str, int]]:
        """Tasks per queue and status, plus `delayed`: pending tasks whose run_after is still ahead."""
        now = now or utc_now()
        return self.read(lambda conn: queries.queue_counts(conn, now=now))

    # -- metrics (metrics.py reads, rollup.py writes) -----------------------------------------------

    def counts_by_queue(self) -> dict[tuple[str, str], int]:
        """{(queue, status): n} for every status with rows, exact."""
        return self.read(metrics.counts_by_queue)

    def stats(self) -> dict[str, int]:
        """Number of tasks in each status; every status present, zeros included."""
        return self.read(metrics.stats)

    def queue_depths(self, *, now: datetime) -> builtins.list[QueueDepth]:
        """Every queue with active rows, by name."""
        return self.read(lambda conn: metrics.queue_depths(conn, now=now))

    def known_queues(self) -> builtins.list[str]:
        """Queues with active rows or rolled-up history (for the dashboard's queue picker)."""
        return self.read(metrics.known_queues)

    def known_names(self) -> builtins.list[str] | None:
        """Every task name present in the table; None when no rollup ever ran."""
        return self.read(metrics.known_names)

    def rollup_state(self) -> RollupState:
        return self.read(metrics.rollup_state_of)

    def rollup(self, *, now: datetime, chunk_rows: int = ROLLUP_CHUNK_ROWS) -> int:
        """Fold at most `chunk_rows` rows finished since the watermark (and before now - lag) into the
        rollup tables; returns how many rows it folded (0: caught up, or another process moved first).
        Read and tallied outside the write lock, folded in a short write that checks nothing moved."""
        until = now - timedelta(seconds=metrics.ROLLUP_LAG_SECONDS)
        chunk = self.read(lambda conn: rollup.chunk_to_roll_up(conn, until=until, chunk_rows=chunk_rows))
        if not chunk.rows:
            return 0
        return self.write(lambda conn: rollup.fold_rollup(conn, chunk))

    def recount(self) -> bool:
        """Recount task_counts from the table when a purge left it stale; True if it did. The count runs
        outside the write lock (it reads every finished row once) and is kept only if nothing moved."""
        state, rows = self.read(rollup.counts_to_recount)
        if not state.counts_stale:
            return False
        return self.write(lambda conn: rollup.replace_counts(conn, state, rows))

    def sample_queues(self, *, now: datetime) -> int:
        """Record this minute's depth of every active queue (the last sample in a minute wins)."""
        depths = self.queue_depths(now=now)
        minute = metrics.minute_of(now)
        return self.write(lambda conn: rollup.save_queue_samples(conn, minute, depths))

    def prune_history(self, *, now: datetime) -> int:
        return self.write(lambda conn: rollup.prune_history(conn, now=now))

    def chart_window(self, *, since: datetime, queue: str | None = None, name: str | None = None) -> ChartWindow:
        """Finished tasks per minute and runtime histograms per task name from `since` on."""
        return self.read(lambda conn: metrics.chart_window(conn, since=since, queue=queue, name=name))

    def queue_history(self, *, since: datetime, queue: str | None = None) -> builtins.list[dict[str, Any]]:
        return self.read(lambda conn: metrics.queue_history(conn, since=since, queue=queue))

    def metric_totals(self) -> dict[tuple[str, str], Tally]:
        """{(queue, name): Tally} over all time from the rollups, for Prometheus counters: monotonic (they
        lag the rollup a little), names past metric_names' cap summed under metrics.OTHER_NAME."""
        return self.read(metrics.metric_totals)

    # -- worker heartbeats (workers.py) -------------------------------------------------------------

    def register_worker(
        self, worker_id: str, *, hostname: str, pid: int, name: str, queues: Sequence[str], now: datetime | None = None
    ) -> None:
        now = now or utc_now()
        self.write(
            lambda conn: workers.register_worker(
                conn, worker_id, hostname=hostname, pid=pid, name=name, queues=queues, now=now
            )
        )

    def heartbeat_worker(
        self, worker_id: str, *, current_task_id: int | None, tasks_done: int, now: datetime | None = None
    ) -> None:
        now = now or utc_now()
        self.write(
            lambda conn: workers.heartbeat_worker(
                conn, worker_id, current_task_id=current_task_id, tasks_done=tasks_done, now=now
            )
        )

    def unregister_worker(self, worker_id: str) -> None:
        self.write(lambda conn: workers.unregister_worker(conn, worker_id))

    def list_workers(self, *, alive_within: float = 60.0, now: datetime | None = None) -> builtins.list[WorkerInfo]:
        """Workers whose last heartbeat is at most `alive_within` seconds old, by id."""
        now = now or utc_now()
        return self.read(lambda conn: workers.list_workers(conn, alive_within=alive_within, now=now))

    def prune_workers(self, *, silent_for: float, now: datetime | None = None) -> int:
        """Forget workers that have not reported for `silent_for` seconds (crashed hosts)."""
        now = now or utc_now()
        return self.write(lambda conn: workers.prune_workers(conn, silent_for=silent_for, now=now))

    # -- schedules (schedules.py; the decisions are taskq/scheduler.py's) ---------------------------

    def schedule_states(self) -> dict[str, ScheduleState]:
        return self.read(schedules.schedule_states)

    def scheduled_tasks(self, task_ids: Sequence[int]) -> dict[int, ScheduledTask]:
        """Status of each schedule's current row, by primary key."""
        if not task_ids:
            return {}
        return self.read(lambda conn: schedules.scheduled_tasks(conn, task_ids))

    def converge_schedule(self, name: str, dedup_key: str, decide: Decide, *, now: datetime) -> ScheduleChange | None:
        """One scheduler step in one write transaction: lock the schedule's row, read what `decide` needs
        (its state, the active row holding `dedup_key`, the previous row's start), and create or rewrite the
        row as `decide` says. None when there was nothing to do or another pool got there first."""
        return self.write(
            lambda conn: schedules.converge_schedule(
                conn, self._ctx, name, dedup_key, decide, now, self._ctx.catalog.check_arguments
            )
        )

    def remove_schedule(self, name: str) -> int:
        """Forget the schedule and delete its pending row; a running one is left to finish.
        Returns the number of task rows deleted."""
        return self.write(lambda conn: schedules.remove_schedule(conn, name))

    def schedule_overview(self) -> builtins.list[ScheduleOverview]:
        """Every schedule with a state row, by name, with its next and its last finished occurrence."""
        return self.read(schedules.schedule_overview)
