"""Per-task retry policies: the pure decision, then real worker pools on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from poolkit import PoolProcess, runs, wait_for

import taskq
from taskq.clock import utc_now
from taskq.lifecycle import DEFAULT_POLICY, Failure, FailureKind, RetryPolicy, decide_failure
from taskq.model import Status
from taskq.store import Store

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


def test_lease_recovery_applies_the_policy_of_the_task_it_recovers(store: Store) -> None:
    @taskq.task(name="test.recovered_with_policy", retry_backoff=100)
    def recovered() -> None: ...

    task_id = store.enqueue("test.recovered_with_policy").id
    now = utc_now()
    claimed = store.claim("w", now=now, lease_seconds=1)
    assert claimed is not None and store.mark_started(task_id, worker_id="w", started_at=now)
    assert store.recover_expired(now=now + timedelta(seconds=5)) == 1
    assert store.require(task_id).run_after == now + timedelta(seconds=105)


# -- real workers -------------------------------------------------------------------------------------


def test_retry_on_errors_back_off_per_task_and_other_errors_fail_at_once(tmp_path, database_url, store, pools) -> None:
    flaky = store.enqueue("t.flaky", [2]).id
    wrong = store.enqueue("t.wrong_error").id
    pool = PoolProcess(tmp_path, database_url, "--workers", "2")
    pools.append(pool)
    done = wait_for(lambda: (t := store.require(flaky)).status is Status.COMPLETED and t, 30, what="flaky completed")
    assert done.result == 3 and done.attempts == 3 and runs(pool.runlog, "flaky") == ["1", "2", "3"]
    assert [entry["attempt"] for entry in done.error_log] == [1, 2]
    assert all("ConnectionError" in entry["error"] for entry in done.error_log)
    failed = wait_for(lambda: (t := store.require(wrong)).status is Status.FAILED and t, 30, what="wrong_error failed")
    assert failed.attempts == 1 and "ValueError: not a ConnectionError" in (failed.error or "")
    assert runs(pool.runlog, "wrong_error") == ["1"]


def test_task_asks_for_a_retry_at_a_delay_and_fail_is_permanent(tmp_path, database_url, store, pools) -> None:
    asks = store.enqueue("t.asks_retry", [0.5]).id
    gives_up = store.enqueue("t.gives_up").id
    pool = PoolProcess(tmp_path, database_url, "--workers", "1")
    pools.append(pool)
    first = wait_for(lambda: (t := store.require(asks)).attempts == 1 and t, 30, what="first attempt recorded")
    done = wait_for(lambda: (t := store.require(asks)).status is Status.COMPLETED and t, 30, what="asks_retry done")
    assert done.result == 2 and done.attempts == 2 and done.error is None
    (entry,) = done.error_log
    assert entry["retry"] is True and entry["attempt"] == 1 and "rate limited" in entry["error"]
    if first.status is Status.PENDING:  # seen between the two attempts: due at the delay the task asked for
        assert first.run_after - first.started_at >= timedelta(seconds=0.5)  # type: ignore[operator]
    failed = wait_for(lambda: (t := store.require(gives_up)).status is Status.FAILED and t, 30, what="gives_up failed")
    assert failed.attempts == 1 and "Fail: the input can never work" in (failed.error or "")
    wait_for(lambda: "task_retry_requested" in pool.log(), 5, what="the task_retry_requested log line")


def test_jitter_spreads_the_retries_of_tasks_that_failed_together(tmp_path, database_url, store, pools) -> None:
    ids = [e.id for e in store.enqueue_many([{"name": "t.jittered", "args": [n]} for n in range(40)])]
    pool = PoolProcess(tmp_path, database_url, "--workers", "2")
    pools.append(pool)
    failed_once = wait_for(
        lambda: all((t := store.require(i)).attempts == 1 and t.status is Status.PENDING for i in ids) and ids,
        60,
        what="40 tasks failed once",
    )
    delays = []
    for task_id in failed_once:
        task = store.require(task_id)
        failed_at = task.started_at
        assert failed_at is not None
        delays.append((task.run_after - failed_at).total_seconds())
    # retry_backoff=60 with jitter: each first retry falls in [30 s, 60 s] after its failure, spread out.
    assert all(29 <= delay <= 61 for delay in delays), delays
    assert len({round(delay, 1) for delay in delays}) >= 30 and max(delays) - min(delays) > 10, sorted(delays)
