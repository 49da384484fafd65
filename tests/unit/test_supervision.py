"""The supervisor's bookkeeping of one worker, driven message by message with an explicit clock: which task
is executing, when its worker must be killed and why, and how each task is settled when the worker dies."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

from taskq import protocol
from taskq.model import Completion, Interrupted, Interruption
from taskq.protocol import KillReason
from taskq.supervision import Overdue, WorkerLedger, describe_exit

GRACE = 10.0
SIGKILLED = -signal.SIGKILL


def ledger(*messages: protocol.Message, at: float = 100.0) -> WorkerLedger:
    book = WorkerLedger("worker-1", cancel_grace=GRACE)
    for message in messages:
        book.apply(message, at)
    return book


def completion(task_id: int) -> Completion:
    return Completion(task_id, 1, 42, datetime(2024, 1, 1, tzinfo=UTC), False, None)


def test_messages_track_what_is_executing_and_what_is_deferred() -> None:
    book = ledger(protocol.Ready(), protocol.Started(1, 1, None), protocol.Started(2, 1, None))
    assert book.ready and set(book.running) == {1, 2}
    book.apply(protocol.Ended(1), 101.0)
    book.apply(protocol.Deferred(completion(2)), 101.0)
    assert book.running == {} and set(book.deferred) == {2}
    book.apply(protocol.Recorded((2,)), 102.0)
    assert book.deferred == {}


def test_messages_survive_the_pipe_unchanged() -> None:
    started = protocol.Started(7, 3, 1.5, worker_enforces_timeout=True)
    assert protocol.decode(protocol.encode(started)) == started
    deferred = protocol.Deferred(completion(7))
    assert protocol.decode(protocol.encode(deferred)) == deferred


def test_a_task_past_its_timeout_is_overdue_and_a_kill_settles_it_as_a_timeout() -> None:
    book = ledger(protocol.Started(1, 2, 5.0))
    assert book.overdue(105.0) == []
    assert book.overdue(105.1) == [Overdue(1, KillReason.TIMEOUT, 5.0)]
    book.record_kill(KillReason.TIMEOUT, 1)
    assert book.overdue(200.0) == [], "a killed worker is not killed again"
    assert book.settlement(SIGKILLED) == [
        Interrupted(1, 2, Interruption.FAIL, protocol.timeout_message(5.0)),
    ]


def test_a_coroutine_the_worker_times_out_itself_is_killed_only_after_the_cancel_grace() -> None:
    book = ledger(protocol.Started(1, 1, 5.0, worker_enforces_timeout=True))
    assert book.overdue(105.0 + GRACE) == []
    assert [o.reason for o in book.overdue(105.1 + GRACE)] == [KillReason.TIMEOUT]


def test_a_task_ignoring_its_cancellation_is_killed_after_the_grace_and_settled_cancelled() -> None:
    book = ledger(protocol.Started(1, 1, None))
    book.apply(protocol.CancelSeen(1), 110.0)
    book.apply(protocol.CancelSeen(99), 110.0)  # ended meanwhile: nothing to watch
    assert book.overdue(110.0 + GRACE) == []
    assert book.overdue(110.1 + GRACE) == [Overdue(1, KillReason.CANCEL, None)]
    book.record_kill(KillReason.CANCEL, 1)
    [settled] = book.settlement(SIGKILLED)
    assert settled.how is Interruption.CANCEL


def test_tasks_beside_the_culprit_are_settled_as_a_lost_workers_naming_the_culprit() -> None:
    book = ledger(protocol.Started(1, 1, 5.0), protocol.Started(2, 1, None))
    book.record_kill(KillReason.TIMEOUT, 1)
    culprit, neighbour = book.settlement(SIGKILLED)
    assert culprit.how is Interruption.FAIL and culprit.message.startswith("TimeoutError")
    assert neighbour == Interrupted(
        2, 1, Interruption.FAIL, "worker lost: worker-1 killed by SIGKILL (killed for the timeout of task 1)"
    )


def test_a_shutdown_kill_releases_every_executing_task() -> None:
    book = ledger(protocol.Started(1, 1, None), protocol.Started(2, 3, None))
    book.record_kill(KillReason.SHUTDOWN)
    assert [(t.task_id, t.attempt, t.how) for t in book.settlement(SIGKILLED)] == [
        (1, 1, Interruption.RELEASE),
        (2, 3, Interruption.RELEASE),
    ]


def test_a_kill_keeps_the_first_reason_of_a_task() -> None:
    book = ledger(protocol.Started(1, 1, 5.0))
    book.record_kill(KillReason.TIMEOUT, 1)
    book.record_kill(KillReason.SHUTDOWN)
    assert book.settlement(SIGKILLED)[0].how is Interruption.FAIL


def test_a_worker_that_died_on_its_own_loses_its_task_with_its_exit_in_the_message() -> None:
    book = ledger(protocol.Started(1, 1, None), protocol.Started(2, 1, None))
    book.apply(protocol.Ended(2), 101.0)
    assert book.settlement(3) == [Interrupted(1, 1, Interruption.FAIL, "worker lost: worker-1 exit code 3")]
    assert ledger().settlement(0) == []


def test_exits_are_described_as_subprocess_reports_them() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_exit(-200) == "killed by signal 200"
