"""Alembic owns the schema: upgrade, downgrade round trip, and no drift from taskq/schema.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from taskq.engine import SCHEMA_REVISION, create_database_engine, ensure_schema, head_revision, open_engine
from taskq.schema import metadata

ROOT = Path(__file__).resolve().parents[2]


def _alembic(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x", f"url={url}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TASKQ_DATABASE_URL": ""},
    )


def test_alembic_downgrade_base_then_upgrade_round_trips(database_url: str) -> None:
    engine = open_engine(database_url)
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()
    down = _alembic("downgrade", "base", url=database_url)
    assert down.returncode == 0, down.stderr
    engine = create_database_engine(database_url)
    assert "tasks" not in inspect(engine).get_table_names()
    up = _alembic("upgrade", "head", url=database_url)
    assert up.returncode == 0, up.stderr
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    engine.dispose()


def test_migrated_schema_matches_schema_py(database_url: str) -> None:
    engine = create_database_engine(database_url)
    ensure_schema(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]
    engine.dispose()
    assert differences == []


def test_the_revision_ensure_schema_expects_is_alembics_head() -> None:
    assert head_revision() == SCHEMA_REVISION, "update taskq.engine.SCHEMA_REVISION with each new migration"


def test_alembic_check_finds_no_difference_from_schema_py(database_url: str) -> None:
    """`alembic check`, as an operator runs it: migrations/env.py gives Alembic taskq's metadata."""
    engine = open_engine(database_url)
    engine.dispose()
    check = _alembic("check", url=database_url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
