"""Create the tasks table and its indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = "status IN ('pending', 'running', 'waiting_for_children')"
TERMINAL = "status IN ('cancelled', 'completed', 'failed')"


def upgrade() -> None:
    task_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "tasks",
        sa.Column("id", task_id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(100), nullable=False, server_default="default"),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("kwargs", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="pending"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_after", utc, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_retries", sa.Integer, nullable=False, server_default="3"),
        sa.Column("dedup_key", sa.String(500)),
        sa.Column("parent_id", task_id, sa.ForeignKey("tasks.id", ondelete="CASCADE")),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("progress_message", sa.Text),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("error_log", sa.JSON),
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
    )
    pending = sa.text("status = 'pending'")
    running = sa.text("status = 'running'")
    has_parent = sa.text("parent_id IS NOT NULL")
    op.create_index(
        "ix_tasks_claim",
        "tasks",
        ["status", sa.text("priority DESC"), "run_after", "id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index(
        "ux_tasks_dedup_active",
        "tasks",
        ["dedup_key"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index("ix_tasks_status_id", "tasks", ["status", "id"])
    op.create_index("ix_tasks_name_id", "tasks", ["name", "id"])
    op.create_index(
        "ix_tasks_parent",
        "tasks",
        ["parent_id", "status"],
        sqlite_where=has_parent,
        postgresql_where=has_parent,
    )
    op.create_index("ix_tasks_lease", "tasks", ["lease_until"], sqlite_where=running, postgresql_where=running)
    op.create_index(
        "ix_tasks_finished",
        "tasks",
        ["finished_at"],
        sqlite_where=sa.text(TERMINAL),
        postgresql_where=sa.text(TERMINAL),
    )


def downgrade() -> None:
    op.drop_table("tasks")
