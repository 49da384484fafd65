"""Alembic owns the schema: upgrade, downgrade round trip, and no drift from taskq/schema.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from taskq.engine import SCHEMA_REVISION, create_database_engine, ensure_schema, head_revision, open_engine
from taskq.model import ACTIVE_STATUSES, TERMINAL_STATUSES, Status
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


def _status_literals(sql: str) -> set[str]:
    return set(re.findall(r"'([a-z_]+)'", sql))


def test_the_migrated_status_constraint_and_partial_indexes_name_the_enums_statuses(database_url: str) -> None:
    """The drift check above compares neither CHECK constraints nor index predicates, and schema.py writes
    both from the Status enum: so a new status without its migration would pass it and be refused by the
    database on its first write. This is the check that a new status comes with that migration."""
    engine = open_engine(database_url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            table_sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'tasks'")).scalar_one()
            check = table_sql[table_sql.index("ck_tasks_status") :].split("CONSTRAINT")[0]

            def index_sql(name: str) -> str:
                query = text("SELECT sql FROM sqlite_master WHERE name = :name")
                return str(connection.execute(query, {"name": name}).scalar_one())
        else:
            check = connection.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conname = 'ck_tasks_status' AND conrelid = 'tasks'::regclass"
                )
            ).scalar_one()

            def index_sql(name: str) -> str:
                query = text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"
                )
                return str(connection.execute(query, {"name": name}).scalar_one())

        dedup, finished = index_sql("ux_tasks_dedup_active"), index_sql("ix_tasks_finished")
    engine.dispose()
    assert _status_literals(check) == {status.value for status in Status}
    assert _status_literals(dedup.split("WHERE", 1)[1]) == {status.value for status in ACTIVE_STATUSES}
    assert _status_literals(finished.split("WHERE", 1)[1]) == {status.value for status in TERMINAL_STATUSES}


# What schema.py declares for the dialect of an engine taskq makes, in a fresh interpreter: no migration has
# run there to declare every dialect's predicates (migrations/env.py).
_DECLARED = """
import json, sys
from taskq.engine import create_database_engine
from taskq.schema import metadata
dialect = create_database_engine(sys.argv[1]).dialect.name
print(json.dumps({index.name: None if index.dialect_options[dialect]["where"] is None
                  else str(index.dialect_options[dialect]["where"])
                  for table in metadata.tables.values() for index in table.indexes}))
"""


def test_the_partial_indexes_of_schema_py_are_the_migrated_databases(database_url: str) -> None:
    """schema.py gives its partial indexes their predicate for the dialect of each engine (so that SQLite never
    imports PostgreSQL's dialect), and Alembic compares index columns, not predicates: this test does."""
    engine = open_engine(database_url)
    dialect = engine.dialect.name
    migrated = {
        index["name"]: index.get("dialect_options", {}).get(f"{dialect}_where")
        for table in metadata.tables.values()
        for index in inspect(engine).get_indexes(table.name)
    }
    engine.dispose()
    probe = subprocess.run(
        [sys.executable, "-c", _DECLARED, database_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert probe.returncode == 0, probe.stderr
    declared = json.loads(probe.stdout)
    partial = {name for name, where in declared.items() if where is not None}
    assert partial == {name for name, where in migrated.items() if where is not None}
    assert len(partial) == 8
    if dialect == "sqlite":  # SQLite keeps the CREATE INDEX text; PostgreSQL rewrites the predicate
        for name in partial:
            assert " ".join(str(migrated[name]).split()) == " ".join(declared[name].split()), name
