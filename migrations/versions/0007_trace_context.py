"""The enqueuer's trace context, stored with each task (taskq/tracing.py).

One nullable TEXT column: the OpenTelemetry propagator's carrier as JSON ({"traceparent": ...}), written by
the INSERT that creates the task when an SDK is configured, NULL otherwise. Adding a nullable column
without a default rewrites no row on either dialect (SQLite: ALTER TABLE ADD COLUMN edits the schema
only; PostgreSQL 11+: a catalog change), so the upgrade is instant on a large table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("trace_context", sa.Text()))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column no index or constraint names in place, as PostgreSQL does.
    op.drop_column("tasks", "trace_context")
