"""Issue 19 point 4 in this process: a result that cannot be stored (nested too deep, not JSON, refused by the
database) is its task's failure, never an exception out of the executor (which killed the worker: a result
10,000 deep read "worker lost: exit code 1"); and no line on the status pipe can kill the supervisor (a
deferred success ~960 deep was a RecursionError in its decoder). Real pools: tests/process/test_poison_pool.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from poison_rows import nested, nested_text
from sqlalchemy import text

import taskq
from taskq import protocol
from taskq.context import TaskContext
from taskq.executor import Call, deferrable, execute, settle
from taskq.json_limits import MAX_JSON_DEPTH
from taskq.model import Completion, Interruption, Status
from taskq.registry import lookup
from taskq.store import Store
from taskq.supervision import WorkerLedger

WORKER = "host:1:worker-1:boot:1"
AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@taskq.task(name="unit.poison.deep", max_retries=3)
def deep(depth: int) -> Any:
    return nested(depth)


@taskq.task(name="unit.poison.value", max_retries=3)
def value(result: Any) -> Any:
    return result


def run(store: Store, name: str, args: list[Any], **kwargs: Any) -> Any:
    store.enqueue(name, args)
    task = store.claim(WORKER)
    assert task is not None
    outcome = execute(store, task, WORKER, TaskContext(store, task, WORKER), **kwargs)
    return outcome, store.require(task.id)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 960, 10_000])
@pytest.mark.parametrize("deferred", [False, True])
def test_a_result_too_deep_fails_its_task_for_good(sqlite_store: Store, depth: int, deferred: bool) -> None:
    handed: list[Completion] = []
    outcome, row = run(sqlite_store, "unit.poison.deep", [depth], defer_success=handed.append if deferred else None)
    assert outcome.status is Status.FAILED and not outcome.deferred and handed == []
    assert row.status is Status.FAILED and row.attempts == 1  # max_retries=3: not retried, it would return the same
    # "nested N levels deep", or "nested too deep to encode" where json.dumps met this stack's recursion limit
    assert (row.error or "").startswith("task returned a value that cannot be stored: result is nested")
    assert row.error.endswith(f"(taskq keeps at most {MAX_JSON_DEPTH})") or row.error.endswith(
        f"(taskq keeps at most {MAX_JSON_DEPTH} levels)"
    )


def test_a_result_at_the_limit_is_stored(sqlite_store: Store) -> None:
    outcome, row = run(sqlite_store, "unit.poison.deep", [MAX_JSON_DEPTH])
    assert outcome.status is Status.COMPLETED and row.result == nested(MAX_JSON_DEPTH)


def test_deferrable_leaves_a_result_too_deep_to_settle(sqlite_store: Store) -> None:
    sqlite_store.enqueue("unit.poison.deep", [10_000])
    task = sqlite_store.claim(WORKER)
    assert task is not None
    context = TaskContext(sqlite_store, task, WORKER)
    assert deferrable(task, context, lookup(task.name), Call(nested(10_000))) is None
    outcome = settle(sqlite_store, task, WORKER, context, lookup(task.name), Call(nested(10_000)))
    assert outcome.status is Status.FAILED


def test_a_result_the_database_refuses_fails_its_task(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE OF result ON tasks WHEN NEW.result LIKE '%refuse-me%'"
                " BEGIN SELECT RAISE(ABORT, 'result refused by the test trigger'); END"
            )
        )
        connection.commit()
    big = "refuse-me" + "x" * 40_000  # past the pipe's deferral limit: stored at once, by store.complete
    outcome, row = run(sqlite_store, "unit.poison.value", [big], defer_success=lambda _completion: None)
    assert outcome.status is Status.FAILED and row.status is Status.FAILED and row.attempts == 1
    assert row.error == ("the database refused the task's result: IntegrityError: result refused by the test trigger")


# -- the status pipe ---------------------------------------------------------------------------------------


def done_line(task_id: int, result_text: str) -> bytes:
    line = protocol.encode(protocol.Deferred(Completion(task_id, 1, "R", AT, False, None, AT)))
    return line.rstrip(b"\n").replace(b'"r":"R"', b'"r":' + result_text.encode())


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 960, 100_000])
def test_a_success_line_too_deep_is_unreadable_never_an_exception(depth: int) -> None:
    message = protocol.decode(done_line(7, nested_text(depth)))
    assert message == protocol.Unreadable(
        "done", 7, f"is nested {depth + 1} levels deep (taskq keeps at most {MAX_JSON_DEPTH + 1})"
    )


def test_a_success_at_the_limit_crosses_the_pipe() -> None:
    deferred = protocol.Deferred(Completion(7, 1, nested(MAX_JSON_DEPTH), AT, False, None, AT))
    assert protocol.decode(protocol.encode(deferred)) == deferred


@pytest.mark.parametrize("line", [b"not json", b'{"e":"start","id":3}', b'{"e":"done","id":3,"a":1}', b"[1]", b"\xff"])
def test_any_other_line_that_cannot_be_read_is_unreadable(line: bytes) -> None:
    assert isinstance(protocol.decode(line), protocol.Unreadable)


def test_the_supervisor_settles_an_unreadable_success_as_a_lost_workers_task() -> None:
    book = WorkerLedger("worker-1", cancel_grace=10.0)
    for message in (protocol.Started(7, 1, 5.0), protocol.Started(8, 1, None)):
        book.apply(message, 100.0)
    book.apply(protocol.decode(done_line(7, nested_text(960))), 101.0)
    assert set(book.running) == {8}  # it returned: no timeout kill for it any more
    assert book.overdue(200.0) == []
    settled = {task.task_id: task for task in book.settlement(1)}
    assert settled[7].how is Interruption.FAIL and settled[7].attempt == 1
    assert settled[7].message == (
        "worker lost: worker-1 exit code 1; its result could not be read back: is nested 961 levels deep"
        f" (taskq keeps at most {MAX_JSON_DEPTH + 1})"
    )
    book.apply(protocol.Recorded((7,)), 102.0)  # the worker recorded it after all: nothing left to settle
    assert [task.task_id for task in book.settlement(1)] == [8]


def test_an_unreadable_success_kept_undecoded_is_settled_the_same_when_its_worker_dies() -> None:
    book = WorkerLedger("worker-1", cancel_grace=10.0)
    for message in (protocol.Started(7, 1, 5.0), protocol.Started(8, 1, None)):
        book.apply(message, 100.0)
    book.apply(protocol.read(done_line(7, nested_text(960))), 101.0)
    assert set(book.running) == {8}  # it returned: no timeout kill for it any more
    assert book.overdue(200.0) == []
    [unreadable] = book.decode_deferred()
    assert unreadable.kind == "done" and unreadable.task_id == 7 and "961 levels deep" in unreadable.reason
    settled = {task.task_id: task for task in book.settlement(1)}
    assert settled[7].how is Interruption.FAIL and settled[7].attempt == 1
    assert settled[7].message.endswith(f"its result could not be read back: {unreadable.reason}")
    assert book.deferred == {}


def test_a_success_kept_undecoded_is_recorded_from_its_line_when_its_worker_dies() -> None:
    book = WorkerLedger("worker-1", cancel_grace=10.0)
    done = protocol.Deferred(Completion(7, 1, nested(MAX_JSON_DEPTH), AT, False, None, AT))
    for message in (protocol.Started(7, 1, 5.0), protocol.read(protocol.encode(done).rstrip(b"\n"))):
        book.apply(message, 100.0)
    assert book.running == {} and book.settlement(-9) == [] and book.deferred == {7: done.completion}


def test_encoded_lines_are_json_the_supervisor_reads() -> None:
    line = protocol.encode(protocol.Deferred(Completion(7, 1, nested(MAX_JSON_DEPTH), AT, False, None, AT)))
    assert json.loads(line)["e"] == "done"
