"""Per-task retry policies through real worker pools on SQLite and PostgreSQL (tasks in
tests/support/pool_tasks.py). The pure decision is tested in tests/unit/test_retry_policy.py."""

from __future__ import annotations

from datetime import timedelta

from poolkit import PoolProcess, runs, wait_for

from taskq.model import Status


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
