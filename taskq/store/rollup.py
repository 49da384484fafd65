"""The rollup: the one writer of the tables the dashboard and /metrics read (store/metrics.py reads them).

The StatsRollup duty (taskq/maintenance.py) calls it off the hot path: rows finished since the watermark
are tallied outside the write lock (`chunk_to_roll_up`), then folded into task_minutes, task_totals and
task_counts in one short write transaction (`fold_rollup`), which first locks rollup_state and checks that
neither the watermark nor the generation moved meanwhile (another dashboard rolled up, an operator retried
or purged); if one did it gives up and the next tick starts again. Also here: the recount of task_counts
after a purge, the queue-depth samples and the pruning of history.

An operator action that takes finished rows away before the rollup reached them (a retry of a task that
just failed, a purge of rows that just finished) first adds those rows' outcomes to the rollups itself, in
its own transaction, and bumps the generation (retry also takes its rows out of task_counts; purge marks
task_counts stale): every completion, failure and cancellation is counted once, by whichever of the two
meets it first, so the Prometheus counters never decrease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, delete, func, insert, select, update

from taskq.model import TERMINAL_STATUSES
from taskq.schema import metric_names, queue_samples, rollup_state, task_counts, task_minutes, task_totals, tasks
from taskq.store import metrics
from taskq.store.base import _status_is
from taskq.store.metrics import (
    _EPOCH,
    _STATE_ID,
    QueueDepth,
    RollupState,
    Tally,
    _as_time,
    _finished_rows_query,
    _tally,
    minute_of,
    rollup_state_of,
)

ROLLUP_CHUNK_ROWS = 20_000  # finished rows per rollup transaction (~tens of ms of write lock on SQLite)
HISTORY_DAYS = 8  # per-minute buckets and queue samples kept (charts show up to a day)
_IN_BATCH = 500  # values per IN (...) of names or ids: well under every driver's parameter limit


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
    room = metrics.METRIC_NAMES_MAX - int(conn.execute(select(func.count()).select_from(metric_names)).scalar_one())
    if room <= 0 or not totals:
        return
    volume: dict[str, int] = {}
    for (_queue, name), tally in totals.items():
        volume[name] = volume.get(name, 0) + sum(tally.outcomes.values())
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
