"""The tables, as SQLAlchemy Core objects. Alembic migrations create them; a test keeps the two in step."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

from taskq.clock import as_utc
from taskq.json_limits import EncodedJson, read_column
from taskq.model import ACTIVE_STATUSES, TERMINAL_STATUSES, Status, in_enum_order


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC and returns aware UTC on every dialect.

    SQLite has no time zone type: SQLAlchemy's DateTime drops an offset without converting, so
    12:00+02:00 would be stored as 12:00. We convert to UTC first and store naive UTC there, always
    in SQLAlchemy's fixed 'YYYY-MM-DD HH:MM:SS.ffffff' form, so string comparison in SQL is time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class JsonText(TypeDecorator[Any]):
    """A JSON document kept as the text json.dumps wrote, so every value reads back as it was written.

    SQLite gives a column typed JSON NUMERIC affinity: a bare-number document (a task's result) that
    looks numeric is converted on the way in, so 2**64 came back as 1.8446744073709552e+19 and 1.0 as 1.
    TEXT affinity leaves text alone: SQLite stores TEXT and this type encodes and decodes (json.dumps and
    json_limits.read_column, None included: it becomes 'null'). PostgreSQL keeps its
    json type, which stores the text as written (jsonb would not: it rewrites 1e16 as 10000000000000000).
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(Text() if dialect.name == "sqlite" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return json.dumps(value) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        # Text the enqueue check already encoded (EncodedJson) is bound as it is, on both dialects.
        encode = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if type(value) is EncodedJson or encode is None:
                return value
            return encode(value)

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name != "sqlite" or value is None:
            return value  # psycopg decoded it, with the engine's json_deserializer (json_limits.read_column)
        return read_column(value)  # never raises: a row too deep to read is read with a placeholder


def _status_in(statuses: frozenset[Status]) -> Any:
    quoted = ", ".join(f"'{status.value}'" for status in sorted(statuses, key=lambda s: s.value))
    return text(f"status IN ({quoted})")


DIALECTS = ("sqlite", "postgresql")  # those taskq runs on, each with its own migrations' `<dialect>_where`
# Each partial index and its predicate, the same on every dialect. The predicate is attached as
# `<dialect>_where` by declare_partial_indexes() for the dialects in use, not given to Index(): SQLAlchemy
# imports a dialect to check a keyword named after it, and PostgreSQL's brings the modules of all its
# drivers (asyncpg, pg8000, psycopg2 ...), ~40 ms of every SQLite process's start.
_PARTIAL_INDEXES: list[tuple[Index, TextClause]] = []


def _partial_index(name: str, *columns: Any, where: TextClause, unique: bool = False) -> Index:
    index = Index(name, *columns, unique=unique)
    _PARTIAL_INDEXES.append((index, where))
    return index


def declare_partial_indexes(dialect_name: str) -> None:
    """Give each partial index its predicate as `<dialect_name>_where` (idempotent): what Alembic compares
    and renders into a new migration, and what DDL from this metadata would create. taskq's engines call it
    for their dialect (taskq/engine.py), migrations/env.py for every dialect in DIALECTS."""
    for index, where in _PARTIAL_INDEXES:
        index.dialect_options[dialect_name]["where"] = where


metadata = MetaData()

# BigInteger on PostgreSQL, INTEGER on SQLite (the rowid alias; `tasks` adds AUTOINCREMENT below).
TaskId = BigInteger().with_variant(Integer(), "sqlite")

tasks = Table(
    "tasks",
    metadata,
    Column("id", TaskId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("queue", String(100), nullable=False, server_default="default"),
    Column("args", JsonText, nullable=False),
    Column("kwargs", JsonText, nullable=False),
    Column("status", String(32), nullable=False, server_default=Status.PENDING.value),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("run_after", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_retries", Integer, nullable=False, server_default="3"),
    Column("dedup_key", String(500)),
    Column("parent_id", TaskId, ForeignKey("tasks.id", ondelete="CASCADE")),
    Column("progress", Float, nullable=False, server_default="0"),
    Column("progress_message", Text),
    Column("result", JsonText),
    Column("error", Text),
    Column("error_log", JsonText),
    Column("worker_id", String(200)),
    Column("lease_until", UtcDateTime),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("timeout", Float),
    Column("continuation", String(200)),
    Column("children_total", Integer, nullable=False, server_default="0"),
    Column("children_completed", Integer, nullable=False, server_default="0"),
    Column("children_failed", Integer, nullable=False, server_default="0"),
    Column("children_cancelled", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    # The enqueuer's trace context (taskq/tracing.py): written by the INSERT that creates the task.
    Column("trace_context", Text),
    # Follows the Status enum (in its order); a new status still needs a migration to reach databases.
    CheckConstraint(
        "status IN ({})".format(", ".join(f"'{status.value}'" for status in Status)),
        name="ck_tasks_status",
    ),
    CheckConstraint("progress >= 0 AND progress <= 100", name="ck_tasks_progress"),
    # Ids are never reused: without AUTOINCREMENT SQLite gives max(id) + 1, so after a purge of the newest
    # rows a new task took a purged one's id (links, saved ids and schedules.task_id then named another
    # task). Costs one sqlite_sequence update per insert; PostgreSQL's sequence never reuses anyway.
    sqlite_autoincrement=True,
)

PENDING_ONLY = text("status = 'pending'")
RUNNING_ONLY = text("status = 'running'")

# The claim's ORDER BY (priority DESC, run_after, id) walks this index in order; it is partial, so
# finished rows never enter it and claim cost stays flat however many of them the table keeps.
# The leading status column looks redundant but is not: it gives SQLite's planner the same equality
# match as ix_tasks_status_id, so it picks this index (no sort) over that one (sort every pending row).
_partial_index(
    "ix_tasks_claim", tasks.c.status, tasks.c.priority.desc(), tasks.c.run_after, tasks.c.id, where=PENDING_ONLY
)
# One active task per dedup key, on every dialect; finished tasks release their key. Rows without a key
# stay out of it: most tasks have none, and an entry each cost a third of a single enqueue on SQLite.
DEDUP_ACTIVE = text(f"dedup_key IS NOT NULL AND {_status_in(ACTIVE_STATUSES).text}")
_partial_index("ux_tasks_dedup_active", tasks.c.dedup_key, where=DEDUP_ACTIVE, unique=True)
# Listing by status or name, newest first, and stats() as an index-only GROUP BY, over the rows that
# are neither pending nor running: those two have ix_tasks_claim and ix_tasks_lease, and keeping them
# out means an enqueue and a claim touch neither index (measured: a third more single enqueues/s on
# SQLite). SQLite uses a partial index only when the query repeats its WHERE term: see SETTLED below.
SETTLED = text("status NOT IN ('pending', 'running')")
_partial_index("ix_tasks_status_id", tasks.c.status, tasks.c.id, where=SETTLED)
_partial_index("ix_tasks_name_id", tasks.c.name, tasks.c.id, where=SETTLED)
_partial_index("ix_tasks_parent", tasks.c.parent_id, tasks.c.status, where=text("parent_id IS NOT NULL"))
# Lease recovery looks only at running rows.
_partial_index("ix_tasks_lease", tasks.c.lease_until, where=RUNNING_ONLY)
# Purge by age looks only at finished rows.
_partial_index("ix_tasks_finished", tasks.c.finished_at, where=_status_in(TERMINAL_STATUSES))

# One row per live worker process, refreshed by its heartbeat; rows of dead workers age out.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("queues", JSON, nullable=False),  # always a list: NUMERIC affinity leaves such text alone
    Column("started_at", UtcDateTime, nullable=False),
    Column("heartbeat_at", UtcDateTime, nullable=False),
    Column("current_task_id", TaskId),
    Column("tasks_done", Integer, nullable=False, server_default="0"),
)
Index("ix_workers_heartbeat", workers.c.heartbeat_at)

# One row per configured periodic schedule: which task row holds its current occurrence and the slots it
# was computed from. The scheduler reads this instead of searching finished tasks for a schedule's last
# run, and locks the row so that pools on several hosts compute each next occurrence once.
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("spec_hash", String(64)),  # of the settings entry the current occurrence was made from
    Column("task_id", TaskId),  # the current occurrence's task row (may since have been purged)
    Column("run_after", UtcDateTime),  # the current occurrence's slot (the task row's own may move on retry)
    Column("anchor", UtcDateTime),  # the previous occurrence's slot: an edit recomputes run_after from it
)

# ---- What the dashboard reads instead of scanning tasks (migration 0005) -------------------------------
# The newest task for a dedup key once it has finished (ux_tasks_dedup_active covers only active rows).
# Partial, so enqueues without a dedup key never touch it; its columns never change after insert, so
# claims and completions never touch it either.
DEDUP_KEY_SET = text("dedup_key IS NOT NULL")
_partial_index("ix_tasks_dedup_key", tasks.c.dedup_key, tasks.c.id, where=DEDUP_KEY_SET)

# Upper bounds of the runtime histogram buckets, in seconds (Prometheus-style); column runtime_b<i> counts
# the runs in bucket i, and one more bucket (runtime_b<len>) the runs above every bound. Columns rather
# than a JSON list so that SQL can sum a window's histograms.
RUNTIME_BOUNDS_SECONDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
RUNTIME_BUCKET_COLUMNS = tuple(f"runtime_b{i}" for i in range(len(RUNTIME_BOUNDS_SECONDS) + 1))
# One count per finished status, named by it, in the enum's order. Columns rather than rows per status, for
# the same reason as the buckets (and /metrics reads one row per queue and name); so a new finished status
# is a new column, which the migration that brings the status adds.
OUTCOME_COLUMNS = tuple(status.value for status in in_enum_order(TERMINAL_STATUSES))


def _tally_columns(kind: Any) -> list[Column[Any]]:
    return [
        *(Column(name, kind, nullable=False, server_default="0") for name in OUTCOME_COLUMNS),
        Column("runtime_count", kind, nullable=False, server_default="0"),
        Column("runtime_sum", Float, nullable=False, server_default="0"),
        *(Column(name, kind, nullable=False, server_default="0") for name in RUNTIME_BUCKET_COLUMNS),
    ]


# Finished tasks per minute, queue and task name: the charts read these instead of scanning history.
# Written by the StatsRollup duty (taskq/maintenance.py) off the hot path.
task_minutes = Table(
    "task_minutes",
    metadata,
    Column("minute", UtcDateTime, primary_key=True),
    Column("queue", String(100), primary_key=True),
    Column("name", String(200), primary_key=True),
    *_tally_columns(Integer),
)
# The same, summed over all time: monotonic counters and histograms for /metrics.
task_totals = Table(
    "task_totals",
    metadata,
    Column("queue", String(100), primary_key=True),
    Column("name", String(200), primary_key=True),
    *_tally_columns(BigInteger),
)
# Finished rows present in `tasks` with finished_at <= the rollup watermark, per queue and status: stats()
# adds the few rows finished since, and the active rows, instead of counting a million finished ones.
task_counts = Table(
    "task_counts",
    metadata,
    Column("queue", String(100), primary_key=True),
    Column("status", String(32), primary_key=True),
    Column("n", BigInteger, nullable=False, server_default="0"),
)
# One sample per queue and minute (the last one taken in that minute wins): queue depth over time.
queue_samples = Table(
    "queue_samples",
    metadata,
    Column("minute", UtcDateTime, primary_key=True),
    Column("queue", String(100), primary_key=True),
    Column("pending", Integer, nullable=False),  # all pending, scheduled and retrying included
    Column("ready", Integer, nullable=False),  # pending and due: what workers could claim now
    Column("running", Integer, nullable=False),
    Column("oldest_ready_at", UtcDateTime),
)
# One row (id = 1): finished rows up to `watermark` are in task_minutes, task_totals and task_counts.
# `generation` changes whenever an operator action (retry, purge) removes finished rows, so a rollup or
# recount computed outside the write lock can tell its inputs moved and try again; `counts_stale` says
# task_counts must be recounted (a purge deleted rows, children through ON DELETE CASCADE included).
rollup_state = Table(
    "rollup_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("watermark", UtcDateTime),
    Column("generation", BigInteger, nullable=False, server_default="0"),
    Column("counts_stale", Boolean, nullable=False, server_default="0"),
)
# The task names /metrics gives series of their own (taskq.store.metrics.METRIC_NAMES_MAX at most): a name
# is admitted when the rollup first meets it while there is room, and stays; the rest are summed under
# name="other". Admitted for good and only at first sight, so no name's history ever moves between its
# own series and "other", and every counter stays monotonic.
metric_names = Table(
    "metric_names",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("admitted_at", UtcDateTime, nullable=False),
)
# ---- end of what the dashboard reads -------------------------------------------------------------------
