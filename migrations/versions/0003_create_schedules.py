"""Create the schedules table (state of the periodic tasks configured in settings.yaml).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec_hash", sa.String(64)),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")),
        sa.Column("run_after", utc),
        sa.Column("anchor", utc),
    )


def downgrade() -> None:
    op.drop_table("schedules")
