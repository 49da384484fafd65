"""Dashboard at scale: dedup-key lookup index, per-minute rollups, finished-row counts, queue samples.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    dedup_key_set = sa.text("dedup_key IS NOT NULL")
    op.create_index(
        "ix_tasks_dedup_key",
        "tasks",
        ["dedup_key", "id"],
        sqlite_where=dedup_key_set,
        postgresql_where=dedup_key_set,
    )

    def counters(big: type[sa.types.TypeEngine]) -> list[sa.Column]:
        return [
            sa.Column("completed", big, nullable=False, server_default="0"),
            sa.Column("failed", big, nullable=False, server_default="0"),
            sa.Column("cancelled", big, nullable=False, server_default="0"),
            sa.Column("runtime_count", big, nullable=False, server_default="0"),
            sa.Column("runtime_sum", sa.Float, nullable=False, server_default="0"),
            # one per histogram bucket: 18 bounds (taskq.schema.RUNTIME_BOUNDS_SECONDS) and the rest above them
            *(sa.Column(f"runtime_b{i}", big, nullable=False, server_default="0") for i in range(19)),
        ]

    op.create_table(
        "task_minutes",
        sa.Column("minute", utc, primary_key=True),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        *counters(sa.Integer),
    )
    op.create_table(
        "task_totals",
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        *counters(sa.BigInteger),
    )
    op.create_table(
        "task_counts",
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(32), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "queue_samples",
        sa.Column("minute", utc, primary_key=True),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("pending", sa.Integer, nullable=False),
        sa.Column("ready", sa.Integer, nullable=False),
        sa.Column("running", sa.Integer, nullable=False),
        sa.Column("oldest_ready_at", utc),
    )
    state = op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("watermark", utc),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("counts_stale", sa.Boolean, nullable=False, server_default="0"),
    )
    # Existing finished rows are counted by the first rollup (watermark NULL = nothing rolled up yet).
    op.bulk_insert(state, [{"id": 1, "watermark": None, "generation": 0, "counts_stale": False}])


def downgrade() -> None:
    for table in ("rollup_state", "queue_samples", "task_counts", "task_totals", "task_minutes"):
        op.drop_table(table)
    op.drop_index("ix_tasks_dedup_key", table_name="tasks")
