"""Create the workers table (heartbeats of live worker processes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("queues", sa.JSON, nullable=False),
        sa.Column("started_at", utc, nullable=False),
        sa.Column("heartbeat_at", utc, nullable=False),
        sa.Column("current_task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        sa.Column("tasks_done", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_workers_heartbeat", "workers", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_table("workers")
