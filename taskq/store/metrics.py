"""What the dashboard and /metrics read at any table size: status counts, queue depth, per-minute rollups.

Finished rows are aggregated once, off the hot path, by the rollup (store/rollup.py, which the
StatsRollup duty calls): rows finished since a watermark go into per-minute buckets (task_minutes),
all-time totals (task_totals) and counts of the finished rows still present (task_counts). Enqueue, claim
and complete never touch these tables. Reads add the few rows finished since the watermark live, so every
figure is exact whether or not the rollup ran lately; the rollup only decides how many rows a read has to
look at. The shape of what the rollup stores (`Tally`: a count per finished status, a column each, and
the run times) is defined here, with the reads.

Prometheus counters come from task_totals alone, never from rows a purge can remove: they lag the rollup
(ROLLUP_LAG_SECONDS and a tick) but never decrease. Task names label series only when admitted to
metric_names (METRIC_NAMES_MAX, at first sight, for good); the others are summed under OTHER_NAME.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, select, union_all

from taskq.clock import as_utc
from taskq.model import STATUS_CLASSES, TERMINAL_STATUSES, Status
from taskq.schema import (
    OUTCOME_COLUMNS,
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
    PENDING,
    RUNNING,
    _status_is,
    active_parts,
)

ROLLUP_LAG_SECONDS = 10.0  # rows finished this recently stay live: a transaction may still commit an older finished_at
COUNT_ATTEMPTS = 3  # reads of the counts raced by a rollup before counting the table itself
# Task names with series of their own in /metrics; the rest are summed under OTHER_NAME. With 24 series per
# name and queue (3 counters, 19 histogram buckets, count, sum), 100 names cost 2,424 series per queue.
METRIC_NAMES_MAX = 100
OTHER_NAME = "other"  # a task really named "other" shares that series: still a sum of monotonic counters
# The finished statuses whose tasks ran to an end (completed, failed): the throughput chart's series and
# the statuses whose run times the histograms hold.
RUN_OUTCOMES = tuple(status.value for status in Status if STATUS_CLASSES[status].ran_to_an_end)
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
    """Finished tasks of one (minute, queue, name) or (queue, name): the unit the rollup tables store. One
    count per finished status (`outcomes`, by its value: `tally.completed` reads it), and the run times of
    those that ran to an end (model.StatusClass.ran_to_an_end: not the cancelled)."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    runtime_count: int = 0
    runtime_sum: float = 0.0
    runtime_buckets: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BOUNDS_SECONDS) + 1))

    def __getattr__(self, name: str) -> int:
        outcomes = self.__dict__.get("outcomes")  # absent while a copy or unpickling builds the object
        if outcomes is None or name not in outcomes:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return int(outcomes[name])

    def add_row(self, status: str, started_at: datetime | None, finished_at: datetime) -> None:
        self.outcomes[status] += 1
        if started_at is not None and status in RUN_OUTCOMES:
            seconds = max(0.0, (as_utc(finished_at) - as_utc(started_at)).total_seconds())
            self.runtime_count += 1
            self.runtime_sum += seconds
            self.runtime_buckets[runtime_bucket(seconds)] += 1

    def merge(self, other: Tally | Mapping[Any, Any]) -> None:
        """Add another Tally, or a row of task_minutes or task_totals (its columns by name)."""
        values = other.values() if isinstance(other, Tally) else other
        for name in OUTCOME_COLUMNS:
            self.outcomes[name] += int(values.get(name) or 0)
        self.runtime_count += int(values.get("runtime_count") or 0)
        self.runtime_sum += float(values.get("runtime_sum") or 0.0)
        for index, name in enumerate(RUNTIME_BUCKET_COLUMNS):
            self.runtime_buckets[index] += int(values.get(name) or 0)

    def values(self) -> dict[str, Any]:
        """The tally as the rollup tables' columns."""
        return {
            **self.outcomes,
            "runtime_count": self.runtime_count,
            "runtime_sum": self.runtime_sum,
            **dict(zip(RUNTIME_BUCKET_COLUMNS, self.runtime_buckets, strict=True)),
        }


@dataclass
class ChartWindow:
    finished: dict[datetime, list[int]] = field(default_factory=dict)  # minute -> a count per RUN_OUTCOMES
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


# -- the rollup's state (store/rollup.py moves it) ------------------------------------------------------


def rollup_state_of(conn: Connection, *, lock: bool = False) -> RollupState:
    query = select(rollup_state).where(rollup_state.c.id == _STATE_ID)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        return RollupState(None, 0, False)
    watermark = None if row["watermark"] is None else as_utc(row["watermark"])
    return RollupState(watermark, int(row["generation"]), bool(row["counts_stale"]))


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
        select(task_minutes.c.minute, *(func.sum(task_minutes.c[outcome]) for outcome in RUN_OUTCOMES))
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
    for minute, *sums in minutes_rows:
        window.finished[_as_time(minute)] = [int(count or 0) for count in sums]
    for row in name_rows:
        window.runtimes[row[0]] = [int(count or 0) for count in row[1:]]
    tail = [r for r in tail if (queue is None or r.queue == queue) and (name is None or r.name == name)]
    for (minute, _queue, task_name), tally in _tally(tail)[0].items():
        counts = window.finished.setdefault(minute, [0] * len(RUN_OUTCOMES))
        for index, outcome in enumerate(RUN_OUTCOMES):
            counts[index] += tally.outcomes[outcome]
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


__all__ = ["RUNTIME_BOUNDS_SECONDS", "ChartWindow", "QueueDepth", "RollupState", "Tally", "percentile"]
