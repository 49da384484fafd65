"""The lifecycle's pure parts: the transition table, the retry decision and a parent's outcome. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskq.lifecycle import (
    CANCELLABLE,
    DEFAULT_POLICY,
    PASS_ON_DELAY_MAX_SECONDS,
    PASS_ON_TRIES,
    RETRYABLE,
    TRANSITIONS,
    ChildCounts,
    Event,
    Failure,
    FailureKind,
    RetryPolicy,
    decide_failure,
    decide_pass_on,
    events_between,
    parent_error,
    parent_outcome,
    pass_on_delay,
    passed_on_tries,
    sources,
    target,
    targets,
)
from taskq.model import ACTIVE_STATUSES, STATUS_CLASSES, TERMINAL_STATUSES, Status

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
P, R, W = Status.PENDING, Status.RUNNING, Status.WAITING_FOR_CHILDREN
C, F, X = Status.COMPLETED, Status.FAILED, Status.CANCELLED

# -- the transition table -------------------------------------------------------------------------------


def test_every_event_has_a_row_and_every_row_is_unique() -> None:
    assert {t.event for t in TRANSITIONS} == set(Event)
    assert len(set(TRANSITIONS)) == len(TRANSITIONS)


def test_the_status_changes_are_exactly_these() -> None:
    changes = {(t.source, t.target, t.event) for t in TRANSITIONS if t.source is not t.target}
    assert changes == {
        (P, R, Event.CLAIM),
        (R, P, Event.RELEASE),
        (R, C, Event.COMPLETE),
        (R, P, Event.BACK_OFF),
        (R, F, Event.FAIL),
        (R, X, Event.STOP),
        (R, W, Event.SPAWN),
        (W, C, Event.LAST_CHILD),
        (W, F, Event.LAST_CHILD),
        (W, X, Event.LAST_CHILD),
        (P, X, Event.CANCEL),
        (F, P, Event.RETRY),
        (X, P, Event.RETRY),
        (R, P, Event.PASS_ON),
    }


def test_finished_tasks_leave_their_status_only_through_the_retry_command() -> None:
    for transition in TRANSITIONS:
        if transition.source in TERMINAL_STATUSES:
            assert transition.event is Event.RETRY and transition.target is P


def test_every_status_is_reachable_from_pending_and_every_active_one_can_finish() -> None:
    reached, frontier = {P}, [P]
    while frontier:
        status = frontier.pop()
        for transition in TRANSITIONS:
            if transition.source is status and transition.target not in reached:
                reached.add(transition.target)
                frontier.append(transition.target)
    assert reached == set(Status)
    for status in ACTIVE_STATUSES:
        assert any(t.source is status and t.target in TERMINAL_STATUSES for t in TRANSITIONS), status


def test_events_applied_by_a_claims_holder_start_from_running() -> None:
    holders = (Event.COMPLETE, Event.FAIL, Event.BACK_OFF, Event.STOP, Event.SPAWN, Event.START, Event.RELEASE)
    for event in (*holders, Event.PASS_ON):
        assert sources(event) == (R,)


def test_sources_are_sorted_so_statements_built_from_them_never_vary() -> None:
    assert sources(Event.RETRY) == (X, F)
    assert sources(Event.REQUEST_CANCEL) == (R, W)


def test_target_of_an_event_with_one_and_targets_of_the_last_child() -> None:
    assert target(Event.CLAIM) is R
    assert target(Event.RETRY) is P
    assert set(targets(Event.LAST_CHILD)) == {C, F, X}
    with pytest.raises(ValueError):
        target(Event.LAST_CHILD)


def test_events_between_names_what_makes_a_change_legal() -> None:
    assert events_between(R, P) == (Event.RELEASE, Event.BACK_OFF, Event.PASS_ON)
    assert events_between(C, P) == ()
    assert events_between(P, F) == ()


# -- the retry decision ----------------------------------------------------------------------------------


def decide(failure: Failure, policy: RetryPolicy = DEFAULT_POLICY, **facts: object):  # type: ignore[no-untyped-def]
    given = {"attempts": 1, "max_retries": 3, "cancel_requested": False, "now": NOW, "draw": 0.0, **facts}
    return decide_failure(failure, policy, **given)  # type: ignore[arg-type]


def test_an_error_with_retries_left_backs_off_and_the_last_one_fails() -> None:
    error = Failure(FailureKind.ERROR, "boom")
    assert [decide(error, attempts=n).retry_at for n in (1, 2, 3)] == [
        NOW + timedelta(seconds=2),
        NOW + timedelta(seconds=4),
        NOW + timedelta(seconds=8),
    ]
    assert decide(error, attempts=1).event is Event.BACK_OFF
    last = decide(error, attempts=4)
    assert (last.retry_at, last.error, last.event) == (None, "boom", Event.FAIL)


def test_max_retries_zero_fails_the_first_error() -> None:
    assert decide(Failure(FailureKind.ERROR, "x"), max_retries=0).event is Event.FAIL


def test_a_requested_cancellation_or_a_permanent_failure_is_never_retried() -> None:
    assert decide(Failure(FailureKind.ERROR, "x"), cancel_requested=True).event is Event.FAIL
    assert decide(Failure(FailureKind.PERMANENT, "x"), max_retries=99).event is Event.FAIL


def test_a_requested_retry_keeps_the_error_and_fails_once_out_of_retries() -> None:
    asked = Failure(FailureKind.RETRY, "later", delay=30)
    again = decide(asked)
    assert (again.retry_at, again.error) == (NOW + timedelta(seconds=30), None)
    assert again.log_entry["retry"] is True
    out = decide(asked, attempts=4)
    assert out.retry_at is None and "out of retries (max_retries=3)" in (out.error or "")
    cancelled = decide(asked, cancel_requested=True)
    assert cancelled.retry_at is None and "cancel requested" in (cancelled.error or "")


def test_a_requested_retry_without_delay_takes_the_backoff_with_its_jitter() -> None:
    policy = RetryPolicy(backoff=10, jitter=True)
    assert decide(Failure(FailureKind.RETRY, ""), policy, draw=0.5).retry_at == NOW + timedelta(seconds=7.5)


def test_the_log_entry_records_every_attempt() -> None:
    assert decide(Failure(FailureKind.ERROR, "e"), attempts=2).log_entry == {
        "attempt": 2,
        "at": NOW.isoformat(),
        "error": "e",
    }


# -- a task its worker does not know ------------------------------------------------------------------------


def pass_ons(decisions: int) -> list[dict[str, object]]:
    """The error_log of a task passed on `decisions` times in a row, each entry as decide_pass_on wrote it."""
    log: list[dict[str, object]] = []
    for _ in range(decisions):
        log.append(decide_pass_on("app.new", log, attempt=1, why="w1 does not know it", now=NOW).log_entry)
    return log


def test_a_pass_on_comes_back_after_a_delay_that_doubles_from_1_s_without_an_error() -> None:
    log: list[dict[str, object]] = []
    delays = []
    for tries in range(1, PASS_ON_TRIES):
        decision = decide_pass_on("app.new", log, attempt=1, why="host-b:7:worker-1:b:1 does not know it", now=NOW)
        assert decision.event is Event.PASS_ON and decision.error is None and decision.tries == tries
        assert decision.retry_at is not None
        delays.append((decision.retry_at - NOW).total_seconds())
        entry = decision.log_entry
        assert entry["passed_on"] is True and entry["attempt"] == 1 and entry["at"] == NOW.isoformat()
        assert f"passed on ({tries} of {PASS_ON_TRIES}): host-b:7:worker-1:b:1 does not know it" in str(entry["error"])
        log.append(entry)
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, PASS_ON_DELAY_MAX_SECONDS]
    assert pass_on_delay(10_000) == PASS_ON_DELAY_MAX_SECONDS  # no float overflow


def test_the_last_try_fails_the_task_naming_the_name_the_tries_and_why() -> None:
    decision = decide_pass_on("app.new", pass_ons(PASS_ON_TRIES - 1), attempt=1, why="w1 does not know it", now=NOW)
    assert decision.event is Event.FAIL and decision.retry_at is None
    assert decision.error == f"no worker knows task 'app.new' after {PASS_ON_TRIES} tries: w1 does not know it"
    assert decision.log_entry == {"attempt": 1, "at": NOW.isoformat(), "error": decision.error}
    assert decide_pass_on("app.new", [], attempt=1, why="w", now=NOW, limit=1).event is Event.FAIL


def test_tries_count_the_pass_ons_since_the_task_last_ran_or_failed() -> None:
    assert passed_on_tries(None) == passed_on_tries([]) == 0
    assert passed_on_tries(pass_ons(3)) == 3
    ran_and_failed = {"attempt": 1, "at": NOW.isoformat(), "error": "ValueError: boom"}
    assert passed_on_tries([*pass_ons(5), ran_and_failed]) == 0  # a worker knew it meanwhile
    assert passed_on_tries([*pass_ons(5), ran_and_failed, *pass_ons(2)]) == 2
    asked = {"attempt": 1, "at": NOW.isoformat(), "retry": True, "error": "retry requested"}
    assert passed_on_tries([*pass_ons(4), asked]) == 0
    # After the failure that ends a run of pass-ons (and a `taskq retry`), the count starts again.
    failed = decide_pass_on("app.new", pass_ons(PASS_ON_TRIES - 1), attempt=1, why="w", now=NOW).log_entry
    assert passed_on_tries([*pass_ons(PASS_ON_TRIES - 1), failed]) == 0


def test_every_pass_on_of_a_task_fits_in_its_error_log() -> None:
    from taskq.store.base import ERROR_LOG_LIMIT

    assert PASS_ON_TRIES <= ERROR_LOG_LIMIT  # the count is read back from the error_log's last entries


# -- a parent's outcome ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("children", "cancel_requested", "outcome"),
    [
        (ChildCounts(3, completed=3), False, C),
        (ChildCounts(3, completed=2, failed=1), False, F),
        (ChildCounts(3, failed=1, cancelled=2), True, F),  # a failure outranks the cancellation
        (ChildCounts(3, cancelled=3), False, X),
        (ChildCounts(3, completed=1, cancelled=2), False, C),  # some cancelled, none failed: completed
        (ChildCounts(3, completed=3), True, X),  # cancelled while waiting
        (ChildCounts(0), False, C),  # spawned none
        (ChildCounts(0), True, X),
    ],
)
def test_parent_outcome_from_child_counts(children: ChildCounts, cancel_requested: bool, outcome: Status) -> None:
    assert children.all_finished
    assert parent_outcome(children, cancel_requested=cancel_requested) is outcome


def test_parent_error_names_the_failed_children_or_why_it_was_cancelled() -> None:
    failed = ChildCounts(5, completed=3, failed=2)
    assert (
        parent_error(F, failed, cancel_requested=False, failed_ids=[7, 9]) == "2 of 5 children failed (first ids: 7, 9)"
    )
    assert parent_error(X, ChildCounts(2, cancelled=2), cancel_requested=False) == "all children were cancelled"
    assert parent_error(X, ChildCounts(2, completed=2), cancel_requested=True) == "cancelled"
    assert parent_error(C, ChildCounts(2, completed=2), cancel_requested=False) is None


def test_child_counts_from_a_row_and_when_all_have_finished() -> None:
    row = {"children_total": 4, "children_completed": 1, "children_failed": 1, "children_cancelled": 1}
    counts = ChildCounts.of(row)
    assert counts == ChildCounts(4, 1, 1, 1) and not counts.all_finished
    assert ChildCounts(4, 2, 1, 1).all_finished


def test_what_an_operator_may_do_follows_the_transition_table() -> None:
    # `taskq cancel --all` and the dashboard's Cancel act on CANCELLABLE, the store's bulk cancel on the
    # active statuses: the two must be the same set, or one would offer what the other refuses.
    assert set(CANCELLABLE) == ACTIVE_STATUSES
    assert set(RETRYABLE) == set(sources(Event.RETRY))
    assert [s.value for s in RETRYABLE] == ["failed", "cancelled"]  # the enum's order, as choices show it


def test_every_status_has_a_class_and_the_classes_split_active_from_finished() -> None:
    assert set(STATUS_CLASSES) == set(Status)
    assert set(Status) == ACTIVE_STATUSES | TERMINAL_STATUSES and not ACTIVE_STATUSES & TERMINAL_STATUSES
    active = {Status.PENDING, Status.RUNNING, Status.WAITING_FOR_CHILDREN}
    assert {s for s in Status if STATUS_CLASSES[s].active} == active
