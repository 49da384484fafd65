"""What the dashboard and /metrics read at any table size: status counts, queue depth, per-minute rollups.

Finished rows are aggregated once, off the hot path, by `rollup` (the StatsRollup duty calls it): rows
finished since a watermark go into per-minute buckets (task_minutes), all-time totals (task_totals) and
counts of the finished rows still present (task_counts). Enqueue, claim and complete never touch these
tables. Reads add the few rows finished since the watermark live, so every figure is exact whether or
not the rollup ran lately; the rollup only decides how many rows a read has to look at.

Prometheus counters come from task_totals alone, never from rows a purge can remove: they lag the rollup
(ROLLUP_LAG_SECONDS and a tick) but never decrease. So an operator action that takes finished rows away
before the rollup reached them (a retry of a task that just failed, a purge of rows that just finished)
first adds those rows' outcomes to the rollups itself: every completion, failure and cancellation is
counted once, by whichever of the two meets it first. Task names label series only when admitted to
metric_names (METRIC_NAMES_MAX, at first sight, for good); the others are summed under OTHER_NAME.

Concurrency: a rollup reads its rows outside the write lock, then applies them in one short write
transaction that first locks rollup_state and checks that neither the watermark nor the generation
moved meanwhile (another dashboard rolled up, an operator retried or purged); if one did it gives up
and the next tick starts again. Operator actions that take finished rows away bump the generation in
their own transaction (retry also takes its rows out of task_counts; purge marks task_counts stale).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, case, delete, func, insert, select, union_all, update

from taskq.clock import as_utc
from taskq.model import TERMINAL_STATUSES, Status
from taskq.schema import (
    RUNTIME_BOUNDS_SECONDS,
    RUNTIME_BUCKET_COLUMNS,
    UtcDateTime,
    metric_names,
    queue_samples,
    rollup_state,
    task_counts,
    task_minutes,
    task_totals,
    tasks,
)
from taskq.store.base import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    _status_is,
    active_parts,
)

ROLLUP_LAG_SECONDS = 10.0  # rows finished this recently stay live: a transaction may still commit an older finished_at
ROLLUP_CHUNK_ROWS = 20_000  # finished rows per rollup transaction (~tens of ms of write lock on SQLite)
COUNT_ATTEMPTS = 3  # reads of the counts raced by a rollup before counting the table itself
HISTORY_DAYS = 8  # per-minute buckets and queue samples kept (charts show up to a day)
# Task names with series of their own in /metrics; the rest are summed under OTHER_NAME. With 24 series per
# name and queue (3 counters, 19 histogram buckets, count, sum), 100 names cost 2,424 series per queue.
METRIC_NAMES_MAX = 100
OTHER_NAME = "other"  # a task really named "other" shares that series: still a sum of monotonic counters
_IN_BATCH = 500  # values per IN (...) of names or ids: well under every driver's parameter limit
_STATE_ID = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "before everything", for a watermark never set


def minute_of(moment: datetime) -> datetime:
    return as_utc(moment).replace(second=0, microsecond=0)


def runtime_bucket(seconds: float) -> int:
    return bisect.bisect_left(RUNTIME_BOUNDS_SECONDS, seconds)


def percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The `fraction` quantile of a bucketed histogram, interpolated inside its bucket (as Prometheus'
    histogram_quantile does); a quantile in the open top bucket reports the highest bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            if index >= len(RUNTIME_BOUNDS_SECONDS):
                return RUNTIME_BOUNDS_SECONDS[-1]
            lower = RUNTIME_BOUNDS_SECONDS[index - 1] if index else 0.0
            upper = RUNTIME_BOUNDS_SECONDS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return RUNTIME_BOUNDS_SECONDS[-1]


@dataclass
class Tally:
    """Finished tasks of one (minute, queue, name) or (queue, name): the unit the rollup tables store."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    runtime_count: int = 0
    runtime_sum: float = 0.0
    runtime_buckets: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BOUNDS_SECONDS) + 1))

    def add_row(self, status: str, started_at: datetime | None, finished_at: datetime) -> None:
        if status == COMPLETED:
            self.completed += 1
        elif status == FAILED:
            self.failed += 1
        else:
            self.cancelled += 1
        if started_at is not None and status in (COMPLETED, FAILED):
            seconds = max(0.0, (as_utc(finished_at) - as_utc(started_at)).total_seconds())
            self.runtime_count += 1
            self.runtime_sum += seconds
            self.runtime_buckets[runtime_bucket(seconds)] += 1

    def merge(self, other: Tally | Mapping[Any, Any]) -> None:
        get = other.get if isinstance(other, Mapping) else other.__dict__.get  # a row, or another Tally
        self.completed += int(get("completed") or 0)
        self.failed += int(get("failed") or 0)
        self.cancelled += int(get("cancelled") or 0)
        self.runtime_count += int(get("runtime_count") or 0)
        self.runtime_sum += float(get("runtime_sum") or 0.0)
        if isinstance(other, Tally):
            buckets = other.runtime_buckets
        else:
            buckets = [int(other.get(name) or 0) for name in RUNTIME_BUCKET_COLUMNS]
        for index, count in enumerate(buckets):
            self.runtime_buckets[index] += count

    def values(self) -> dict[str, Any]:
        return {
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "runtime_count": self.runtime_count,
            "runtime_sum": self.runtime_sum,
            **dict(zip(RUNTIME_BUCKET_COLUMNS, self.runtime_buckets, strict=True)),
        }


@dataclass
class ChartWindow:
    finished: dict[datetime, list[int]] = field(default_factory=dict)  # minute -> [completed, failed]
    runtimes: dict[str, list[int]] = field(default_factory=dict)  # task name -> histogram bucket counts


@dataclass(frozen=True)
class QueueDepth:
    """One queue right now: what waits in it, and how long the oldest claimable task has waited."""

    queue: str
    pending: int  # every pending row: ready, scheduled and waiting to retry
    ready: int  # pending and due
    scheduled: int  # pending, not yet due, never attempted
    retrying: int  # pending, not yet due, attempted before (waiting out its backoff)
    running: int
    oldest_ready_at: datetime | None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        age = None if self.oldest_ready_at is None else max(0.0, (now - self.oldest_ready_at).total_seconds())
        return {
            "queue": self.queue,
            "pending": self.pending,
            "ready": self.ready,
            "scheduled": self.scheduled,
            "retrying": self.retrying,
            "running": self.running,
            "oldest_ready_at": None if self.oldest_ready_at is None else self.oldest_ready_at.isoformat(),
            "oldest_ready_age_seconds": age,
        }


@dataclass(frozen=True)
class RollupState:
    watermark: datetime | None
    generation: int
    counts_stale: bool


def _finished_rows_query(after: datetime | None, until: datetime | None, limit: int | None) -> Any:
    # Walks ix_tasks_finished (partial on finished statuses) in finished_at order: only new rows are read.
    query = select(tasks.c.queue, tasks.c.name, tasks.c.status, tasks.c.started_at, tasks.c.finished_at).where(
        _status_is(*TERMINAL_STATUSES)
    )
    if after is not None:
        query = query.where(tasks.c.finished_at > after)
    if until is not None:
        query = query.where(tasks.c.finished_at <= until)
    query = query.order_by(tasks.c.finished_at)
    return query if limit is None else query.limit(limit)


# -- status counts -----------------------------------------------------------------------------------


def _counts_query(watermark: datetime | None) -> Any:
    """(queue, status, n, w) rows whose sums per key are the exact counts if `w`, the watermark in the
    statement's own snapshot, is the `watermark` the statement was built with. The watermark goes in
    as a value, not a subquery: PostgreSQL plans `finished_at > <subquery>` with a default guess of a
    third of the rows and scans them all, but uses ix_tasks_finished for a known value."""
    since = bindparam("since", watermark or _EPOCH, type_=UtcDateTime)
    active = active_parts(
        lambda status: (
            select(tasks.c.queue, tasks.c.status, func.count().label("n"))
            .where(status)
            .group_by(tasks.c.queue, tasks.c.status)
        )
    )
    recent = (
        select(tasks.c.queue, tasks.c.status, func.count().label("n"))
        .where(_status_is(*TERMINAL_STATUSES), tasks.c.finished_at > since)
        .group_by(tasks.c.queue, tasks.c.status)
    )
    rolled = select(task_counts.c.queue, task_counts.c.status, task_counts.c.n)
    parts = union_all(*active, recent, rolled).subquery()
    current = select(rollup_state.c.watermark).where(rollup_state.c.id == _STATE_ID).scalar_subquery()
    return select(parts.c.queue, parts.c.status, parts.c.n, current.label("w"))


def counts_by_queue(conn: Connection) -> dict[tuple[str, str], int]:
    """{(queue, status): n} for every status with rows, exact. One statement reads one snapshot (a
    rollup committing between two statements would move rows from "recent" to task_counts and count
    them twice); if a rollup moved the watermark after it was read, the statement runs again."""
    for _attempt in range(COUNT_ATTEMPTS):
        state = rollup_state_of(conn)
        if state.counts_stale:  # a purge left task_counts to be recounted: count the table itself
            break
        rows = conn.execute(_counts_query(state.watermark)).all()
        if all((None if row.w is None else _as_time(row.w)) == state.watermark for row in rows):
            counts: dict[tuple[str, str], int] = {}
            for row in rows:
                counts[(row.queue, row.status)] = counts.get((row.queue, row.status), 0) + int(row.n)
            return counts
    query = select(tasks.c.queue, tasks.c.status, func.count()).group_by(tasks.c.queue, tasks.c.status)
    return {(queue, status): int(n) for queue, status, n in conn.execute(query).all()}


def stats(conn: Connection) -> dict[str, int]:
    """Number of tasks in each status; every status present, zeros included. Reads the active rows,
    the finished rows since the last rollup and one small table, whatever the table holds."""
    counts = {status.value: 0 for status in Status}
    for (_queue, status), n in counts_by_queue(conn).items():
        counts[status] = counts.get(status, 0) + n
    return counts


# -- queues ------------------------------------------------------------------------------------------


def queue_depths(conn: Connection, *, now: datetime) -> list[QueueDepth]:
    """Every queue with active rows, by name. Reads pending and running rows only (the partial claim
    index and ix_tasks_status_id); finished rows cost nothing here."""
    columns = (tasks.c.queue, tasks.c.status, tasks.c.run_after, tasks.c.attempts)
    rows_of = union_all(  # each part through its own partial index (claim, lease)
        select(*columns).where(_status_is(PENDING)), select(*columns).where(_status_is(RUNNING))
    ).subquery()
    pending = rows_of.c.status == PENDING
    due = rows_of.c.run_after <= now
    waiting = rows_of.c.run_after > now
    query = (
        select(
            rows_of.c.queue,
            func.sum(_flag(pending)).label("pending"),
            func.sum(_flag(and_(pending, due))).label("ready"),
            func.sum(_flag(and_(pending, waiting, rows_of.c.attempts == 0))).label("scheduled"),
            func.sum(_flag(and_(pending, waiting, rows_of.c.attempts > 0))).label("retrying"),
            func.sum(_flag(rows_of.c.status == RUNNING)).label("running"),
            func.min(_when(and_(pending, due), rows_of.c.run_after)).label("oldest_ready_at"),
        )
        .group_by(rows_of.c.queue)
        .order_by(rows_of.c.queue)
    )
    return [
        QueueDepth(
            row.queue,
            int(row.pending or 0),
            int(row.ready or 0),
            int(row.scheduled or 0),
            int(row.retrying or 0),
            int(row.running or 0),
            None if row.oldest_ready_at is None else _as_time(row.oldest_ready_at),
        )
        for row in conn.execute(query).all()
    ]


def known_queues(conn: Connection) -> list[str]:
    """Queues with active rows or rolled-up history (for the dashboard's queue picker)."""
    active = active_parts(lambda status: select(tasks.c.queue).where(status).group_by(tasks.c.queue))
    rolled = select(task_totals.c.queue).distinct()
    return sorted({row[0] for row in conn.execute(union_all(*active, rolled)).all()})


def known_names(conn: Connection) -> list[str] | None:
    """Every task name present in the table, from the rollup totals plus active rows and rows finished
    since the watermark; None when no rollup ever ran (the names would need a scan of every row)."""
    # A rollup moving the watermark meanwhile only makes the third part read more rows than needed.
    watermark = rollup_state_of(conn).watermark
    if watermark is None:
        return None
    # Grouped by an expression, not the column: on the column SQLite would walk all of
    # ix_tasks_name_id (a million finished rows) to read names in order, instead of reading the few
    # active or recent rows through their own index and sorting those.
    distinct_name = tasks.c.name + ""
    parts = union_all(
        select(task_totals.c.name).distinct(),
        *active_parts(lambda status: select(tasks.c.name).where(status).group_by(distinct_name)),
        select(tasks.c.name)
        .where(_status_is(*TERMINAL_STATUSES), tasks.c.finished_at > watermark)
        .group_by(distinct_name),
    )
    return sorted({row[0] for row in conn.execute(parts).all()})


# -- the rollup (StatsRollup duty): read outside the write lock, fold in a short write ------------------


def rollup_state_of(conn: Connection, *, lock: bool = False) -> RollupState:
    query = select(rollup_state).where(rollup_state.c.id == _STATE_ID)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        return RollupState(None, 0, False)
    watermark = None if row["watermark"] is None else as_utc(row["watermark"])
    return RollupState(watermark, int(row["generation"]), bool(row["counts_stale"]))


@dataclass(frozen=True)
class RollupChunk:
    """Finished rows tallied outside the write lock, and the state they were read under: the fold applies
    them only if that state has not moved."""

    read_under: RollupState
    rows: int
    watermark: datetime | None
    minutes: Mapping[tuple[Any, ...], Tally]
    totals: Mapping[tuple[Any, ...], Tally]
    counts: Mapping[tuple[str, str], int]


def chunk_to_roll_up(conn: Connection, *, until: datetime, chunk_rows: int) -> RollupChunk:
    """At most `chunk_rows` rows finished after the watermark and by `until`, tallied."""
    state = rollup_state_of(conn)
    rows = list(conn.execute(_finished_rows_query(state.watermark, until, chunk_rows)).all())
    if not rows:
        return RollupChunk(state, 0, None, {}, {}, {})
    if len(rows) == chunk_rows:
        # Rows sharing the last finished_at may continue past the limit: leave them all to the next chunk.
        last = rows[-1].finished_at
        kept = [row for row in rows if row.finished_at != last]
        if kept:
            rows = kept
    minutes, totals, counts = _tally(rows)
    return RollupChunk(state, len(rows), max(_as_time(row.finished_at) for row in rows), minutes, totals, counts)


def fold_rollup(conn: Connection, chunk: RollupChunk) -> int:
    """Add the chunk to the rollup tables and move the watermark past it, unless the state moved since it
    was read (another rollup, a retry or a purge): then 0, and the next tick starts again."""
    current = rollup_state_of(conn, lock=True)
    if (current.watermark, current.generation) != (chunk.read_under.watermark, chunk.read_under.generation):
        return 0
    _add_outcomes(conn, chunk.minutes, chunk.totals, admitted_at=chunk.watermark or _EPOCH)
    _add_counts(conn, chunk.counts)
    conn.execute(update(rollup_state).where(rollup_state.c.id == _STATE_ID).values(watermark=chunk.watermark))
    return chunk.rows


def counts_to_recount(conn: Connection) -> tuple[RollupState, list[Row[Any]]]:
    """The finished rows' counts up to the watermark when a purge left task_counts stale (none if not)."""
    state = rollup_state_of(conn)
    if not state.counts_stale or state.watermark is None:
        return state, []
    query = (
        select(tasks.c.queue, tasks.c.status, func.count().label("n"))
        .where(_status_is(*TERMINAL_STATUSES), tasks.c.finished_at <= state.watermark)
        .group_by(tasks.c.queue, tasks.c.status)
    )
    return state, list(conn.execute(query).all())


def replace_counts(conn: Connection, read_under: RollupState, rows: Sequence[Row[Any]]) -> bool:
    """Replace task_counts by the recounted `rows`, unless the state moved since they were counted."""
    current = rollup_state_of(conn, lock=True)
    if (current.watermark, current.generation) != (read_under.watermark, read_under.generation):
        return False
    conn.execute(delete(task_counts))
    if rows:
        conn.execute(insert(task_counts), [{"queue": r.queue, "status": r.status, "n": int(r.n)} for r in rows])
    conn.execute(update(rollup_state).where(rollup_state.c.id == _STATE_ID).values(counts_stale=False))
    return True


def save_queue_samples(conn: Connection, minute: datetime, depths: Sequence[QueueDepth]) -> int:
    """Record this minute's depth of every active queue (the last sample in a minute wins)."""
    conn.execute(delete(queue_samples).where(queue_samples.c.minute == minute))
    if depths:
        conn.execute(
            insert(queue_samples),
            [
                {
                    "minute": minute,
                    "queue": d.queue,
                    "pending": d.pending,
                    "ready": d.ready,
                    "running": d.running,
                    "oldest_ready_at": d.oldest_ready_at,
                }
                for d in depths
            ],
        )
    return len(depths)


def prune_history(conn: Connection, *, now: datetime) -> int:
    cutoff = minute_of(now - timedelta(days=HISTORY_DAYS))
    gone = conn.execute(delete(task_minutes).where(task_minutes.c.minute < cutoff)).rowcount
    return int(gone + conn.execute(delete(queue_samples).where(queue_samples.c.minute < cutoff)).rowcount)


# -- operator actions that take finished rows away (called inside their write transaction) -------------


def forget_finished(conn: Connection, rows: Sequence[Any], *, now: datetime) -> None:
    """`rows` (queue, name, status, started_at, finished_at) leave the finished statuses (retry): take the
    ones already rolled up out of task_counts, add the outcomes of the others to the rollups (no rollup
    will see them finished now), and bump the generation so a rollup read meanwhile starts again."""
    state = rollup_state_of(conn, lock=True)
    removed: dict[tuple[str, str], int] = {}
    unrolled = []
    for row in rows:
        if row.finished_at is None:
            continue
        if state.watermark is None or _as_time(row.finished_at) > state.watermark:
            unrolled.append(row)
        else:
            removed[(row.queue, row.status)] = removed.get((row.queue, row.status), 0) + 1
    count_outcomes(conn, unrolled, now=now)
    for (queue, status), n in removed.items():
        conn.execute(
            update(task_counts)
            .where(task_counts.c.queue == queue, task_counts.c.status == status)
            .values(n=task_counts.c.n - n)
        )
    conn.execute(
        update(rollup_state).where(rollup_state.c.id == _STATE_ID).values(generation=rollup_state.c.generation + 1)
    )


def unrolled_rows_a_purge_may_delete(conn: Connection, cutoff: datetime) -> list[Any]:
    """Finished rows the rollup has not reached that a purge with `cutoff` may delete: those finished
    before it, and children (ON DELETE CASCADE takes them with an old parent whenever they finished).
    Locks rollup_state first, so no rollup folds them meanwhile. A few seconds' worth of rows while the
    rollup keeps up; every row whose outcome would otherwise be lost when none ever ran."""
    state = rollup_state_of(conn, lock=True)
    query: Select[Any] = select(
        tasks.c.id, tasks.c.queue, tasks.c.name, tasks.c.status, tasks.c.started_at, tasks.c.finished_at
    )
    query = query.where(_status_is(*TERMINAL_STATUSES), (tasks.c.finished_at < cutoff) | tasks.c.parent_id.isnot(None))
    if state.watermark is not None:
        query = query.where(tasks.c.finished_at > state.watermark)
    return list(conn.execute(query).all())


def count_purged(conn: Connection, candidates: Sequence[Any], *, now: datetime) -> None:
    """Add the outcomes of the `candidates` (from unrolled_rows_a_purge_may_delete) the purge deleted."""
    ids = [row.id for row in candidates]
    present: set[int] = set()
    for start in range(0, len(ids), _IN_BATCH):
        batch = ids[start : start + _IN_BATCH]
        present.update(conn.execute(select(tasks.c.id).where(tasks.c.id.in_(batch))).scalars())
    count_outcomes(conn, [row for row in candidates if row.id not in present], now=now)


def count_outcomes(conn: Connection, rows: Sequence[Any], *, now: datetime) -> None:
    """Add finished rows the rollup will never see (retried or purged first) to the per-minute and
    all-time rollups, as the rollup would have; task_counts is left alone (it counts rows present)."""
    if rows:
        minutes, totals, _counts = _tally(rows)
        _add_outcomes(conn, minutes, totals, admitted_at=now)


def counts_need_recount(conn: Connection) -> None:
    rollup_state_of(conn, lock=True)
    conn.execute(
        update(rollup_state)
        .where(rollup_state.c.id == _STATE_ID)
        .values(generation=rollup_state.c.generation + 1, counts_stale=True)
    )


# -- charts and /metrics -----------------------------------------------------------------------------


def _live_tail(conn: Connection, since: datetime | None = None) -> list[Row[Any]]:
    """Finished rows not rolled up yet (a few seconds' worth), so charts and counters are current."""
    state = rollup_state_of(conn)
    after = state.watermark if since is None or (state.watermark and state.watermark > since) else since
    return list(conn.execute(_finished_rows_query(after, None, None)).all())


def chart_window(
    conn: Connection, *, since: datetime, queue: str | None = None, name: str | None = None
) -> ChartWindow:
    """Finished tasks per minute and runtime histograms per task name from `since` on, summed in SQL
    over the per-minute rollups (bounded by the window, not the table), plus the live tail."""
    conditions = [task_minutes.c.minute >= minute_of(since)]
    if queue is not None:
        conditions.append(task_minutes.c.queue == queue)
    if name is not None:
        conditions.append(task_minutes.c.name == name)
    per_minute = (
        select(task_minutes.c.minute, func.sum(task_minutes.c.completed), func.sum(task_minutes.c.failed))
        .where(*conditions)
        .group_by(task_minutes.c.minute)
    )
    per_name = (
        select(task_minutes.c.name, *(func.sum(task_minutes.c[column]) for column in RUNTIME_BUCKET_COLUMNS))
        .where(*conditions)
        .group_by(task_minutes.c.name)
    )
    minutes_rows, name_rows, tail = (
        conn.execute(per_minute).all(),
        conn.execute(per_name).all(),
        _live_tail(conn, since),
    )
    window = ChartWindow()
    for minute, completed, failed in minutes_rows:
        window.finished[_as_time(minute)] = [int(completed or 0), int(failed or 0)]
    for row in name_rows:
        window.runtimes[row[0]] = [int(count or 0) for count in row[1:]]
    tail = [r for r in tail if (queue is None or r.queue == queue) and (name is None or r.name == name)]
    for (minute, _queue, task_name), tally in _tally(tail)[0].items():
        counts = window.finished.setdefault(minute, [0, 0])
        counts[0] += tally.completed
        counts[1] += tally.failed
        buckets = window.runtimes.setdefault(task_name, [0] * len(RUNTIME_BUCKET_COLUMNS))
        for index, count in enumerate(tally.runtime_buckets):
            buckets[index] += count
    return window


def queue_history(conn: Connection, *, since: datetime, queue: str | None = None) -> list[dict[str, Any]]:
    query = select(queue_samples).where(queue_samples.c.minute >= minute_of(since)).order_by(queue_samples.c.minute)
    if queue is not None:
        query = query.where(queue_samples.c.queue == queue)
    return [{**row, "minute": _as_time(row["minute"])} for row in conn.execute(query).mappings().all()]


def metric_totals(conn: Connection) -> dict[tuple[str, str], Tally]:
    """{(queue, name): Tally} over all time, from the rollups only (monotonic: nothing a purge or retry
    removes), names not admitted to metric_names summed under OTHER_NAME. One statement, one snapshot."""
    sums = [func.sum(task_totals.c[column]).label(column) for column in Tally().values()]
    query = (
        select(task_totals.c.queue, metric_names.c.name, *sums)
        .select_from(task_totals.outerjoin(metric_names, metric_names.c.name == task_totals.c.name))
        .group_by(task_totals.c.queue, metric_names.c.name)
    )
    result: dict[tuple[str, str], Tally] = {}
    for row in conn.execute(query).mappings().all():
        result.setdefault((row["queue"], row["name"] or OTHER_NAME), Tally()).merge(row)
    return result


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


def _when(condition: Any, value: Any) -> Any:
    return case((condition, value), else_=None)


def _as_time(value: Any) -> datetime:
    """A datetime from a column, or from an aggregate that SQLite returns as its stored text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _tally(
    rows: Iterable[Any],
) -> tuple[dict[tuple[datetime, str, str], Tally], dict[tuple[str, str], Tally], dict[tuple[str, str], int]]:
    minutes: dict[tuple[datetime, str, str], Tally] = {}
    totals: dict[tuple[str, str], Tally] = {}
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        finished = _as_time(row.finished_at)
        started = None if row.started_at is None else _as_time(row.started_at)
        minutes.setdefault((minute_of(finished), row.queue, row.name), Tally()).add_row(row.status, started, finished)
        totals.setdefault((row.queue, row.name), Tally()).add_row(row.status, started, finished)
        counts[(row.queue, row.status)] = counts.get((row.queue, row.status), 0) + 1
    return minutes, totals, counts


def _add_outcomes(
    conn: Connection,
    minutes: Mapping[tuple[Any, ...], Tally],
    totals: Mapping[tuple[Any, ...], Tally],
    *,
    admitted_at: datetime,
) -> None:
    _admit_names(conn, totals, admitted_at)  # before the totals: it asks which names they never had
    _add_tallies(conn, task_minutes, ("minute", "queue", "name"), minutes)
    _add_tallies(conn, task_totals, ("queue", "name"), totals)


def _admit_names(conn: Connection, totals: Mapping[tuple[Any, ...], Tally], admitted_at: datetime) -> None:
    """Give names seen for the first time a series of their own while fewer than METRIC_NAMES_MAX have
    one, busiest first. Only new names: one with totals already has them summed in OTHER_NAME, and taking
    them out would make that counter go down. Once full, the set never changes (one COUNT per fold)."""
    room = METRIC_NAMES_MAX - int(conn.execute(select(func.count()).select_from(metric_names)).scalar_one())
    if room <= 0 or not totals:
        return
    volume: dict[str, int] = {}
    for (_queue, name), tally in totals.items():
        volume[name] = volume.get(name, 0) + tally.completed + tally.failed + tally.cancelled
    names = sorted(volume)
    for start in range(0, len(names), _IN_BATCH):
        batch = names[start : start + _IN_BATCH]
        for seen in conn.execute(select(task_totals.c.name).where(task_totals.c.name.in_(batch)).distinct()).scalars():
            volume.pop(seen, None)
    new = sorted(volume, key=lambda name: (-volume[name], name))[:room]
    if new:
        conn.execute(insert(metric_names), [{"name": name, "admitted_at": admitted_at} for name in new])


def _add_tallies(conn: Connection, table: Any, key_columns: tuple[str, ...], tallies: Mapping[tuple, Tally]) -> None:
    """Add `tallies` to the rows of `table` keyed by `key_columns`: read the existing rows of these keys,
    merge in Python (the histogram is a JSON list), write back. Runs under the rollup's lock."""
    if not tallies:
        return
    first = key_columns[0]
    values = sorted({key[0] for key in tallies})
    existing: dict[tuple, Any] = {}
    query = select(table).where(table.c[first].in_(values))
    for row in conn.execute(query).mappings().all():
        key = tuple(_as_time(row[c]) if c == "minute" else row[c] for c in key_columns)
        existing[key] = row
    updates, inserts = [], []
    for key, tally in tallies.items():
        merged = Tally()
        merged.merge(tally)
        if key in existing:
            merged.merge(existing[key])
            keys = {f"k_{c}": v for c, v in zip(key_columns, key, strict=True)}
            updates.append({**keys, **{f"v_{name}": value for name, value in merged.values().items()}})
        else:
            inserts.append({**dict(zip(key_columns, key, strict=True)), **merged.values()})
    if updates:
        condition = and_(*(table.c[c] == bindparam(f"k_{c}") for c in key_columns))
        statement = update(table).where(condition).values(**{name: bindparam(f"v_{name}") for name in Tally().values()})
        conn.execute(statement, updates)
    if inserts:
        conn.execute(insert(table), inserts)


def _add_counts(conn: Connection, counts: Mapping[tuple[str, str], int]) -> None:
    existing = {(row.queue, row.status) for row in conn.execute(select(task_counts.c.queue, task_counts.c.status))}
    for (queue, status), n in counts.items():
        if (queue, status) in existing:
            conn.execute(
                update(task_counts)
                .where(task_counts.c.queue == queue, task_counts.c.status == status)
                .values(n=task_counts.c.n + n)
            )
        else:
            conn.execute(insert(task_counts).values(queue=queue, status=status, n=n))


__all__ = ["RUNTIME_BOUNDS_SECONDS", "ChartWindow", "QueueDepth", "RollupState", "Tally", "percentile"]
