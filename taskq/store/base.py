"""The store's shared vocabulary: the one spelling of each status predicate and owner guard (read from
lifecycle.py's transition table), the attempt-counting expressions, and the context every topic module's
functions take beside their connection.

SQLAlchemy Core, not the ORM: the queue's hot paths (enqueue, claim, complete) are single statements
whose exact SQL matters (ON CONFLICT on a partial index, UPDATE ... RETURNING over a SKIP LOCKED
subquery), and Core compiles each once and caches it, without a unit of work to flush per task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
)

from taskq.dialect import Dialect
from taskq.lifecycle import DEFAULT_POLICY, Event, RetryPolicy, sources, target
from taskq.model import (
    ACTIVE_STATUSES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    Status,
)
from taskq.requests import ArgumentCheck
from taskq.schema import SETTLED, tasks
from taskq.settings import LEASE
from taskq.store.hot import PlainInsert

DEFAULT_LEASE_SECONDS = LEASE.default  # declared in taskq/settings.py
ERROR_LOG_LIMIT = 20  # earlier attempts' errors kept per task; at least lifecycle.PASS_ON_TRIES (counted in it)
ERROR_TEXT_LIMIT = 20_000  # characters of one traceback kept

PENDING = Status.PENDING.value
RUNNING = Status.RUNNING.value
COMPLETED = Status.COMPLETED.value
FAILED = Status.FAILED.value
CANCELLED = Status.CANCELLED.value
_IN_OWN_INDEXES = frozenset({PENDING, RUNNING})  # rows of these are in ix_tasks_claim / ix_tasks_lease, not SETTLED


@dataclass(frozen=True)
class TaskDefaults:
    """Per-task-name defaults, supplied by the registry so the store never imports it."""

    priority: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None
    continuation: str | None = None
    retry: RetryPolicy = DEFAULT_POLICY  # applied to each failed attempt, wherever it is recorded


NO_DEFAULTS = TaskDefaults()
DefaultsLookup = Callable[[str], TaskDefaults | None]


def _no_defaults(_name: str) -> TaskDefaults | None:
    return None


@dataclass(frozen=True)
class TaskCatalog:
    """What a store knows of the tasks its process imported, handed to it in one piece (taskq.registry
    makes the real one: the store never imports the registry): each task's @task defaults, and a check
    of a call against the task's signature. The empty catalog knows no task: rows take the built-in
    defaults and no call is checked against a signature."""

    defaults_for: DefaultsLookup = _no_defaults
    check_arguments: ArgumentCheck | None = None


NO_TASKS = TaskCatalog()


def _status_is(
    *statuses: str, column: ColumnElement[Any] = tasks.c.status, listing: bool = False
) -> ColumnElement[bool]:
    """The one spelling of a status predicate. Statuses go in as SQL literals, not bound parameters: the
    planners (SQLite always, PostgreSQL for generic plans) can use a partial index only when they see the
    value its WHERE clause names. `listing`: the read walks ix_tasks_status_id or ix_tasks_name_id, which
    SQLite uses only when the query repeats their WHERE term (SETTLED), so it is added when none of the
    statuses is pending or running (those rows are not in them)."""
    values = sorted({str(status) for status in statuses})  # Status or str; sorted: one SQL text per set
    if len(values) == 1:
        condition = column == literal_column(f"'{values[0]}'")
    else:
        condition = column.in_([literal_column(f"'{value}'") for value in values])
    if listing and not _IN_OWN_INDEXES.intersection(values):
        condition = and_(condition, SETTLED)
    return condition


def _from(event: Event) -> ColumnElement[bool]:
    """The WHERE term of a statement that applies `event`: the row is in one of the event's from-statuses
    (lifecycle.TRANSITIONS). A row that moved meanwhile is left alone, and the caller sees no row."""
    return _status_is(*sources(event))


def _to(event: Event) -> str:
    """The status `event` leads to, as the value the column stores."""
    return target(event).value


def active_parts(build: Callable[[ColumnElement[bool]], Select[Any]]) -> list[Select[Any]]:
    """One query per active status, each through the index that holds those rows: pending in ix_tasks_claim,
    running in ix_tasks_lease, waiting in ix_tasks_status_id. `status IN (...)` over all three would scan
    the table: no one index holds every active row."""
    return [build(_status_is(status, listing=True)) for status in sorted(ACTIVE_STATUSES, key=str)]


def _safe_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a task's error or progress message may (a C library's message,
    binary data in an exception). Shown visibly on every dialect, so both store the same text."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _clip(text: str) -> str:
    text = _safe_text(text)
    return text if len(text) <= ERROR_TEXT_LIMIT else "...(truncated)...\n" + text[-ERROR_TEXT_LIMIT:]


# A claim does not count an attempt: the row's attempts and started_at change only once the task has
# started (recorded with its outcome, or at once for a task that runs long). started_at IS NULL on a
# running row thus means "claimed, start not recorded": its attempt is counted with the outcome, and a
# lost worker's such rows go back to pending without one.
ATTEMPT_COUNTED = case((tasks.c.started_at.is_(None), tasks.c.attempts + 1), else_=tasks.c.attempts)
STARTED_AT = func.coalesce(tasks.c.started_at, bindparam("started"))
ATTEMPT_UNCOUNTED = case(
    (and_(tasks.c.started_at.is_not(None), tasks.c.attempts > 0), tasks.c.attempts - 1), else_=tasks.c.attempts
)


def _held_by_worker() -> ColumnElement[bool]:
    """Running and claimed by the worker bound as :owner_worker_id (leases, a dead worker's rows)."""
    return and_(_status_is(RUNNING), tasks.c.worker_id == bindparam("owner_worker_id"))


def _owned(event: Event, check_worker: bool, check_attempt: bool) -> ColumnElement[bool]:
    """The one owner guard: the row is still this claim's when `event` is applied to it: in the event's
    from-status (running, for every event a claim's holder applies), and (when given) the same worker and
    attempt. A worker whose lease was recovered and re-claimed elsewhere thus cannot overwrite the new
    attempt. Bind its parameters with `_owner_params`."""
    assert sources(event) == (Status.RUNNING,), f"{event} is not applied by the holder of a claim"
    condition = and_(tasks.c.id == bindparam("owner_task_id"), _status_is(RUNNING))
    if check_worker:
        condition = and_(tasks.c.id == bindparam("owner_task_id"), _held_by_worker())
    if check_attempt:
        # The row holds attempt - 1 until the start is recorded, the attempt itself after.
        attempt = bindparam("owner_attempt", type_=Integer)
        condition = and_(condition, tasks.c.attempts.between(attempt - 1, attempt))
    return condition


def _owner_params(task_id: int, worker_id: str | None, attempt: int | None) -> tuple[tuple[bool, bool], dict[str, Any]]:
    """The parameters of `_owned`, and the guard's shape (check_worker, check_attempt) they fit."""
    params: dict[str, Any] = {"owner_task_id": task_id}
    if worker_id is not None:
        params["owner_worker_id"] = worker_id
    if attempt is not None:
        params["owner_attempt"] = attempt
    return (worker_id is not None, attempt is not None), params


@dataclass(frozen=True)
class StoreContext:
    """What the store's functions need beside a connection, fixed when the store opens: the database's
    differences, the tasks the process knows (their defaults, their signatures), the dialect's
    deduplicating INSERT and, on SQLite, the driver-level plain one (built once), and the store that
    `Enqueued` handles read through."""

    dialect: Dialect
    catalog: TaskCatalog
    insert_dedup: Insert
    sqlite_insert: PlainInsert | None
    handles: Any  # the Store facade; typed loosely: this module sits below it

    @classmethod
    def open(
        cls, dialect: Dialect, catalog: TaskCatalog, sqlite_insert: PlainInsert | None, handles: Any
    ) -> StoreContext:
        return cls(dialect, catalog, dialect.insert_unless_active(tasks), sqlite_insert, handles)

    def defaults_for(self, name: str) -> TaskDefaults:
        """The task's @task defaults when this process imported it, else the built-in ones."""
        return self.catalog.defaults_for(name) or NO_DEFAULTS

    def retry_policy_for(self, name: str) -> RetryPolicy:
        """The task's @task retry policy when this process imported it, else the default one (a
        supervisor recovering a lost worker's task it never imported retries it as before policies)."""
        return self.defaults_for(name).retry
