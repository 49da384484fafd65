"""Fan-out, continuations, pipelines and their cancellation and retention, on SQLite and PostgreSQL.

The store is driven directly (claim, spawn, complete, fail) with time as an input: each test plays the
workers' part step by step, so every intermediate state can be asserted exactly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import workflow_tasks  # noqa: F401  (registers the wf.* tasks and their continuations)
from sqlalchemy import func, select, text

import taskq
from taskq.clock import utc_now
from taskq.context import TaskContext
from taskq.model import InvalidTransition, Status, Task, TaskqError, TaskRequest
from taskq.schema import tasks
from taskq.store import Store

SPAWN = multiprocessing.get_context("spawn")
WORKER = "host:1:worker-1"


# Arguments that fit each parent's signature (enqueue checks them); the tests spawn the children by hand.
SPAWN_ARGS: dict[str, list[Any]] = {"wf.fan_out": [[]], "wf.fan_out_then": [0, "wf.summary"], "wf.nested": [0, 0]}


def run_to_spawn(store: Store, name: str, children: list[TaskRequest], *, then: str | None = None, **kw: Any) -> Task:
    """Enqueue `name`, claim it and spawn `children` under it, as a worker would; returns the parent.
    Its high priority makes the claim take it before any child already pending."""
    parent_id = store.enqueue(name, SPAWN_ARGS[name], priority=100, **kw).id
    claimed = store.claim(WORKER)
    assert claimed is not None and claimed.id == parent_id
    assert store.wait_for_children(parent_id, children, continuation=then, worker_id=WORKER, attempt=1) is not None
    return store.require(parent_id)


def claim_all(store: Store) -> list[Task]:
    return store.claim_batch(WORKER, limit=1000)


def children_of(store: Store, parent_id: int) -> list[Task]:
    return store.children_results(parent_id)


def tasks_named(store: Store, name: str) -> list[Task]:
    return store.list(name=name, limit=1000)


def kids(count: int, **kw: Any) -> list[TaskRequest]:
    return [TaskRequest("wf.child", [i], **kw) for i in range(count)]


def test_spawn_moves_parent_to_waiting_and_only_children_are_claimed(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(3))
    assert parent.status is Status.WAITING_FOR_CHILDREN
    assert (parent.children_total, parent.lease_until, parent.progress) == (3, None, 0.0)
    children = children_of(store, parent.id)
    assert [(c.args, c.parent_id, c.status) for c in children] == [([i], parent.id, Status.PENDING) for i in range(3)]
    assert {c.max_retries for c in children} == {0}  # wf.child's @task(max_retries=0)
    assert sorted(task.id for task in claim_all(store)) == [c.id for c in children]
    assert store.claim(WORKER) is None


def test_spawn_children_takes_every_child_form_and_fills_in_the_declared_continuation(store: Store) -> None:
    unaware = Store(store.engine)  # an enqueuer that never imported the module defining wf.fan_out
    parent_id = unaware.enqueue("wf.fan_out").id
    assert store.require(parent_id).continuation is None
    task = store.claim(WORKER)
    assert task is not None
    context = TaskContext(store, task, WORKER)
    context.spawn_children(
        [
            "taskq.sleep",  # a plain name: a task whose arguments all have defaults
            ("wf.child", [1]),
            {"name": "wf.child", "args": [2], "priority": 5},
            TaskRequest("wf.child", [3], max_retries=2, queue="other"),
        ]
    )
    children = children_of(store, parent_id)
    assert [(c.args, c.priority, c.max_retries, c.queue) for c in children] == [
        ([], 0, 3, "default"),
        ([1], 0, 0, "default"),
        ([2], 5, 0, "default"),
        ([3], 0, 2, "other"),
    ]
    assert store.require(parent_id).continuation == "wf.summary"
    with pytest.raises(TaskqError, match="once"):
        context.spawn_children(["taskq.sleep"])


def test_children_completing_complete_the_parent_once_with_progress_following(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(3))
    children = claim_all(store)
    seen = []
    for child in children:
        assert store.complete(child.id, child.args[0], worker_id=WORKER)
        now = store.require(parent.id)
        seen.append((now.status, round(now.progress, 1), now.children_completed))
    assert seen == [
        (Status.WAITING_FOR_CHILDREN, 33.3, 1),
        (Status.WAITING_FOR_CHILDREN, 66.7, 2),
        (Status.COMPLETED, 100.0, 3),
    ]
    (summary,) = tasks_named(store, "wf.summary")  # @task(then="wf.summary") on wf.fan_out
    assert (summary.args, summary.status, summary.parent_id) == ([parent.id], Status.PENDING, None)
    assert [c.result for c in children_of(store, parent.id)] == [0, 1, 2]


def test_a_child_failing_for_good_fails_the_parent_naming_it_and_skips_the_continuation(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", [*kids(3), TaskRequest("wf.child", [9], max_retries=1)])
    by_arg = {task.args[0]: task for task in claim_all(store)}
    assert store.fail(by_arg[9].id, "flaky", worker_id=WORKER) is Status.PENDING  # a retry is not a failure
    assert store.require(parent.id).children_failed == 0
    assert store.fail(by_arg[1].id, "boom", worker_id=WORKER, retry=False) is Status.FAILED
    assert store.fail(by_arg[2].id, "boom", worker_id=WORKER, retry=False) is Status.FAILED
    assert store.require(parent.id).status is Status.WAITING_FOR_CHILDREN  # siblings still run
    store.complete(by_arg[0].id, worker_id=WORKER)
    retried = store.claim(WORKER, now=utc_now() + timedelta(hours=1))
    assert retried is not None and retried.id == by_arg[9].id
    store.complete(retried.id, worker_id=WORKER)
    done = store.require(parent.id)
    assert done.status is Status.FAILED and done.progress == 100.0
    assert done.error == f"2 of 4 children failed (first ids: {by_arg[1].id}, {by_arg[2].id})"
    assert tasks_named(store, "wf.summary") == []


def test_all_children_cancelled_cancel_the_parent(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(2))
    for child in children_of(store, parent.id):
        assert store.cancel(child.id) is Status.CANCELLED
    done = store.require(parent.id)
    assert (done.status, done.error, done.children_cancelled) == (Status.CANCELLED, "all children were cancelled", 2)
    assert tasks_named(store, "wf.summary") == []


def test_some_children_cancelled_and_the_rest_completed_completes_the_parent(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(2))
    first, second = children_of(store, parent.id)
    store.cancel(first.id)
    store.claim(WORKER)
    store.complete(second.id, worker_id=WORKER)
    assert store.require(parent.id).status is Status.COMPLETED
    assert len(tasks_named(store, "wf.summary")) == 1


def test_cancelling_a_waiting_parent_cancels_pending_children_and_asks_running_ones_to_stop(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(4))
    running = store.claim_batch(WORKER, limit=2)
    assert store.cancel(parent.id) is Status.WAITING_FOR_CHILDREN  # two children still run
    states = {c.id: (c.status, c.cancel_requested) for c in children_of(store, parent.id)}
    assert sorted(states.values()) == [(Status.CANCELLED, True)] * 2 + [(Status.RUNNING, True)] * 2
    assert store.renew_leases(WORKER, [t.id for t in running], lease_seconds=30) == [t.id for t in running]
    assert store.require(parent.id).progress == 50.0
    assert store.mark_cancelled(running[0].id, worker_id=WORKER)
    assert store.complete(running[1].id, "finished anyway", worker_id=WORKER)  # too late to stop: still counted
    done = store.require(parent.id)
    assert (done.status, done.error, done.children_completed, done.children_cancelled) == (
        Status.CANCELLED,
        "cancelled",
        1,
        3,
    )
    assert tasks_named(store, "wf.summary") == []
    with pytest.raises(InvalidTransition):
        store.cancel(parent.id)


def test_cancelling_a_running_task_that_then_spawns_cancels_its_children_at_once(store: Store) -> None:
    parent_id = store.enqueue("wf.fan_out", [[]]).id
    store.claim(WORKER)
    assert store.cancel(parent_id) is Status.RUNNING  # the task ignores the request and spawns anyway
    store.wait_for_children(parent_id, kids(3), worker_id=WORKER, attempt=1)
    assert [c.status for c in children_of(store, parent_id)] == [Status.CANCELLED] * 3
    assert store.require(parent_id).status is Status.CANCELLED
    assert store.claim(WORKER) is None and tasks_named(store, "wf.summary") == []


def test_cancel_cascades_through_nested_fan_out(store: Store) -> None:
    root = run_to_spawn(store, "wf.nested", [TaskRequest("wf.fan_out") for _ in range(2)])
    middle = claim_all(store)
    for task in middle:
        store.wait_for_children(task.id, kids(2), worker_id=WORKER, attempt=1)
    leaf = store.claim(WORKER)
    assert leaf is not None
    assert store.cancel(root.id) is Status.WAITING_FOR_CHILDREN
    assert store.require(leaf.id).cancel_requested
    assert store.mark_cancelled(leaf.id, worker_id=WORKER)
    every = [root.id, *(t.id for t in middle)]
    assert [store.require(i).status for i in every] == [Status.CANCELLED] * 3
    assert store.stats()["pending"] == 0


def test_nested_fan_out_completes_bottom_up_and_runs_each_continuation_once(store: Store) -> None:
    root = run_to_spawn(store, "wf.nested", [TaskRequest("wf.fan_out") for _ in range(2)], then="wf.other_summary")
    middle = claim_all(store)
    for task in middle:
        store.wait_for_children(task.id, kids(3), worker_id=WORKER, attempt=1)
    leaves = claim_all(store)
    assert len(leaves) == 6
    for leaf in leaves[:-1]:
        store.complete(leaf.id, worker_id=WORKER)
    assert store.require(root.id).progress == 50.0  # one middle task of two finished
    store.complete(leaves[-1].id, worker_id=WORKER)
    assert [store.require(t.id).status for t in (root, *middle)] == [Status.COMPLETED] * 3
    assert sorted(t.args[0] for t in tasks_named(store, "wf.summary")) == sorted(t.id for t in middle)
    assert [t.args for t in tasks_named(store, "wf.other_summary")] == [[root.id]]


def test_empty_fan_out_completes_at_once_and_runs_the_continuation(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", [])
    assert (parent.status, parent.progress, parent.children_total) == (Status.COMPLETED, 100.0, 0)
    assert [t.args for t in tasks_named(store, "wf.summary")] == [[parent.id]]


def test_continuation_given_at_spawn_time_replaces_the_declared_one(store: Store) -> None:
    declared = run_to_spawn(store, "wf.fan_out", kids(1))
    given = run_to_spawn(store, "wf.fan_out", kids(1), then="wf.other_summary")
    undeclared = run_to_spawn(store, "wf.fan_out_then", kids(1))
    for child in claim_all(store):
        store.complete(child.id, worker_id=WORKER)
    assert [t.args for t in tasks_named(store, "wf.summary")] == [[declared.id]]
    assert [t.args for t in tasks_named(store, "wf.other_summary")] == [[given.id]]
    assert store.require(undeclared.id).status is Status.COMPLETED


def test_the_worker_supplies_the_continuation_an_unaware_enqueuer_left_out(store: Store) -> None:
    unaware = Store(store.engine)
    plain = unaware.enqueue("wf.step3", [0]).id
    named = unaware.enqueue("wf.step3", [0], continuation="wf.other_summary").id
    store.claim_batch(WORKER, limit=2)
    store.complete(plain, worker_id=WORKER, continuation="wf.summary")  # what the executor passes: @task(then=)
    store.complete(named, worker_id=WORKER, continuation="wf.summary")
    assert [t.args for t in tasks_named(store, "wf.summary")] == [[plain]]
    assert [t.args for t in tasks_named(store, "wf.other_summary")] == [[named]]  # the row's own choice wins


def test_a_task_without_children_runs_its_declared_continuation_on_completion_only(store: Store) -> None:
    completed = store.enqueue("wf.fan_out", [[]]).id
    failed = store.enqueue("wf.fan_out", [[]], max_retries=0).id
    store.claim_batch(WORKER, limit=2)
    store.complete(completed, worker_id=WORKER)
    store.fail(failed, "boom", worker_id=WORKER)
    assert [t.args for t in tasks_named(store, "wf.summary")] == [[completed]]


def run_pipeline(store: Store, items: int) -> list[Task]:
    """Drive one wf.step1 -> wf.step2 (fans out `items`) -> wf.step3 pipeline; returns the steps in order."""
    step1 = store.claim(WORKER)
    assert step1 is not None and step1.name == "wf.step1"
    store.complete(step1.id, {"items": items, "sleep_ms": 0}, worker_id=WORKER)
    step2 = store.claim(WORKER)
    assert step2 is not None and (step2.name, step2.args) == ("wf.step2", [step1.id])
    plan = store.require(step1.id).result
    children = [TaskRequest("wf.slow_child", [i, plan["sleep_ms"]]) for i in range(plan["items"])]
    store.wait_for_children(step2.id, children, worker_id=WORKER, attempt=1)
    for child in claim_all(store):
        store.complete(child.id, child.args[0], worker_id=WORKER)
    step3 = store.claim(WORKER)
    assert step3 is not None and (step3.name, step3.args) == ("wf.step3", [step2.id])
    store.complete(step3.id, step2.id, worker_id=WORKER)
    assert store.claim(WORKER) is None
    return [store.require(t.id) for t in (step1, step2, step3)]


def test_three_step_pipeline_chains_by_continuations(store: Store) -> None:
    store.enqueue("wf.step1", [5])
    steps = run_pipeline(store, 5)
    assert [t.status for t in steps] == [Status.COMPLETED] * 3
    assert [c.result for c in children_of(store, steps[1].id)] == list(range(5))


def test_a_dedup_key_holds_for_the_whole_pipeline(store: Store) -> None:
    first = store.enqueue("wf.step1", [2], dedup_key="nightly")
    step1 = store.claim(WORKER)
    assert step1 is not None
    store.complete(step1.id, {"items": 2, "sleep_ms": 0}, worker_id=WORKER)
    step2 = store.require(store.list(name="wf.step2")[0].id)
    assert step2.dedup_key == "nightly"  # the continuation inherits the key in the same transaction
    again = store.enqueue("wf.step1", [2], dedup_key="nightly")
    assert again.deduplicated and again.id == step2.id
    store.claim(WORKER)
    store.wait_for_children(step2.id, kids(2), worker_id=WORKER, attempt=1)
    assert store.enqueue("wf.step1", [2], dedup_key="nightly").id == step2.id  # waiting for children holds it too
    for child in claim_all(store):
        store.complete(child.id, worker_id=WORKER)
    step3 = store.claim(WORKER)
    assert step3 is not None and step3.name == "wf.step3" and step3.dedup_key == "nightly"
    assert store.enqueue("wf.step1", [2], dedup_key="nightly").id == step3.id
    store.complete(step3.id, worker_id=WORKER)
    fresh = store.enqueue("wf.step1", [2], dedup_key="nightly")
    assert not fresh.deduplicated and fresh.id not in (first.id, step2.id, step3.id)


def test_a_failed_pipeline_releases_its_dedup_key(store: Store) -> None:
    store.enqueue("wf.step1", [1], dedup_key="k", max_retries=0)
    step1 = store.claim(WORKER)
    assert step1 is not None
    store.fail(step1.id, "boom", worker_id=WORKER)
    assert not store.enqueue("wf.step1", [2], dedup_key="k").deduplicated


def test_retrying_a_failed_child_after_its_parent_finished_changes_nothing_upstream(store: Store) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(2))
    first, second = claim_all(store)
    store.fail(first.id, "boom", worker_id=WORKER, retry=False)
    store.complete(second.id, worker_id=WORKER)
    assert store.require(parent.id).status is Status.FAILED
    store.retry(first.id)
    again = store.claim(WORKER)
    assert again is not None and again.id == first.id
    assert store.complete(first.id, worker_id=WORKER)
    after = store.require(parent.id)
    assert (after.status, after.progress, after.children_failed, after.children_completed) == (
        Status.FAILED,
        100.0,
        1,
        1,
    )
    assert tasks_named(store, "wf.summary") == []


def taskq_cli(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "taskq", "--db", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TASKQ_DATABASE_URL": ""},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_show_counts_children_by_status_and_list_filters_by_parent(store: Store, database_url: str) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(4))
    store.enqueue("wf.child", [99])  # not a child: must not be listed
    first, second, _third, _fourth = children_of(store, parent.id)
    store.cancel(first.id)
    store.claim(WORKER)
    store.fail(second.id, "boom", worker_id=WORKER, retry=False)
    shown = json.loads(taskq_cli(database_url, "show", str(parent.id), "--json"))
    assert shown["children_by_status"] == {
        "pending": 2,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 1,
        "cancelled": 1,
    }
    assert shown["progress"] == 50.0
    assert re.search(r"children\W+pending: 2, failed: 1, cancelled: 1", taskq_cli(database_url, "show", str(parent.id)))
    listed = json.loads(taskq_cli(database_url, "list", "--parent", str(parent.id), "--json"))
    assert sorted(t["id"] for t in listed) == [c.id for c in children_of(store, parent.id)]


def count_rows(store: Store) -> int:
    return int(store.read(lambda conn: conn.execute(select(func.count()).select_from(tasks)).scalar_one()))


def test_purge_removes_finished_children_with_their_parent_and_never_those_of_an_active_one(store: Store) -> None:
    long_ago = utc_now() - timedelta(days=30)
    finished = run_to_spawn(store, "wf.fan_out_then", kids(3), then="wf.other_summary")
    active = run_to_spawn(store, "wf.fan_out_then", kids(2), then="wf.other_summary")
    by_parent: dict[int | None, list[Task]] = {}
    for child in claim_all(store):
        by_parent.setdefault(child.parent_id, []).append(child)
    for child in by_parent[finished.id]:
        store.complete(child.id, worker_id=WORKER, now=long_ago)
    store.complete(by_parent[active.id][0].id, worker_id=WORKER, now=long_ago)  # an old child of a live parent
    assert store.require(finished.id).status is Status.COMPLETED
    before = count_rows(store)  # 2 parents, 5 children, 1 continuation
    assert before == 8
    assert store.purge(timedelta(days=7)) == 1  # the parent; its children go by ON DELETE CASCADE
    assert store.get(finished.id) is None
    assert children_of(store, finished.id) == []
    assert count_rows(store) == before - 4
    assert len(children_of(store, active.id)) == 2
    if store.dialect.name == "sqlite":  # the cascade above needs it on every pooled connection
        assert store.read(lambda conn: conn.execute(text("PRAGMA foreign_keys")).scalar_one()) == 1


def test_purge_keeps_a_finished_parent_while_a_retried_child_is_active(store: Store) -> None:
    long_ago = utc_now() - timedelta(days=30)
    parent = run_to_spawn(store, "wf.fan_out", kids(1))
    (child,) = claim_all(store)
    store.fail(child.id, "boom", worker_id=WORKER, retry=False, now=long_ago)
    store.retry(child.id)
    assert store.purge(timedelta(days=7)) == 0
    assert store.require(child.id).status is Status.PENDING and store.get(parent.id) is not None


def _complete_children(url: str, ids: list[int], barrier: Any, results: Any) -> None:
    store = taskq.open_store(url, upgrade=False)
    barrier.wait()
    results.put(sum(store.complete(task_id, task_id, worker_id=WORKER) for task_id in ids))


def test_children_finishing_at_once_in_four_processes_complete_the_parent_exactly_once(
    store: Store, database_url: str
) -> None:
    parent = run_to_spawn(store, "wf.fan_out", kids(400))
    ids = [t.id for t in claim_all(store)]
    processes = 4
    barrier, results = SPAWN.Barrier(processes), SPAWN.Queue()
    runners = [
        SPAWN.Process(target=_complete_children, args=(database_url, ids[i::processes], barrier, results))
        for i in range(processes)
    ]
    for runner in runners:
        runner.start()
    assert sum(results.get(timeout=120) for _ in runners) == 400
    for runner in runners:
        runner.join(timeout=30)
        assert runner.exitcode == 0
    done = store.require(parent.id)
    assert (done.status, done.children_completed, done.progress) == (Status.COMPLETED, 400, 100.0)
    assert [t.args for t in tasks_named(store, "wf.summary")] == [[parent.id]]


def test_a_child_whose_arguments_do_not_fit_fails_the_spawn_naming_the_argument(store: Store) -> None:
    parent_id = store.enqueue("wf.fan_out", [[]]).id
    task = store.claim(WORKER)
    assert task is not None and task.id == parent_id
    with pytest.raises(TaskqError, match="missing a required argument: 'index'"):
        TaskContext(store, task, WORKER).spawn_children([("wf.child", [1]), "wf.child"])
    assert store.require(parent_id).status is Status.RUNNING and not children_of(store, parent_id)
