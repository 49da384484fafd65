"""Per-task retry policies: the pure decision (`decide_failure`) and the policies a task may declare. The store's
use of them: tests/contract/test_retry_policy_store.py; real pools: tests/process/test_retry_policy_pool.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

import taskq
from taskq.clock import utc_now
from taskq.lifecycle import DEFAULT_POLICY, Failure, FailureKind, RetryPolicy, decide_failure

NOW = utc_now()


def decide(failure: Failure, policy: RetryPolicy = DEFAULT_POLICY, **facts: object) -> object:
    given = {"attempts": 1, "max_retries": 3, "cancel_requested": False, "now": NOW, "draw": 0.0, **facts}
    return decide_failure(failure, policy, **given)  # type: ignore[arg-type]


def test_default_policy_keeps_the_old_formula_two_to_the_attempts_capped_at_an_hour() -> None:
    assert [DEFAULT_POLICY.delay(attempts, 0.7) for attempts in (1, 2, 3, 12, 13, 500)] == [
        2.0, 4.0, 8.0, 3600.0, 3600.0, 3600.0,
    ]  # fmt: skip


def test_backoff_base_cap_and_jitter_in_the_upper_half() -> None:
    policy = RetryPolicy(backoff=5, backoff_max=30, jitter=True)
    assert [policy.delay(attempts, 0.0) for attempts in (1, 2, 3, 4)] == [2.5, 5.0, 10.0, 15.0]
    assert policy.delay(4, 0.999999) == pytest.approx(30.0)


def test_errors_retry_until_max_retries_then_fail() -> None:
    error = Failure(FailureKind.ERROR, "Traceback ... ConnectionError")
    retried = decide(error, attempts=3)
    assert retried.retry_at == NOW + timedelta(seconds=8) and retried.error == error.text  # type: ignore[attr-defined]
    failed = decide(error, attempts=4)
    assert failed.retry_at is None and failed.log_entry == {"attempt": 4, "at": NOW.isoformat(), "error": error.text}  # type: ignore[attr-defined]
    assert decide(error, cancel_requested=True).retry_at is None  # type: ignore[attr-defined]


def test_retry_on_narrows_what_is_retried_and_fail_and_retry_override_it() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError,))
    assert policy.classify(ConnectionRefusedError()) is FailureKind.ERROR  # subclasses count, as in `except`
    assert policy.classify(ValueError()) is FailureKind.PERMANENT
    assert policy.classify(taskq.Retry(delay=1)) is FailureKind.RETRY
    assert DEFAULT_POLICY.classify(taskq.Fail("no")) is FailureKind.PERMANENT
    assert DEFAULT_POLICY.classify(KeyboardInterrupt()) is FailureKind.ERROR  # as before: the task's own failure
    permanent = decide(Failure(FailureKind.PERMANENT, "ValueError"), attempts=1, max_retries=10)
    assert permanent.retry_at is None and permanent.error == "ValueError"  # type: ignore[attr-defined]


def test_a_requested_retry_runs_at_its_delay_keeps_the_error_and_still_counts_against_max_retries() -> None:
    asked = Failure(FailureKind.RETRY, "rate limited", delay=90)
    decision = decide(asked, RetryPolicy(jitter=True), draw=0.5)
    assert decision.retry_at == NOW + timedelta(seconds=90) and decision.error is None  # type: ignore[attr-defined]
    assert decision.log_entry["retry"] is True and "rate limited" in decision.log_entry["error"]  # type: ignore[attr-defined]
    assert decide(Failure(FailureKind.RETRY, ""), attempts=2).retry_at == NOW + timedelta(seconds=4)  # type: ignore[attr-defined]
    spent = decide(asked, attempts=4)
    assert spent.retry_at is None and "out of retries (max_retries=3)" in spent.error  # type: ignore[attr-defined]


def test_bad_policies_fail_at_decoration() -> None:
    with pytest.raises(taskq.TaskqError, match="retry_on"):
        taskq.task(retry_on=("ValueError",))(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(taskq.TaskqError, match="retry_backoff_max"):
        taskq.task(retry_backoff=10, retry_backoff_max=5)(lambda: None)
    with pytest.raises(taskq.TaskqError, match="max_retries"):
        taskq.task(max_retries=-1)(lambda: None)
    with pytest.raises(taskq.TaskqError, match="delay"):
        taskq.Retry(delay=-1)
