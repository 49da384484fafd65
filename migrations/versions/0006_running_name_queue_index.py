"""Concurrency caps: an index on running rows by (name, queue), so a claim that respects
@task(max_concurrency=...) or a queue's max_concurrency counts the running rows of a name with a seek and
those of a queue within the running rows only. Partial: pending and finished rows never enter it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_index("ix_tasks_running", "tasks", ["name", "queue"], sqlite_where=_RUNNING, postgresql_where=_RUNNING)


def downgrade() -> None:
    op.drop_index("ix_tasks_running", table_name="tasks")
