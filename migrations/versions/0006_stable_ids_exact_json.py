"""Task ids never reused, JSON kept as written on SQLite, a bounded set of task names for /metrics.

SQLite: `tasks` is rebuilt once, every row and id kept. Its id becomes INTEGER PRIMARY KEY AUTOINCREMENT:
without it SQLite hands out max(id) + 1, so after a purge of the newest rows the next task took a
purged task's id (and links, saved ids and schedules.task_id pointed at another task). The JSON columns
become TEXT: a column typed JSON has NUMERIC affinity, which turned a bare-number document such as
18446744073709551616 or 1.0 into a REAL or INTEGER (1.8446744073709552e+19, 1). TEXT keeps the text.
The rebuild keeps the indexes as they are (their SQL is read back from sqlite_master) and the CHECK
constraints; the new table's self-reference names the new table, so dropping the old one under
PRAGMA foreign_keys=ON cascades into nothing, and RENAME points it back at `tasks`.
PostgreSQL needs neither: BIGSERIAL never reuses, and its json type stores the text as written.

Both dialects: `metric_names`, the task names /metrics labels by name (at most METRIC_NAMES_MAX; the
others are summed under name="other"), seeded here with the busiest names already rolled up.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

METRIC_NAMES_SEEDED = 100  # taskq.store.metrics.METRIC_NAMES_MAX when this migration was written
_REBUILT = "tasks_rebuilt"


def _tasks(metadata: sa.MetaData, name: str, json: type[sa.types.TypeEngine], autoincrement: bool) -> sa.Table:
    """`tasks` as of this revision (frozen here: schema.py moves on), under `name`, without its indexes."""
    task_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    utc = sa.DateTime(timezone=True)
    return sa.Table(
        name,
        metadata,
        sa.Column("id", task_id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False, server_default="default"),
        sa.Column("args", json, nullable=False),
        sa.Column("kwargs", json, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="pending"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_after", utc, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_retries", sa.Integer, nullable=False, server_default="3"),
        sa.Column("dedup_key", sa.String(500)),
        sa.Column("parent_id", task_id, sa.ForeignKey(f"{name}.id", ondelete="CASCADE")),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("progress_message", sa.Text),
        sa.Column("result", json),
        sa.Column("error", sa.Text),
        sa.Column("error_log", json),
        sa.Column("worker_id", sa.String(200)),
        sa.Column("lease_until", utc),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("timeout", sa.Float),
        sa.Column("continuation", sa.String(200)),
        sa.Column("children_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("children_completed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("children_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("children_cancelled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("started_at", utc),
        sa.Column("finished_at", utc),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'waiting_for_children', 'completed', 'failed', 'cancelled')",
            name="ck_tasks_status",
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="ck_tasks_progress"),
        sqlite_autoincrement=autoincrement,
    )


def _rebuild_sqlite_tasks(json: type[sa.types.TypeEngine], autoincrement: bool) -> None:
    bind = op.get_bind()
    index_sql = (
        bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL")
        )
        .scalars()
        .all()
    )
    rebuilt = _tasks(sa.MetaData(), _REBUILT, json, autoincrement)
    rebuilt.create(bind)
    columns = ", ".join(f'"{column.name}"' for column in rebuilt.columns)
    # In id order, so each child's parent row is already there when the foreign key is checked.
    bind.execute(sa.text(f"INSERT INTO {_REBUILT} ({columns}) SELECT {columns} FROM tasks ORDER BY id"))
    bind.execute(sa.text("DROP TABLE tasks"))
    bind.execute(sa.text(f"ALTER TABLE {_REBUILT} RENAME TO tasks"))
    for sql in index_sql:
        bind.execute(sa.text(sql))
    if autoincrement:
        # The copy set the sequence to max(id). Ids that schedules and workers still hold may be higher (their
        # task rows purged): start above those too, so none of them ever names a new task.
        highest = bind.execute(
            sa.text(
                "SELECT max(coalesce((SELECT max(id) FROM tasks), 0),"
                " coalesce((SELECT max(task_id) FROM schedules), 0),"
                " coalesce((SELECT max(current_task_id) FROM workers), 0))"
            )
        ).scalar_one()
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'tasks'"))
        bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('tasks', :seq)"), {"seq": highest})


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_tasks(sa.Text, autoincrement=True)
    names = op.create_table(
        "metric_names",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Names already rolled up are admitted busiest first. Admission is for good (a name leaving its own
    # series would take its history out of "other"), so this choice is the only one not made at first sight.
    totals = sa.table(
        "task_totals", sa.column("name"), sa.column("completed"), sa.column("failed"), sa.column("cancelled")
    )
    volume = sa.func.sum(totals.c.completed + totals.c.failed + totals.c.cancelled)
    busiest = (
        sa.select(totals.c.name)
        .group_by(totals.c.name)
        .order_by(volume.desc(), totals.c.name)
        .limit(METRIC_NAMES_SEEDED)
    )
    now = datetime.now(UTC)
    rows = [{"name": name, "admitted_at": now} for name in op.get_bind().execute(busiest).scalars()]
    if rows:
        op.bulk_insert(names, rows)


def downgrade() -> None:
    op.drop_table("metric_names")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_tasks(sa.JSON, autoincrement=False)
