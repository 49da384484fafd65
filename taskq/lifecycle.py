"""What happens to a task after a failed attempt: the retry policy of @task and the pure decision the
store applies (River's rescuer calls makeRetryDecision, then writes; this is that function for taskq).

A task ends an attempt without success in one of three ways (`FailureKind`): it raised an exception its
policy retries (or it was cut short: worker lost, lease expired, timeout), it cannot succeed by retrying
(`raise taskq.Fail`, an exception outside `retry_on`, an unknown task, a result that is not JSON), or it
asked to run again later (`raise taskq.Retry`). `decide_failure` turns that, the row's counters and the
policy into when the task runs again, if ever; it reads no clock and draws no random number itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskq.model import MAX_BACKOFF_SECONDS, InvalidTaskArguments, TaskqError

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
    PERMANENT = "permanent"  # never retried: taskq.Fail, an exception outside retry_on, unknown task, bad result
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


@dataclass(frozen=True)
class FailureDecision:
    retry_at: datetime | None  # pending again from then; None: failed for good
    error: str | None  # the row's new `error`; None keeps the one it has (a requested retry is no error)
    log_entry: dict[str, Any]  # appended to error_log: every attempt that did not succeed is in it


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
            retry_at = now + timedelta(seconds=seconds)
            entry.update(retry=True, error=f"retry requested{said} (again at {retry_at.isoformat()})")
            return FailureDecision(retry_at, None, entry)
        why = "cancel requested" if cancel_requested else f"out of retries (max_retries={max_retries})"
        text = f"taskq.Retry requested{said}, but {why}"
        entry.update(retry=True, error=text)
        return FailureDecision(None, text, entry)
    entry["error"] = failure.text
    again = failure.kind is FailureKind.ERROR and retries_left and not cancel_requested
    retry_at = now + timedelta(seconds=policy.delay(attempts, draw)) if again else None
    return FailureDecision(retry_at, failure.text, entry)
