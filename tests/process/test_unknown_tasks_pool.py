"""Issue 19, point 6: a task whose name a pool does not know waits for a pool that knows it.

Two pools on one SQLite file, only one of which imports the module that defines `rollout.new`
(tests/support/rollout_tasks.py): a rolling deploy that adds a task, or one badly deployed host. The pool
that lacks the name passes its tasks on (pending again later, no attempt counted) and says so once; with no
pool that knows it, a task fails after `PASS_ON_TRIES` tries with an error that says why.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from poolkit import PoolProcess, runs, wait_for
from sqlalchemy import update

from taskq.lifecycle import PASS_ON_TRIES, decide_pass_on, pass_on_delay
from taskq.model import Status
from taskq.schema import tasks

AGAIN_AT = re.compile(r"\(again at (\S+)\)$")
NOW = datetime.fromisoformat("2026-12-06T06:00:00+00:00")  # when the inserted history's pass-ons happened


def unknown_lines(pool: PoolProcess) -> list[str]:
    return [line for line in pool.log().splitlines() if "task_unknown" in line]


def test_a_task_one_pool_does_not_know_is_run_by_the_pool_that_does_never_failed(tmp_path, db, pools) -> None:
    url, store = db
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    ignorant = PoolProcess(old, url, "--workers", "2", log_format="json")
    pools.append(ignorant)
    ignorant.wait_ready(2)
    ids = [e.id for e in store.enqueue_many([{"name": "rollout.new", "args": [n]} for n in range(5)])]
    # Only the pool that lacks the name runs yet: each task meets it first (it used to fail them for good).
    wait_for(lambda: all(store.require(i).error_log for i in ids), 20, what="every task claimed by the ignorant pool")
    assert [store.require(i).status for i in ids] == [Status.PENDING] * 5

    knowing = PoolProcess(new, url, "--workers", "1", "--import", "rollout_tasks", log_format="json")
    pools.append(knowing)
    wait_for(lambda: all(store.require(i).status is Status.COMPLETED for i in ids), 30, what="all 5 completed")
    for n, task_id in enumerate(ids):
        task = store.require(task_id)
        assert (task.result, task.attempts, task.error) == (n, 1, None)
        assert task.error_log and all(entry["passed_on"] for entry in task.error_log), task.error_log
        assert ":worker-" in task.error_log[0]["error"] and "does not know it" in task.error_log[0]["error"]
    assert sorted(runs(knowing.runlog, "ran"), key=int) == ["0", "1", "2", "3", "4"]  # each ran once, there
    assert runs(ignorant.runlog, "ran") == []
    # Loud, and once for the pool, however many rows and workers met the name.
    (line,) = ignorant.events("task_unknown")
    assert (line["level"], line["process"]["name"]) == ("WARNING", "supervisor")
    assert (line["name"], line["imports"], line["tries"]) == ("rollout.new", ["pool_tasks"], PASS_ON_TRIES)
    assert len(ignorant.events("task_passed_on", name="rollout.new")) >= 5  # each row, in the workers
    assert knowing.events("task_unknown") == []


def test_without_a_pool_that_knows_it_a_task_comes_back_later_each_time_then_fails(tmp_path, db, pools) -> None:
    url, store = db
    fresh = store.enqueue("rollout.new", [0]).id
    last_try = store.enqueue("rollout.new", [1]).id
    # A row passed on PASS_ON_TRIES - 1 times already (as after ~27 minutes of pools that lack it): inserted
    # in that state, its next try is its last.
    history: list[dict] = []
    for _ in range(PASS_ON_TRIES - 1):
        earlier = decide_pass_on("rollout.new", history, attempt=1, why="an earlier pool did not know it", now=NOW)
        history.append(earlier.log_entry)
    with store.engine.begin() as connection:
        connection.execute(update(tasks).where(tasks.c.id == last_try).values(error_log=history))

    pool = PoolProcess(tmp_path, url, "--workers", "2", log_format="json")
    pools.append(pool)
    failed = wait_for(lambda: (t := store.require(last_try)).status is Status.FAILED and t, 20, what="the last try")
    assert failed.error is not None
    assert failed.error.startswith(f"no worker knows task 'rollout.new' after {PASS_ON_TRIES} tries: "), failed.error
    assert "does not know it (registered: " in failed.error and "is the module in `imports`?" in failed.error
    assert failed.attempts == 1 and len(failed.error_log) == PASS_ON_TRIES

    # The other one is passed on again and again, each time for longer: 1 s, 2 s, 4 s, ...
    passed = wait_for(lambda: len((t := store.require(fresh)).error_log) >= 3 and t, 30, what="three pass-ons")
    assert passed.status in (Status.PENDING, Status.RUNNING) and passed.attempts == 0 and passed.error is None
    previous_again_at = None
    for tries, entry in enumerate(passed.error_log[:3], 1):
        at = datetime.fromisoformat(entry["at"])
        again_at = datetime.fromisoformat(AGAIN_AT.search(entry["error"]).group(1))  # type: ignore[union-attr]
        assert entry["passed_on"] and f"({tries} of {PASS_ON_TRIES})" in entry["error"]
        assert (again_at - at).total_seconds() == pass_on_delay(tries) == 2 ** (tries - 1)
        assert previous_again_at is None or at >= previous_again_at  # never claimed before it was due
        previous_again_at = again_at
    assert runs(pool.runlog, "ran") == []
    (line,) = wait_for(lambda: pool.events("task_failed", task_id=last_try), 10, what="the worker's task_failed")
    assert line["name"] == "rollout.new" and line["error"] == "no worker knows task 'rollout.new'"
    assert [unknown["name"] for unknown in pool.events("task_unknown")] == ["rollout.new"]


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_passing_on_never_holds_back_the_tasks_the_pool_knows(tmp_path, db, pools, concurrency) -> None:
    """Rows of a name the pool lacks at the head of the queue never hold back the ones it knows, in the
    one-at-a-time loop and in the concurrent one."""
    url, store = db
    store.enqueue_many([{"name": "rollout.new", "args": [n], "priority": 5} for n in range(50)])
    known = [e.id for e in store.enqueue_many([{"name": "t.record", "args": [n]} for n in range(200)])]
    pool = PoolProcess(tmp_path, url, "--workers", "2", "--concurrency", concurrency)
    pools.append(pool)
    wait_for(lambda: all(store.require(i).status is Status.COMPLETED for i in known), 30, what="the 200 known tasks")
    assert sorted(runs(pool.runlog, "run"), key=int) == [str(n) for n in range(200)]
    assert store.stats()["failed"] == 0
    assert len(unknown_lines(pool)) == 1
