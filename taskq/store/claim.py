"""Claiming tasks: the claim statements, the concurrency caps (ClaimLimits) and the counting claim they
take, a worker's finish-and-claim round (outcomes.py records the finished runs) and its SQLite driver path
(hot.py runs the statements compiled here)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    update,
)

from taskq.lifecycle import PASS_ON_GRACE_SECONDS, Event
from taskq.model import ClaimLimits, Completion, Task
from taskq.schema import tasks
from taskq.store.base import RUNNING, StoreContext, _from, _status_is, _to
from taskq.store.hot import SqliteHotPath, row_as_mapping
from taskq.store.outcomes import _COMPLETE_PLAIN, _RECORDED_ONE, _plain_completion_row, record_completions

# Hot-path statements are built once: constructing a Core statement and its cache key costs more than
# running it on SQLite, so the claim/complete cycle reuses these objects with bound parameters.
_AS_CLAIMED_ATTEMPT = (tasks.c.attempts + 1).label("attempts")


_CLAIM_ORDER = (tasks.c.priority.desc(), tasks.c.run_after, tasks.c.id)
_CLAIMED_VALUES: dict[str, Any] = {
    "status": _to(Event.CLAIM),
    "started_at": None,
    "worker_id": bindparam("worker_id"),
    "lease_until": bindparam("lease_until"),
    "cancel_requested": False,
}
# The task comes back as the attempt it will run as; the row counts it once the task starts.
_CLAIMED_RETURNING = tuple(_AS_CLAIMED_ATTEMPT if column.name == "attempts" else column for column in tasks.c)


@dataclass(frozen=True)
class _Capped:
    """The capped names and queues that a claim over some queues could take tasks of (sorted)."""

    names: tuple[str, ...]
    queues: tuple[str, ...]
    limits: ClaimLimits = field(compare=False)  # the caps themselves: counted, not compiled into SQL


def _capped(limits: ClaimLimits | None, queues: Sequence[str] | None) -> _Capped | None:
    """None when no cap can apply: the claim is then exactly the uncapped one (no cost at all)."""
    if not limits:
        return None
    capped_queues = sorted(q for q in limits.by_queue if not queues or q in queues)
    if not limits.by_name and not capped_queues:
        return None
    return _Capped(tuple(sorted(limits.by_name)), tuple(capped_queues), limits)


def _is_capped(capped: _Capped, name: Any, queue: Any) -> ColumnElement[bool]:
    # Names as literal() binds, not one expanding IN: the SQLite driver path compiles the statement once
    # with positional parameters, which an expanding IN cannot be.
    tests = []
    if capped.names:
        tests.append(name.in_([literal(value) for value in capped.names]))
    if capped.queues:
        tests.append(queue.in_([literal(value) for value in capped.queues]))
    return or_(*tests)


def _not_avoided() -> ColumnElement[bool]:
    """Tasks of the names a worker does not know (bound as :avoid) only once they have been ready for
    PASS_ON_GRACE_SECONDS (:avoid_until): a worker that knows them takes them first (lifecycle.py)."""
    return or_(tasks.c.name.not_in(bindparam("avoid", expanding=True)), tasks.c.run_after <= bindparam("avoid_until"))


def _avoid_params(avoid: Sequence[str], now: datetime) -> dict[str, Any]:
    return {"avoid": list(avoid), "avoid_until": now - timedelta(seconds=PASS_ON_GRACE_SECONDS)}


@functools.cache
def _claim_statement(by_queue: bool, capped: _Capped | None = None, avoiding: bool = False) -> Executable:
    """The claim: up to `limit` ready tasks in claim order, in one statement. With `capped`, it claims
    nothing when any of those candidates is a capped task (the caller then takes the counting path):
    claims of uncapped tasks stay one statement, with no lock and no count. `avoiding`: see _not_avoided."""
    ready = and_(_from(Event.CLAIM), tasks.c.run_after <= bindparam("now"))
    if by_queue:
        ready = and_(ready, tasks.c.queue.in_(bindparam("queues", expanding=True)))
    if avoiding:
        ready = and_(ready, _not_avoided())
    columns = (tasks.c.id,) if capped is None else (tasks.c.id, tasks.c.name, tasks.c.queue)
    candidates = (
        select(*columns)
        .where(ready)
        .order_by(*_CLAIM_ORDER)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("candidates")
    )
    # A CTE, not `id IN (subquery)`: PostgreSQL may evaluate a LIMIT ... SKIP LOCKED subquery more
    # than once inside an UPDATE and so claim more rows than asked; a CTE runs exactly once.
    condition = and_(tasks.c.id == candidates.c.id, _from(Event.CLAIM))
    if capped is not None:
        ahead = candidates.alias("capped_ahead")
        any_capped = select(literal(1)).select_from(ahead).where(_is_capped(capped, ahead.c.name, ahead.c.queue))
        condition = and_(condition, ~any_capped.correlate(None).exists())
    return update(tasks).where(condition).values(**_CLAIMED_VALUES).returning(*_CLAIMED_RETURNING)


def _capped_candidates(
    queues: Sequence[str] | None, full_names: set[str], full_queues: set[str], avoiding: bool = False
) -> Select[tuple[int, str, str]]:
    """Ready tasks in claim order, leaving out names and queues with no free slot (so they never block
    the tasks behind them); bound: now, limit (and avoid, avoid_until when `avoiding`)."""
    query = select(tasks.c.id, tasks.c.name, tasks.c.queue).where(
        _from(Event.CLAIM), tasks.c.run_after <= bindparam("now")
    )
    if avoiding:
        query = query.where(_not_avoided())
    if queues:
        query = query.where(tasks.c.queue.in_(list(queues)))
    if full_names:
        query = query.where(tasks.c.name.not_in(sorted(full_names)))
    if full_queues:
        query = query.where(tasks.c.queue.not_in(sorted(full_queues)))
    return query.order_by(*_CLAIM_ORDER).limit(bindparam("limit")).with_for_update(skip_locked=True)


_CLAIM_CHOSEN = (
    update(tasks)
    .where(tasks.c.id.in_(bindparam("ids", expanding=True)), _from(Event.CLAIM))
    .values(**_CLAIMED_VALUES)
    .returning(*_CLAIMED_RETURNING)
)
# Counted over ix_tasks_lease, the partial index that holds only running rows: a scan of at most every
# worker's claimed batch, and only in claims that meet a capped task. An index on running rows by name
# would make it a seek, but its entry, written at every claim and removed at every outcome, cost uncapped
# claims 9 % of a batch-1 claim+complete loop on SQLite (python -m bench.claim_limits).
_RUNNING_BY_NAME = (
    select(tasks.c.name, func.count())
    .where(_status_is(RUNNING), tasks.c.name.in_(bindparam("names", expanding=True)))
    .group_by(tasks.c.name)
)
_RUNNING_BY_QUEUE = (
    select(tasks.c.queue, func.count())
    .where(_status_is(RUNNING), tasks.c.queue.in_(bindparam("queues", expanding=True)))
    .group_by(tasks.c.queue)
)


_CAPPED_MEMO_SIZE = 64  # distinct (ClaimLimits, queues) pairs remembered; a worker uses one


def _cap_keys(capped: _Capped, name: str, queue: str) -> list[str]:
    """The caps a task of this name and queue takes a slot of, as lock/count keys."""
    keys = [f"name:{name}"] if name in capped.names else []
    return [*keys, f"queue:{queue}"] if queue in capped.queues else keys


def _claim_params(worker_id: str, limit: int, now: datetime, lease_seconds: float) -> dict[str, Any]:
    return {"now": now, "limit": limit, "worker_id": worker_id, "lease_until": now + timedelta(seconds=lease_seconds)}


def _in_claim_order(rows: Sequence[Mapping[Any, Any]]) -> list[Task]:
    """RETURNING gives no order; the worker runs its batch in the claim's (priority, then ready longest)."""
    claimed = [Task.from_row(row) for row in rows]
    claimed.sort(key=lambda task: (-task.priority, task.run_after, task.id))
    return claimed


def _recorded_among(
    hot: Any, connection: Any, statements: dict[str, Any], worker_id: str, completions: Sequence[Completion]
) -> list[Any]:
    # An expanding IN cannot be compiled once for positional binds; this rare path asks id by id.
    found = []
    for completion in completions:
        found += hot.fetch_all(
            connection, statements["recorded"], {"id": completion.task_id, "owner_worker_id": worker_id}
        )
    return found


class ClaimPlans:
    """What a store works out once for its claims and keeps: the SQLite driver path's statements compiled
    for its engine, and the cap plan of each ClaimLimits object a worker passes (the same one every time)."""

    def __init__(self, hot: SqliteHotPath | None) -> None:
        self.hot = hot
        self._compiled: dict[str, Any] | None = None
        self._capped_memo: dict[tuple[int, tuple[str, ...]], tuple[ClaimLimits, _Capped | None, Any]] = {}

    def hot_statements(self) -> dict[str, Any]:
        cached = self._compiled
        if cached is None:
            assert self.hot is not None
            cached = self._compiled = {
                "complete": self.hot.prepare(_COMPLETE_PLAIN),
                "claim": self.hot.prepare(_claim_statement(False)),
                "recorded": self.hot.prepare(_RECORDED_ONE),
            }
        return cached

    def capped_for(self, limits: ClaimLimits | None, queues: Sequence[str] | None) -> tuple[_Capped | None, Any]:
        """`_capped`, and its claim statement prepared for the SQLite driver, worked out once per ClaimLimits
        object and queues: a worker passes the same ones to every claim, and sorting, hashing and looking
        them up each time cost uncapped batch-1 claims a few percent."""
        if limits is None:
            return None, None
        memo = self._capped_memo
        key = (id(limits), tuple(queues or ()))
        hit = memo.get(key)
        if hit is None or hit[0] is not limits:  # the id of a ClaimLimits since garbage-collected
            if len(memo) >= _CAPPED_MEMO_SIZE:
                memo.clear()
            capped = _capped(limits, queues)
            # The capped claim compiled for the SQLite driver path too (only claims over all queues use it).
            hot = None if capped is None or self.hot is None else self.hot.prepare(_claim_statement(False, capped))
            hit = memo[key] = (limits, capped, hot)
        return hit[1], hit[2]


# -- claim ------------------------------------------------------------------------------------------------


def claim(
    conn: Connection,
    ctx: StoreContext,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    now: datetime,
    lease_seconds: float,
    capped: _Capped | None = None,
    avoid: Sequence[str] | None = None,
) -> list[Task]:
    """Move up to `limit` ready tasks to running for `worker_id`: highest priority first, then the one
    ready longest (run_after), then oldest id. With `capped`, no capped name or queue ends up with more
    running tasks than its cap. `avoid`: names the worker does not know, claimed only once they have been
    ready for PASS_ON_GRACE_SECONDS."""
    params = _claim_params(worker_id, limit, now, lease_seconds)
    if queues:
        params["queues"] = list(queues)
    if avoid:
        params.update(_avoid_params(avoid, now))
    statement = _claim_statement(bool(queues), capped, bool(avoid))
    claimed = _in_claim_order(conn.execute(statement, params).mappings().all())
    if claimed or capped is None:
        return claimed
    return claim_capped(conn, ctx, worker_id, queues, limit, now, lease_seconds, capped, avoid)


def claim_capped(
    conn: Connection,
    ctx: StoreContext,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    now: datetime,
    lease_seconds: float,
    capped: _Capped,
    avoid: Sequence[str] | None = None,
) -> list[Task]:
    """The claim when a capped task is among the candidates: lock the caps met, count their running
    rows, and walk the candidates in claim order taking each task whose name and queue still have a
    free slot. A candidate passed over means one cap just filled up, so the next round leaves that
    name/queue out and looks further: each extra round fills at least one more cap."""
    free: dict[str, int] = {}  # "name:<n>" / "queue:<q>" -> slots left, for the caps locked and counted
    claimed: list[Mapping[Any, Any]] = []
    first_round = True
    while len(claimed) < limit:
        wanted = limit - len(claimed)
        full_names = {key[5:] for key, left in free.items() if left <= 0 and key.startswith("name:")}
        full_queues = {key[6:] for key, left in free.items() if left <= 0 and key.startswith("queue:")}
        candidates = _capped_candidates(queues, full_names, full_queues, bool(avoid))
        bound = {"now": now, "limit": wanted, **(_avoid_params(avoid, now) if avoid else {})}
        rows = conn.execute(candidates, bound).all()
        met = sorted({key for row in rows for key in _cap_keys(capped, row.name, row.queue)} - free.keys())
        # Only the first round may wait for a lock: later ones already hold some, and waiting then
        # could deadlock with a claimer holding the next; a cap whose lock is busy counts as full.
        held = ctx.dialect.lock_claim_limits(conn, met, wait=first_round)
        first_round = False
        free.update({key: 0 for key in met if key not in held})
        free.update(_free_slots(conn, ctx, [key for key in met if key in held], capped.limits))
        chosen = []
        for row in rows:
            keys = _cap_keys(capped, row.name, row.queue)
            if all(free[key] > 0 for key in keys):
                for key in keys:
                    free[key] -= 1
                chosen.append(row.id)
        if chosen:
            params = {"ids": chosen, **_claim_params(worker_id, len(chosen), now, lease_seconds)}
            claimed += conn.execute(_CLAIM_CHOSEN, params).mappings().all()
        if len(rows) < wanted or len(chosen) == len(rows):
            break  # no more ready tasks, or all of these were taken
    return _in_claim_order(claimed)


def _free_slots(conn: Connection, ctx: StoreContext, keys: Sequence[str], limits: ClaimLimits) -> dict[str, int]:
    """Slots left per cap key: the cap less the running rows (claimed ones hold a slot too)."""
    names = [key[5:] for key in keys if key.startswith("name:")]
    queues = [key[6:] for key in keys if key.startswith("queue:")]
    if keys:
        ctx.dialect.prefer_index_scans(conn)
    running: dict[str, int] = {}
    if names:
        running.update((f"name:{n}", c) for n, c in conn.execute(_RUNNING_BY_NAME, {"names": names}).all())
    if queues:
        running.update((f"queue:{q}", c) for q, c in conn.execute(_RUNNING_BY_QUEUE, {"queues": queues}).all())
    caps = {**{f"name:{n}": limits.by_name[n] for n in names}, **{f"queue:{q}": limits.by_queue[q] for q in queues}}
    return {key: cap - running.get(key, 0) for key, cap in caps.items()}


def finish_and_claim(
    conn: Connection,
    ctx: StoreContext,
    worker_id: str,
    completions: Sequence[Completion],
    queues: Sequence[str] | None,
    limit: int,
    now: datetime,
    lease_seconds: float,
    capped: _Capped | None,
    avoid: Sequence[str] | None = None,
) -> tuple[list[int], list[Task]]:
    """Record a worker's finished runs and claim its next batch (none when limit is 0)."""
    recorded = record_completions(conn, ctx, worker_id, completions)
    claimed = claim(conn, ctx, worker_id, queues, limit, now, lease_seconds, capped, avoid) if limit > 0 else []
    return recorded, claimed


def finish_and_claim_hot(
    plans: ClaimPlans,
    worker_id: str,
    completions: Sequence[Completion],
    limit: int,
    now: datetime,
    lease_seconds: float,
    capped_claim: Any = None,
) -> tuple[list[int], list[Task]]:
    """`finish_and_claim` for plain completions over all queues, in one transaction of its own straight
    through the SQLite driver: a worker's loop on quick tasks spends more in Core's per-execute processing
    than in SQLite (cProfile, bench/RESULTS.md). `capped_claim`: the capped claim statement as prepared
    for the driver, when caps apply."""
    hot = plans.hot
    assert hot is not None
    statements = plans.hot_statements()
    claim_compiled = statements["claim"] if capped_claim is None else capped_claim
    rows = [_plain_completion_row(worker_id, c) for c in completions]

    def work(connection: Any) -> tuple[list[int], list[Task]]:
        updated = hot.execute_many(connection, statements["complete"], rows) if rows else 0
        if updated == len(rows):
            recorded = [c.task_id for c in completions]
        else:  # some were no longer ours (lease recovered): find out which ones we did record
            recorded = [row["id"] for row in _recorded_among(hot, connection, statements, worker_id, completions)]
        claimed: list[Task] = []
        if limit > 0:
            params = _claim_params(worker_id, limit, now, lease_seconds)
            # Decoding after COMMIT instead holds the lock ~40 % less (50 -> 31 µs/task) but showed no drain
            # gain on 2 cores and more CPU per task at 2 workers (more lock collisions): bench/RESULTS.md.
            claimed = _in_claim_order(hot.fetch_all(connection, claim_compiled, params))
        return recorded, claimed

    return hot.write(work)


def finish_and_claim_for_many_hot(
    plans: ClaimPlans,
    rounds: Sequence[tuple[str, Sequence[Completion], int]],
    now: datetime,
    lease_seconds: float,
    decode: bool = True,
) -> list[tuple[list[int], list[Any]]]:
    """`finish_and_claim_hot` for several workers in one transaction: (worker_id, plain completions, limit)
    each, claims in each worker's own name (so a dead worker's rows are still settled by worker id). One
    host writer pays one BEGIN IMMEDIATE/COMMIT for every worker's round instead of one per worker.
    `decode=False`: claimed rows as the driver returned them (see `claimed_columns`), for the worker to
    decode with `task_from_raw`, so the one writer spends no CPU on what each worker can do itself."""
    hot = plans.hot
    assert hot is not None
    statements = plans.hot_statements()

    def work(connection: Any) -> list[tuple[list[int], list[Any]]]:
        out: list[tuple[list[int], list[Any]]] = []
        for worker_id, completions, limit in rounds:
            rows = [_plain_completion_row(worker_id, c) for c in completions]
            updated = hot.execute_many(connection, statements["complete"], rows) if rows else 0
            if updated == len(rows):
                recorded = [c.task_id for c in completions]
            else:  # some were no longer this worker's (lease recovered)
                found = _recorded_among(hot, connection, statements, worker_id, completions)
                recorded = [row["id"] for row in found]
            claimed: list[Any] = []
            if limit > 0:
                params = _claim_params(worker_id, limit, now, lease_seconds)
                claim = statements["claim"]
                claimed = connection.execute(claim.sql, claim.bind(params)).fetchall()
            out.append((recorded, claimed))
        return out

    rounds_out = hot.write(work)
    if not decode:
        return rounds_out
    columns = statements["claim"].returning  # decoded after COMMIT, as in finish_and_claim_hot
    return [(recorded, tasks_from_raw(columns, rows)) for recorded, rows in rounds_out]


def claimed_columns(plans: ClaimPlans) -> list[str]:
    return list(plans.hot_statements()["claim"].returning)


def tasks_from_raw(columns: list[str], rows: Sequence[tuple[Any, ...]]) -> list[Task]:
    """Rows from `finish_and_claim_for_many_hot(decode=False)` as Tasks, in claim order."""
    return _in_claim_order([row_as_mapping(columns, row) for row in rows])
