"""Issue 19 points 3 and 4, the store's part, on both dialects: a row that cannot be read back (args nested
past the depth limit, or not of its column's shape) is read with a placeholder by every query, and a claim
fails it for good instead of handing it out, while the other rows of the claim stand; a result the database
refuses fails its task alone, not the batch of successes recorded with it.

The rows are written with SQL (tests/support/poison_rows.py): enqueue refuses them."""

from __future__ import annotations

import pytest
from poison_rows import POISON_DEPTH, insert_raw, nested_text
from sqlalchemy import text

from taskq.json_limits import MAX_JSON_DEPTH, Undecodable
from taskq.model import Completion, Enqueued, SettledCounts, Status, TaskFilter, TaskqError
from taskq.store import Store

WORKER = "host:1:worker-1:boot:1"


def test_a_row_nested_too_deep_is_read_with_a_placeholder_by_every_query(store: Store) -> None:
    poison = insert_raw(store, args=nested_text(POISON_DEPTH))
    task = store.require(poison)
    assert isinstance(task.args, Undecodable)
    assert task.args == f"<undecodable: nested {POISON_DEPTH} levels deep (taskq keeps at most {MAX_JSON_DEPTH})>"
    assert task.unreadable is not None and "args" in task.unreadable
    assert store.get(poison) == task
    assert [t.id for t in store.list(status=Status.PENDING)] == [poison]
    assert [t.id for t in store.page(TaskFilter(args_contains="[[[")).tasks] == [poison]
    assert task.to_dict()["args"] == str(task.args)


@pytest.mark.parametrize(
    ("column", "stored", "shown"),
    [
        ("args", '{"a": 1}', "<undecodable: a JSON object, not an array>"),
        ("kwargs", "[1, 2]", "<undecodable: a JSON array, not an object>"),
        ("kwargs", nested_text(MAX_JSON_DEPTH + 1), f"<undecodable: nested {MAX_JSON_DEPTH + 1} levels deep"),
    ],
)
def test_arguments_of_the_wrong_shape_or_depth_are_unreadable(
    store: Store, column: str, stored: str, shown: str
) -> None:
    task = store.require(insert_raw(store, **{column: stored}))
    assert str(getattr(task, column)).startswith(shown)
    assert task.unreadable is not None and task.unreadable.startswith(f"its {column} cannot be read back")


def test_a_claim_fails_the_unreadable_row_for_good_and_hands_out_the_others(store: Store) -> None:
    ordinary = [store.enqueue("taskq.echo", [n], priority=1).id for n in range(3)]
    poison = insert_raw(store, args=nested_text(POISON_DEPTH), priority=5)  # first in claim order
    claimed = store.claim_batch(WORKER, limit=10)
    assert sorted(task.id for task in claimed) == ordinary
    failed = store.require(poison)
    assert failed.status is Status.FAILED and failed.attempts == 1 and failed.finished_at is not None
    assert failed.error == (
        f"task {poison} (taskq.echo) cannot run: its args cannot be read back: args is nested {POISON_DEPTH} levels"
        f" deep (taskq keeps at most {MAX_JSON_DEPTH})"
    )


def test_a_claim_that_met_only_unreadable_rows_looks_again(store: Store) -> None:
    poisons = [insert_raw(store, args=nested_text(POISON_DEPTH), priority=5) for _ in range(2)]
    ordinary = store.enqueue("taskq.echo", [1]).id
    task = store.claim(WORKER)  # batches of one: the first two claims each meet a poison row
    assert task is not None and task.id == ordinary
    assert {store.require(p).status for p in poisons} == {Status.FAILED}


def test_finish_and_claim_fails_unreadable_rows_and_records_the_successes(store: Store) -> None:
    running = store.enqueue("taskq.echo", [0]).id
    first = store.claim(WORKER)
    assert first is not None and first.id == running
    poison = insert_raw(store, args=nested_text(POISON_DEPTH), priority=5)
    ordinary = store.enqueue("taskq.echo", [1]).id
    done = Completion(running, first.attempts, {"ok": True}, first.run_after, has_follow_up=False)
    recorded, claimed = store.finish_and_claim(WORKER, [done], limit=1)
    assert recorded == [running] and [task.id for task in claimed] == [ordinary]
    assert store.require(running).result == {"ok": True}
    assert store.require(poison).status is Status.FAILED


def test_a_stored_result_too_deep_to_read_shows_a_placeholder_and_result_raises(store: Store) -> None:
    task_id = insert_raw(store, status="completed", result=nested_text(960))
    task = store.require(task_id)
    assert isinstance(task.result, Undecodable)
    assert task.to_dict()["result"].startswith("<undecodable: nested 960 levels deep")
    with pytest.raises(TaskqError, match=f"task {task_id}'s result cannot be read back: result is nested 960 levels"):
        Enqueued(task_id, store=store).result()


def refuse_results_containing(store: Store, marker: str) -> None:
    """Make the database itself refuse a result: a constraint on PostgreSQL, a trigger on SQLite (which
    cannot add a CHECK to an existing table)."""
    with store.engine.connect() as connection:
        if store.dialect.name == "postgresql":
            connection.execute(
                text(f"ALTER TABLE tasks ADD CONSTRAINT refuse_marker CHECK (result::text NOT LIKE '%{marker}%')")
            )
        else:
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse_marker BEFORE UPDATE OF result ON tasks WHEN NEW.result LIKE '%{marker}%'"
                    " BEGIN SELECT RAISE(ABORT, 'result refused by the test trigger'); END"
                )
            )
        connection.commit()


def test_a_result_the_database_refuses_fails_its_task_alone(store: Store) -> None:
    refuse_results_containing(store, "refuse-me")
    ids = [store.enqueue("taskq.echo", [n]).id for n in range(3)]
    claimed = store.claim_batch(WORKER, limit=3)
    results = {ids[0]: "fine", ids[1]: "refuse-me", ids[2]: ["also fine"]}
    completions = [
        Completion(task.id, task.attempts, results[task.id], task.run_after, has_follow_up=False) for task in claimed
    ]
    later = store.enqueue("taskq.echo", [9]).id
    recorded, next_batch = store.finish_and_claim(WORKER, completions, limit=1)
    assert sorted(recorded) == sorted(ids)  # each one's outcome is recorded: two successes, one failure
    assert [task.id for task in next_batch] == [later]
    assert [store.require(i).status for i in ids] == [Status.COMPLETED, Status.FAILED, Status.COMPLETED]
    refused = store.require(ids[1])
    assert refused.error is not None and refused.error.startswith("the database refused the task's result: ")
    assert refused.attempts == 1 and refused.result is None


def test_a_dead_workers_success_the_database_refuses_fails_alone(store: Store) -> None:
    refuse_results_containing(store, "refuse-me")
    ids = [store.enqueue("taskq.echo", [n]).id for n in range(3)]
    claimed = {task.id: task for task in store.claim_batch(WORKER, limit=3)}
    finished = [
        Completion(task_id, claimed[task_id].attempts, result, claimed[task_id].run_after, has_follow_up=False)
        for task_id, result in ((ids[0], "fine"), (ids[1], "refuse-me"))
    ]
    counts = store.settle_dead_worker(WORKER, finished=finished)
    assert counts == SettledCounts(recorded=2, interrupted=0, released=1)
    assert [store.require(i).status for i in ids] == [Status.COMPLETED, Status.FAILED, Status.PENDING]
    assert (store.require(ids[1]).error or "").startswith("the database refused the task's result: ")
