"""The task lifecycle in one place: which status changes are legal and what causes each (`TRANSITIONS`),
what happens after a failed attempt (`decide_failure`, with the retry policy of @task), and how a parent
ends once its last child has (`parent_outcome`). Pure decisions; the store applies them (River's rescuer
calls makeRetryDecision, then writes; these are those functions for taskq).

Adding a status: the `Status` enum and its class in `STATUS_CLASSES` (model.py), its rows here, and a
migration. Everything that groups statuses follows from the class and the rows: the command line's
choices and columns, the dashboard's sets and colours, the rollup's columns and /metrics' counters (a
finished status has a column in the rollup tables), the CHECK constraint and partial indexes of
schema.py, which the migration carries to databases. The store statements of the events that enter or
leave it each name their `Event` (grep the store for it); the diagram in docs/explanation/lifecycle.md is
drawn by hand.
Changing the backoff formula: `RetryPolicy.delay` below, nothing else.

A task whose name its worker does not know has not run at all: `decide_pass_on` sends it back to pending,
later, for a worker that knows it, without counting an attempt, and fails it once workers that do not
know it have claimed it `PASS_ON_TRIES` times in a row.

A task ends an attempt without success in one of three ways (`FailureKind`): it raised an exception its
policy retries (or it was cut short: worker lost, lease expired, timeout), it cannot succeed by retrying
(`raise taskq.Fail`, an exception outside `retry_on`, a result that is not JSON), or it
asked to run again later (`raise taskq.Retry`). `decide_failure` turns that, the row's counters and the
policy into when the task runs again, if ever; it reads no clock and draws no random number itself.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskq.model import MAX_BACKOFF_SECONDS, InvalidTaskArguments, Status, TaskqError, in_enum_order

DEFAULT_BACKOFF_SECONDS = 2.0  # the first retry waits this long, each next one twice the previous


class Retry(Exception):  # not a TaskqError: a task catching those around store calls must not swallow it
    """Raised by a task to run again later: `raise taskq.Retry(delay=30)`. Counted as an attempt (so
    max_retries bounds it), not as an error: the row's `error` is left as it was. Without a delay the
    task's backoff applies, as after an error."""

    def __init__(self, reason: str = "", *, delay: float | timedelta | None = None) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
            raise InvalidTaskArguments(f"Retry(delay=...) must be seconds >= 0 or a timedelta, got {delay!r}")
        super().__init__(reason)
        self.reason = reason
        self.delay: float | None = None if seconds is None else float(seconds)


class Fail(Exception):
    """Raised by a task that cannot succeed by trying again (bad input, a refused request): it fails at
    once, whatever retries it has left."""


class FailureKind(str, enum.Enum):
    ERROR = "error"  # an exception its policy retries, or an interruption (worker lost, lease expired, timeout)
    PERMANENT = "permanent"  # never retried: taskq.Fail, an exception outside retry_on, a result that is not JSON
    RETRY = "retry"  # taskq.Retry: again at the time it asked for; an attempt, not an error

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RetryPolicy:
    """@task(retry_on=, retry_backoff=, retry_backoff_max=, retry_jitter=); max_retries stays a column of
    the row (enqueue may override it per call), so it is the decision's input, not part of the policy."""

    backoff: float = DEFAULT_BACKOFF_SECONDS  # seconds before the first retry; doubled for each next one
    backoff_max: float = MAX_BACKOFF_SECONDS
    jitter: bool = False
    # Exception classes worth retrying; None: every exception (the behaviour before policies existed).
    retry_on: tuple[type[BaseException], ...] | None = None

    def __post_init__(self) -> None:
        if not self.backoff > 0:
            raise TaskqError(f"retry_backoff must be seconds > 0, got {self.backoff!r}")
        if not self.backoff_max >= self.backoff:
            raise TaskqError(f"retry_backoff_max ({self.backoff_max!r}) must be >= retry_backoff ({self.backoff!r})")
        for cls in self.retry_on or ():
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise TaskqError(f"retry_on must hold exception classes, got {cls!r}")

    def delay(self, attempts: int, draw: float) -> float:
        """Seconds before the retry that follows `attempts` counted attempts (1, 2, ...). The default
        policy gives 2, 4, 8, ... capped at 1 h, as before. With jitter the delay is drawn from its upper
        half (`draw` in [0, 1)): Dramatiq's compute_backoff does the same, so retries of tasks that failed
        together spread out yet none comes back sooner than half its backoff (full jitter, Celery's
        retry_jitter, may retry at once)."""
        exponent = min(max(attempts - 1, 0), 64)  # 2**64 s is past any cap; a bigger one would overflow float
        seconds = min(self.backoff * 2.0**exponent, self.backoff_max)
        return seconds * (0.5 + 0.5 * draw) if self.jitter else seconds

    def classify(self, error: BaseException) -> FailureKind:
        """How an exception raised by the task ends its attempt."""
        if isinstance(error, Retry):
            return FailureKind.RETRY
        if isinstance(error, Fail):
            return FailureKind.PERMANENT
        if self.retry_on is None or isinstance(error, self.retry_on):
            return FailureKind.ERROR
        return FailureKind.PERMANENT


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Failure:
    """One attempt that did not succeed, as its executor (or the supervisor, or lease recovery) saw it."""

    kind: FailureKind
    text: str  # traceback or reason; for RETRY, what the task said (may be empty)
    delay: float | None = None  # RETRY only: seconds the task asked for; None takes the backoff


def traceback_text(error: BaseException) -> str:
    """What a failure records of an exception: its traceback as Python prints it, chained ones included."""
    return "".join(traceback.format_exception(error))


@dataclass(frozen=True)
class FailureDecision:
    retry_at: datetime | None  # pending again from then; None: failed for good
    error: str | None  # the row's new `error`; None keeps the one it has (a requested retry is no error)
    log_entry: dict[str, Any]  # appended to error_log: every attempt that did not succeed is in it

    @property
    def event(self) -> Event:
        return Event.FAIL if self.retry_at is None else Event.BACK_OFF


def decide_failure(
    failure: Failure,
    policy: RetryPolicy,
    *,
    attempts: int,
    max_retries: int,
    cancel_requested: bool,
    now: datetime,
    draw: float,
) -> FailureDecision:
    """`attempts` counts the attempt that just ended; `draw` is a uniform number in [0, 1) for jitter."""
    entry: dict[str, Any] = {"attempt": attempts, "at": now.isoformat()}
    retries_left = attempts <= max_retries
    if failure.kind is FailureKind.RETRY:
        seconds = failure.delay if failure.delay is not None else policy.delay(attempts, draw)
        said = f": {failure.text}" if failure.text else ""
        if retries_left and not cancel_requested:
            requested_at = now + timedelta(seconds=seconds)
            entry.update(retry=True, error=f"retry requested{said} (again at {requested_at.isoformat()})")
            return FailureDecision(requested_at, None, entry)
        why = "cancel requested" if cancel_requested else f"out of retries (max_retries={max_retries})"
        text = f"taskq.Retry requested{said}, but {why}"
        entry.update(retry=True, error=text)
        return FailureDecision(None, text, entry)
    entry["error"] = failure.text
    again = failure.kind is FailureKind.ERROR and retries_left and not cancel_requested
    retry_at = now + timedelta(seconds=policy.delay(attempts, draw)) if again else None
    return FailureDecision(retry_at, failure.text, entry)


# -- a task its worker does not know ----------------------------------------------------------------------

# A pool with one badly deployed host, or a rolling deploy that adds a task, has workers that do not know
# a name others do. The first pass-ons are short, so a knowing pool loses little when an ignorant one
# claims a task first; they double so that tasks nobody knows cost few claims before failing. The limit
# is counted, not timed: a pool that knows the name but is busy longer than the sum of the delays (~27 min
# here) may see its tasks failed by an ignorant pool that keeps claiming them first.
PASS_ON_TRIES = 12  # claims in a row by workers that do not know the name; the last one fails the task
PASS_ON_DELAY_SECONDS = 1.0  # run_after = now + this after the first pass-on; doubled after each next one
PASS_ON_DELAY_MAX_SECONDS = 600.0
# A worker that has passed on a name claims that name's tasks only once they have been ready this long:
# a worker that knows the name, if one is free, takes them first. Without it, an idle pool that lacks the
# name wins most races for a task when it comes due, and each pass-on doubles the wait of the pool that
# knows it (measured: ~25 s for a knowing pool started 1 s after the tasks were enqueued). Not a filter
# on known names: that would leave a name nobody knows pending forever, with nothing said.
PASS_ON_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class PassOnDecision:
    retry_at: datetime | None  # pending again from then; None: failed for good
    error: str | None  # the row's new `error` when it fails; None keeps the one it has
    log_entry: dict[str, Any]  # appended to error_log; a pass-on's entry says `passed_on: true`
    tries: int  # claims in a row by workers that did not know the name, this one included

    @property
    def event(self) -> Event:
        return Event.FAIL if self.retry_at is None else Event.PASS_ON


def passed_on_tries(error_log: Sequence[dict[str, Any]] | None) -> int:
    """Pass-ons since the task last ran (or failed for good): the `passed_on` entries at the end of its
    error_log. The count lives there rather than in a column of its own: an entry per pass-on is what an
    operator wants to read anyway (who passed it on, when it comes back), and any other entry (a real
    attempt's error, a requested retry, the failure that ends a run of pass-ons) starts the count again."""
    tries = 0
    for entry in reversed(error_log or ()):
        if not entry.get("passed_on"):
            break
        tries += 1
    return tries


def pass_on_delay(tries: int) -> float:
    """Seconds before a task passed on for the `tries`-th time in a row (1, 2, ...) is ready again."""
    exponent = min(max(tries - 1, 0), 64)
    return min(PASS_ON_DELAY_SECONDS * 2.0**exponent, PASS_ON_DELAY_MAX_SECONDS)


def decide_pass_on(
    name: str,
    error_log: Sequence[dict[str, Any]] | None,
    *,
    attempt: int,
    why: str,
    now: datetime,
    limit: int = PASS_ON_TRIES,
) -> PassOnDecision:
    """A worker claimed a task named `name` that it does not know (`why` says who and what it knows);
    `attempt` is the attempt the task was claimed as. Back to pending later, or failed after `limit`
    such claims in a row."""
    tries = passed_on_tries(error_log) + 1
    entry: dict[str, Any] = {"attempt": attempt, "at": now.isoformat()}
    if tries >= limit:
        text = f"no worker knows task {name!r} after {tries} tries: {why}"
        entry["error"] = text
        return PassOnDecision(None, text, entry, tries)
    retry_at = now + timedelta(seconds=pass_on_delay(tries))
    entry.update(passed_on=True, error=f"passed on ({tries} of {limit}): {why} (again at {retry_at.isoformat()})")
    return PassOnDecision(retry_at, None, entry, tries)


# -- the transition table ------------------------------------------------------------------------------


class Event(str, enum.Enum):
    """What moves a task from one status to another (or changes a row without changing its status)."""

    CLAIM = "claim"  # a worker takes a ready task
    RELEASE = "release"  # a claimed task handed back unstarted or cut short through no fault of its own
    START = "start"  # a long-running task's attempt is counted while it runs
    PROGRESS = "progress"  # the task reports progress
    RENEW_LEASE = "renew_lease"  # its worker's heartbeat
    COMPLETE = "complete"  # the task returned
    BACK_OFF = "back_off"  # an attempt failed (or raised taskq.Retry) with retries left: pending again later
    FAIL = "fail"  # an attempt failed for good (out of retries, permanent, cancel requested)
    STOP = "stop"  # the task stopped because its cancellation was requested
    SPAWN = "spawn"  # the task spawned children and waits for them
    LAST_CHILD = "last_child"  # its last child finished: the parent ends as parent_outcome() says
    CANCEL = "cancel"  # `taskq cancel` (or a cancelled parent) on a task that has not started
    REQUEST_CANCEL = "request_cancel"  # `taskq cancel` on a running or waiting task: its worker stops it
    RETRY = "retry"  # `taskq retry`: a fresh attempt budget for a failed or cancelled task
    PASS_ON = "pass_on"  # a worker that does not know the task's name hands it back for one that does, later
    RESCHEDULE = "reschedule"  # a schedule's settings entry was edited: its pending row follows

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Transition:
    event: Event
    source: Status
    target: Status  # the same as source: the event changes the row, not its status


_P, _R, _W = Status.PENDING, Status.RUNNING, Status.WAITING_FOR_CHILDREN
_C, _F, _X = Status.COMPLETED, Status.FAILED, Status.CANCELLED

# Every legal change, and the events that change a row in place; the store guards each UPDATE with its
# event's sources (`status IN (...)`), so a row that moved meanwhile is left alone and the caller told.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(Event.CLAIM, _P, _R),
    Transition(Event.RELEASE, _R, _P),
    Transition(Event.START, _R, _R),
    Transition(Event.PROGRESS, _R, _R),
    Transition(Event.RENEW_LEASE, _R, _R),
    Transition(Event.COMPLETE, _R, _C),
    Transition(Event.BACK_OFF, _R, _P),
    Transition(Event.FAIL, _R, _F),
    Transition(Event.STOP, _R, _X),
    Transition(Event.SPAWN, _R, _W),
    Transition(Event.LAST_CHILD, _W, _C),
    Transition(Event.LAST_CHILD, _W, _F),
    Transition(Event.LAST_CHILD, _W, _X),
    Transition(Event.CANCEL, _P, _X),
    Transition(Event.REQUEST_CANCEL, _R, _R),
    Transition(Event.REQUEST_CANCEL, _W, _W),
    Transition(Event.RETRY, _F, _P),
    Transition(Event.RETRY, _X, _P),
    Transition(Event.RESCHEDULE, _P, _P),
    Transition(Event.PASS_ON, _R, _P),
)


def _by_event(part: str) -> dict[Event, tuple[Status, ...]]:
    found: dict[Event, list[Status]] = {}
    for transition in TRANSITIONS:
        statuses = found.setdefault(transition.event, [])
        if getattr(transition, part) not in statuses:
            statuses.append(getattr(transition, part))
    return {event: tuple(sorted(statuses, key=lambda s: s.value)) for event, statuses in found.items()}


_SOURCES = _by_event("source")
_TARGETS = _by_event("target")


def sources(event: Event) -> tuple[Status, ...]:
    """The statuses `event` applies to (sorted by value, so statements built from them never vary)."""
    return _SOURCES[event]


def targets(event: Event) -> tuple[Status, ...]:
    return _TARGETS[event]


def target(event: Event) -> Status:
    """The one status `event` leads to; LAST_CHILD has three (ask parent_outcome)."""
    (only,) = _TARGETS[event]
    return only


def events_between(source: Status, target: Status) -> tuple[Event, ...]:
    """The events that move a task from `source` to `target`; empty: the change is not legal."""
    return tuple(t.event for t in TRANSITIONS if t.source is source and t.target is target)


# What an operator may do to a task, by status: `taskq cancel`/`retry`'s choices and the dashboard's buttons
# read these, in the enum's order (the order people read them in).
CANCELLABLE: tuple[Status, ...] = in_enum_order((*sources(Event.CANCEL), *sources(Event.REQUEST_CANCEL)))
RETRYABLE: tuple[Status, ...] = in_enum_order(sources(Event.RETRY))


# -- a parent whose last child finished ------------------------------------------------------------------


@dataclass(frozen=True)
class ChildCounts:
    """A parent's children counters (the row's children_* columns)."""

    total: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, row: Any) -> ChildCounts:
        """From a row or mapping with the children_* columns."""
        values = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            values["children_total"],
            values["children_completed"],
            values["children_failed"],
            values["children_cancelled"],
        )

    @property
    def all_finished(self) -> bool:
        return self.completed + self.failed + self.cancelled >= self.total


def parent_outcome(children: ChildCounts, *, cancel_requested: bool) -> Status:
    """How a waiting parent ends once every child has: failed if any child failed for good; else cancelled
    if its cancellation was requested or every child was cancelled; else completed (no children too)."""
    if children.failed:
        return Status.FAILED
    if cancel_requested or (children.total and children.cancelled == children.total):
        return Status.CANCELLED
    return Status.COMPLETED


def parent_error(
    outcome: Status, children: ChildCounts, *, cancel_requested: bool, failed_ids: Sequence[int] = ()
) -> str | None:
    """The parent's `error` for `outcome`; `failed_ids` are the first failed children's ids (the store
    reads them only when the outcome is failed)."""
    if outcome is Status.FAILED:
        return f"{children.failed} of {children.total} children failed (first ids: {', '.join(map(str, failed_ids))})"
    if outcome is Status.CANCELLED:
        return "cancelled" if cancel_requested else "all children were cancelled"
    return None
