"""Domain types shared by every layer: statuses, the Task record, enqueue requests and results."""

from __future__ import annotations

import asyncio
import enum
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from taskq.clock import as_utc
from taskq.json_limits import JsonRefused, Undecodable, encode


class Status(str, enum.Enum):
    PENDING = "pending"  # waiting for run_after to pass and a worker to claim it
    RUNNING = "running"  # claimed by a worker that holds its lease
    WAITING_FOR_CHILDREN = "waiting_for_children"  # spawned children; the last one to finish completes it
    COMPLETED = "completed"  # finished; result stored
    FAILED = "failed"  # out of retries (or failed permanently); last traceback in error
    CANCELLED = "cancelled"  # cancelled before or while running

    def __str__(self) -> str:
        return self.value


class StatusClass(str, enum.Enum):
    """The kind of a status. Everything that groups statuses follows from it: which are active and which
    finished, the command line's choices and columns, the dashboard's sets and colours, the rollup's and
    /metrics' counters, Django's status. A new status names its class in STATUS_CLASSES, nothing more."""

    QUEUED = "queued"  # active, not started: waits for its run_after and a worker
    WORKING = "working"  # active: a worker is executing it
    WAITING = "waiting"  # active: its attempt ended, something else (its children) decides how it ends
    SUCCESS = "success"  # finished: it did what it was asked
    FAILURE = "failure"  # finished: it did not, for good
    STOPPED = "stopped"  # finished: cancelled, it did not run to an end

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        """Not finished: holds its dedup key, may still run or end."""
        return self in (StatusClass.QUEUED, StatusClass.WORKING, StatusClass.WAITING)

    @property
    def ran_to_an_end(self) -> bool:
        """Finished after a run that ended by itself (returned or failed): its run time means something."""
        return self in (StatusClass.SUCCESS, StatusClass.FAILURE)


STATUS_CLASSES: Mapping[Status, StatusClass] = MappingProxyType(
    {
        Status.PENDING: StatusClass.QUEUED,
        Status.RUNNING: StatusClass.WORKING,
        Status.WAITING_FOR_CHILDREN: StatusClass.WAITING,
        Status.COMPLETED: StatusClass.SUCCESS,
        Status.FAILED: StatusClass.FAILURE,
        Status.CANCELLED: StatusClass.STOPPED,
    }
)
if set(STATUS_CLASSES) != set(Status):  # fails at import: a status without a class would be in no group
    raise TypeError(f"STATUS_CLASSES must class every Status; missing {sorted(set(Status) - set(STATUS_CLASSES))}")


def in_enum_order(statuses: Iterable[Status]) -> tuple[Status, ...]:
    """`statuses` in the enum's order: the order lists, columns and choices show them in."""
    wanted = set(statuses)
    return tuple(status for status in Status if status in wanted)


ACTIVE_STATUSES: frozenset[Status] = frozenset(s for s in Status if STATUS_CLASSES[s].active)
TERMINAL_STATUSES: frozenset[Status] = frozenset(s for s in Status if not STATUS_CLASSES[s].active)

DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3
MAX_BACKOFF_SECONDS = 3600.0  # the default retry_backoff_max of @task
# No real delay is this long, and every Unix timestamp since 1980 is longer: a delay past it is an epoch
# number passed where seconds-from-now were meant (time.time() + 120 would otherwise run in 2083).
MAX_DELAY_SECONDS = 10 * 365 * 86400.0


def check_json(what: str, value: Any) -> None:
    """Refuse a value the store could not keep as JSON (args, kwargs, a result), or that a worker could
    not read back: NaN and infinities (json.dumps writes them, PostgreSQL's json type and most readers
    refuse them), and nesting past json_limits.MAX_JSON_DEPTH (checked as every reader checks it)."""
    if value is None or value == [] or value == {}:
        return
    try:
        encode(value)
    except JsonRefused as refused:
        raise InvalidTaskArguments(f"{what} {refused.reason}") from None


class TaskqError(Exception):
    """Base of the errors taskq raises for bad input or state; the message is meant for people."""


class InvalidTaskArguments(TaskqError):
    pass


class TaskNotFound(TaskqError):
    pass


class InvalidTransition(TaskqError):
    """The task is not in a state that allows the requested operation (e.g. retrying a completed task)."""


class TaskNotFinished(TaskqError, TimeoutError):
    """wait() or result() reached its timeout while the task was still pending, running or waiting."""


class TaskFailed(TaskqError):
    """result() of a task that failed or was cancelled; `.task` holds it (status, error, error_log)."""

    def __init__(self, task: Task) -> None:
        reason = task.error.rstrip().splitlines()[-1] if task.error else "(no error recorded)"
        super().__init__(f"task {task.id} {task.status.value}: {reason}")
        self.task = task


class TaskOps(Protocol):
    """What a handle needs of the store that made it (the Store; model does not import it)."""

    def require(self, task_id: int) -> Task: ...
    def wait(self, task_id: int, timeout: float | None = None) -> Task: ...
    def cancel(self, task_id: int, *, now: datetime | None = None) -> Status: ...
    async def wait_async(self, task_id: int, timeout: float | None = None) -> Task: ...


_set = object.__setattr__  # how a frozen class sets its own fields

# What a task returns: `resize.enqueue(...)` is an Enqueued[dict] when `resize` returns a dict.
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, init=False, slots=True)
class Enqueued(Generic[ResultT]):
    """What enqueue returns: the task's id, and a handle on the task through the store that made it.
    Equality, hashing and repr see only id and deduplicated, so `Enqueued(7) == store.enqueue(...)` holds
    as before handles existed. Generic in the task's return type, so `.result()` is typed for checkers."""

    id: int
    deduplicated: bool = False  # True: an active task with the same dedup key existed; its id is returned
    store: TaskOps | None = field(default=None, compare=False, repr=False)

    def __init__(self, id: int, deduplicated: bool = False, store: TaskOps | None = None) -> None:
        # Slots, no __dict__: an enqueue_many of 10,000 returns 10,000 of these, and the collector counts
        # each object that survives (one each, instead of two) towards its next full collection.
        _set(self, "id", id)
        _set(self, "deduplicated", deduplicated)
        _set(self, "store", store)

    def _store(self) -> TaskOps:
        if self.store is None:
            raise TaskqError(f"Enqueued({self.id}) was not returned by a store: use store.wait({self.id}) and friends")
        return self.store

    def status(self) -> Status:
        """The task's status now (one read)."""
        return self._store().require(self.id).status

    def wait(self, timeout: float | None = None) -> Task:
        """Block until the task finished (completed, failed or cancelled) and return it; after `timeout`
        seconds (None: no limit) raise TaskNotFinished."""
        return self._store().wait(self.id, timeout=timeout)

    def result(self, timeout: float | None = 0.0) -> ResultT:
        """The completed task's result. By default it does not wait (TaskNotFinished if the task is
        still active); `timeout=` seconds waits that long, None without limit. A failed or cancelled
        task raises TaskFailed."""
        return _result_of(self._store().wait(self.id, timeout=timeout))

    def cancel(self) -> Status:
        """As `store.cancel`: the status after the call (cancelled, or running while it stops)."""
        return self._store().cancel(self.id)

    # Twins for coroutines (web handlers): the reads run in a thread, waits sleep on the event loop.

    async def status_async(self) -> Status:
        return await asyncio.to_thread(self.status)

    async def wait_async(self, timeout: float | None = None) -> Task:
        return await self._store().wait_async(self.id, timeout=timeout)

    async def result_async(self, timeout: float | None = 0.0) -> ResultT:
        return _result_of(await self._store().wait_async(self.id, timeout=timeout))

    async def cancel_async(self) -> Status:
        return await asyncio.to_thread(self.cancel)


def _result_of(task: Task) -> Any:  # Any: the row's JSON is what the task returned
    if task.status is not Status.COMPLETED:
        raise TaskFailed(task)
    if isinstance(task.result, Undecodable):
        raise TaskqError(f"task {task.id}'s result cannot be read back: result {task.result.reason}")
    return task.result


@dataclass(frozen=True)
class Completion:
    """A successful run not yet recorded: workers record quick tasks in batches, one transaction each."""

    task_id: int
    attempt: int
    result: Any
    finished_at: datetime
    has_follow_up: bool = True  # it has a parent or a continuation: record it with the workflow bookkeeping
    continuation: str | None = None  # the task's @task(then=...), enqueued if the row names no continuation
    started_at: datetime | None = None  # when the function was called (stored if the start was not yet)


@dataclass(frozen=True)
class ClaimLimits:
    """Concurrency caps a claim must respect: at most `by_name[n]` running tasks named n, and at most
    `by_queue[q]` running tasks in queue q, across every worker and host. A claimed row holds its slot
    from the claim on (prefetched included) until its outcome or release. Workers build this once from
    @task(max_concurrency=...) and settings.yaml's `queues:`; the store never imports the registry."""

    by_name: Mapping[str, int] = field(default_factory=dict)
    by_queue: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, caps in (("max_concurrency", self.by_name), ("queue max_concurrency", self.by_queue)):
            for key, cap in caps.items():
                if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                    raise TaskqError(f"{what} of {key!r} must be an int >= 1, got {cap!r}")

    def __bool__(self) -> bool:
        return bool(self.by_name or self.by_queue)

    def __hash__(self) -> int:  # the mappings are not hashable; their sorted items are
        return hash((tuple(sorted(self.by_name.items())), tuple(sorted(self.by_queue.items()))))


class Interruption(str, enum.Enum):
    """How a task cut short by its worker's death is settled."""

    FAIL = "fail"  # a failed attempt, retried per policy (worker lost, timeout)
    CANCEL = "cancel"  # it was being cancelled: cancelled
    RELEASE = "release"  # not its fault (shutdown grace expired): pending again, attempt not counted


@dataclass(frozen=True)
class Interrupted:
    task_id: int
    attempt: int
    how: Interruption
    message: str
    started_at: datetime | None = None


@dataclass(frozen=True)
class SettledCounts:
    recorded: int  # successes the worker had not recorded yet
    interrupted: int  # tasks it was executing
    released: int  # tasks it had claimed and not started (plus any started ones it had not reported)


@dataclass(frozen=True, init=False)
class TaskRequest:
    """Everything needed to create one task row; validated before any SQL runs. priority, max_retries and
    queue left as None take the task's @task options (else the built-in defaults) when the row is made."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    priority: int | None = None
    run_after: datetime | float | int | None = None
    dedup_key: str | None = None
    max_retries: int | None = None
    queue: str | None = None
    timeout: float | None = None
    parent_id: int | None = None
    continuation: str | None = None  # task name enqueued when this task's children have all finished
    delay: float | timedelta | None = None  # seconds (or a timedelta) from now; an alternative to run_after

    def __init__(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        priority: int | None = None,
        run_after: datetime | float | int | None = None,
        dedup_key: str | None = None,
        max_retries: int | None = None,
        queue: str | None = None,
        timeout: float | None = None,
        parent_id: int | None = None,
        continuation: str | None = None,
        delay: float | timedelta | None = None,
    ) -> None:
        # One dict update, not the frozen dataclass's object.__setattr__ per field: a third of the cost,
        # and an enqueue_many of 10,000 builds 10,000 of these.
        self.__dict__.update(
            name=name,
            args=args,
            kwargs=kwargs,
            priority=priority,
            run_after=run_after,
            dedup_key=dedup_key,
            max_retries=max_retries,
            queue=queue,
            timeout=timeout,
            parent_id=parent_id,
            continuation=continuation,
            delay=delay,
        )

    def run_at(self, now: datetime) -> datetime:
        """When the task may first run. run_after is a datetime; delay is seconds or a timedelta from now.
        A number given as run_after is still read as a delay (its meaning before `delay` existed)."""
        at, seconds = timing(self.run_after, self.delay)
        if at is not None:
            return at
        return now if seconds is None else now + timedelta(seconds=seconds)


def timing(run_after: Any, delay: Any) -> tuple[datetime | None, float | None]:
    """A request's run_after and delay, checked: (the first run time in UTC, None) or (None, seconds from
    the enqueue's now, None for now itself)."""
    if run_after is not None and delay is not None:
        raise InvalidTaskArguments("give run_after (a datetime) or delay (seconds from now), not both")
    if isinstance(run_after, datetime):
        return as_utc(run_after), None
    if run_after is not None:
        if isinstance(run_after, bool) or not isinstance(run_after, (int, float)):
            raise InvalidTaskArguments(f"run_after must be a datetime, got {run_after!r}")
        warnings.warn("run_after=<number> is deprecated: pass delay=<seconds>", DeprecationWarning, stacklevel=3)
        delay = run_after
    if delay is None:
        return None, None
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise InvalidTaskArguments(f"delay must be seconds or a timedelta, got {delay!r}")
    if seconds > MAX_DELAY_SECONDS:
        raise InvalidTaskArguments(
            f"delay of {seconds:.0f} s is over {MAX_DELAY_SECONDS / 86400 / 365:.0f} years, so it looks like a"
            " Unix timestamp; for a point in time pass run_after=datetime.fromtimestamp(t, timezone.utc)"
        )
    if seconds < 0:
        raise InvalidTaskArguments(f"delay must not be negative, got {seconds:g} s")
    return None, seconds


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    status: Status
    priority: int
    run_after: datetime
    attempts: int
    max_retries: int
    dedup_key: str | None
    parent_id: int | None
    progress: float
    progress_message: str | None
    result: Any
    error: str | None
    error_log: list[dict[str, Any]]
    worker_id: str | None
    lease_until: datetime | None
    cancel_requested: bool
    timeout: float | None
    continuation: str | None
    children_total: int
    children_completed: int
    children_failed: int
    children_cancelled: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The enqueuer's OpenTelemetry context (the propagator's carrier as JSON; taskq/tracing.py), or None.
    trace_context: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Task:
        """Never fails on the JSON columns: one that could not be decoded (json_limits.read_column) or is
        not of its column's shape holds an Undecodable placeholder, so the row can still be shown, and
        failed (see `unreadable`)."""

        def when(value: datetime | None) -> datetime | None:
            return None if value is None else as_utc(value)

        return cls(
            id=row["id"],
            name=row["name"],
            queue=row["queue"],
            args=_shaped(row["args"], list),
            kwargs=_shaped(row["kwargs"], dict),
            status=Status(row["status"]),
            priority=row["priority"],
            run_after=as_utc(row["run_after"]),
            attempts=row["attempts"],
            max_retries=row["max_retries"],
            dedup_key=row["dedup_key"],
            parent_id=row["parent_id"],
            progress=float(row["progress"] or 0.0),
            progress_message=row["progress_message"],
            result=row["result"],
            error=row["error"],
            error_log=_shaped(row["error_log"], list),
            worker_id=row["worker_id"],
            lease_until=when(row["lease_until"]),
            cancel_requested=bool(row["cancel_requested"]),
            timeout=row["timeout"],
            continuation=row["continuation"],
            children_total=row["children_total"],
            children_completed=row["children_completed"],
            children_failed=row["children_failed"],
            children_cancelled=row["children_cancelled"],
            created_at=as_utc(row["created_at"]),
            started_at=when(row["started_at"]),
            finished_at=when(row["finished_at"]),
            trace_context=row.get("trace_context"),
        )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def unreadable(self) -> str | None:
        """Why the task cannot run as stored (its args or kwargs could not be read back), else None."""
        for what, value in (("args", self.args), ("kwargs", self.kwargs)):
            if isinstance(value, Undecodable):
                return f"its {what} cannot be read back: {what} {value.reason}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return _task_dict(self)


def _task_dict(task: Task | TaskSummary) -> dict[str, Any]:
    """The JSON form of a task or a summary, keys in field order: statuses by value, times in ISO 8601, the
    children's counts as one object; the trace context stays out (it is the tracer's, not the reader's)."""
    data: dict[str, Any] = {}
    for column in fields(task):
        value = getattr(task, column.name)
        if column.name == "trace_context":
            continue
        if column.name.startswith("children_"):
            data.setdefault("children", {})[column.name.removeprefix("children_")] = value
        elif isinstance(value, Status):
            data[column.name] = value.value
        elif isinstance(value, datetime):
            data[column.name] = value.isoformat()
        else:
            data[column.name] = value
    return data


def error_headline(error: str | None) -> str | None:
    """The line of an error a list shows: a traceback's last line (the exception), else the first line.
    An error clipped by the store starts with its truncation mark and keeps the end: its last line too."""
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return None
    return lines[-1].strip() if lines[0].startswith(("Traceback", "...(truncated)...")) else lines[0].strip()


@dataclass(frozen=True)
class TaskSummary:
    """A task as lists show it (the dashboard polls them every second): every field of Task except args,
    kwargs, result, error and error_log, which can be megabytes each; instead the size of each JSON value
    (bytes of its JSON text in UTF-8, None for a result never set) and the error's headline."""

    id: int
    name: str
    queue: str
    status: Status
    priority: int
    run_after: datetime
    attempts: int
    max_retries: int
    dedup_key: str | None
    parent_id: int | None
    progress: float
    progress_message: str | None
    worker_id: str | None
    lease_until: datetime | None
    cancel_requested: bool
    timeout: float | None
    continuation: str | None
    children_total: int
    children_completed: int
    children_failed: int
    children_cancelled: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    args_size: int
    kwargs_size: int
    result_size: int | None
    error_line: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TaskSummary:
        """`row`: the scalar columns, the three sizes and `error_line` (the store reads the error's head
        and tail, not the whole of it)."""

        def when(value: datetime | None) -> datetime | None:
            return None if value is None else as_utc(value)

        return cls(
            id=row["id"],
            name=row["name"],
            queue=row["queue"],
            status=Status(row["status"]),
            priority=row["priority"],
            run_after=as_utc(row["run_after"]),
            attempts=row["attempts"],
            max_retries=row["max_retries"],
            dedup_key=row["dedup_key"],
            parent_id=row["parent_id"],
            progress=float(row["progress"] or 0.0),
            progress_message=row["progress_message"],
            worker_id=row["worker_id"],
            lease_until=when(row["lease_until"]),
            cancel_requested=bool(row["cancel_requested"]),
            timeout=row["timeout"],
            continuation=row["continuation"],
            children_total=row["children_total"],
            children_completed=row["children_completed"],
            children_failed=row["children_failed"],
            children_cancelled=row["children_cancelled"],
            created_at=as_utc(row["created_at"]),
            started_at=when(row["started_at"]),
            finished_at=when(row["finished_at"]),
            args_size=int(row["args_size"] or 0),
            kwargs_size=int(row["kwargs_size"] or 0),
            result_size=None if row["result_size"] is None else int(row["result_size"]),
            error_line=row["error_line"],
        )

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return _task_dict(self)


@dataclass(frozen=True)
class ClippedValue:
    """A JSON value too large to show whole: its size and the start of its JSON text."""

    size: int  # bytes of the JSON text (UTF-8)
    head: str  # its first characters

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "head": self.head}


def _shaped(value: Any, shape: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """A JSON column's value as its shape (None: empty), or an Undecodable placeholder saying why not."""
    if value is None:
        return shape()
    if isinstance(value, (Undecodable, shape)):
        return value
    found = _JSON_KINDS.get(type(value), type(value).__name__)
    return Undecodable(f"is a JSON {found}, not {'an array' if shape is list else 'an object'}")


_JSON_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process as it last reported itself (heartbeats feed `taskq workers` and the dashboard)."""

    id: str  # host:pid:worker-N, unique across hosts
    hostname: str
    pid: int
    name: str  # worker-N within its pool
    queues: list[str]
    started_at: datetime
    heartbeat_at: datetime
    current_task_id: int | None
    tasks_done: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WorkerInfo:
        return cls(
            id=row["id"],
            hostname=row["hostname"],
            pid=row["pid"],
            name=row["name"],
            queues=row["queues"] if isinstance(row["queues"], list) else [],
            started_at=as_utc(row["started_at"]),
            heartbeat_at=as_utc(row["heartbeat_at"]),
            current_task_id=row["current_task_id"],
            tasks_done=row["tasks_done"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hostname": self.hostname,
            "pid": self.pid,
            "name": self.name,
            "queues": self.queues,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "current_task_id": self.current_task_id,
            "tasks_done": self.tasks_done,
        }


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a list, a count or a bulk action covers; every field narrows, None means any."""

    status: Status | None = None
    name: str | None = None  # exact task name
    name_contains: str | None = None  # case-insensitive substring of the task name
    queue: str | None = None  # exact queue name
    parent_id: int | None = None
    error_contains: str | None = None  # substring of the last error (traceback text)
    args_contains: str | None = None  # substring of the JSON text of args or kwargs

    @property
    def scans(self) -> bool:
        """True when the filter reads rows no index narrows (error or argument text): cost grows with
        the rows walked newest-first until a page fills, not with the page size."""
        return self.error_contains is not None or self.args_contains is not None


PageItem = TypeVar("PageItem", Task, TaskSummary)  # whole tasks (bulk actions) or summaries (lists)


@dataclass(frozen=True)
class TaskPage(Generic[PageItem]):
    """One page of a keyset-paged list, newest first; the cursors are None at either end."""

    tasks: list[PageItem]
    older_than: int | None  # pass as before_id for the next older page
    newer_than: int | None  # pass as after_id for the next newer page


@dataclass(frozen=True)
class BulkResult:
    matched: int  # rows the action looked at
    changed: int  # rows it retried or cancelled
    skipped: int  # rows it could not change (finished meanwhile, dedup key taken by an active task)
