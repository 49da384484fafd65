"""Fresh databases with taskq's migrated schema: a SQLite file, or a private PostgreSQL schema dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from taskq.engine import open_engine

POSTGRES_URL = os.environ.get(
    "TASKQ_BENCH_POSTGRES_URL",
    os.environ.get("TASKQ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what taskq's UtcDateTime stores on SQLite

# The columns taskq's enqueue writes, in the order of `task_row`.
INSERT_COLUMNS = (
    "name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key, parent_id, "
    "progress, cancel_requested, timeout, continuation, children_total, children_completed, children_failed, "
    "children_cancelled, error_log, created_at"
)


def utc_now_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def task_row(now: str | datetime, status: str = "pending", name: str = "bench.tasks.noop") -> tuple:
    """One tasks row as taskq's enqueue writes it (JSON as text, time as SQLite text or a datetime)."""
    return (
        name,
        "default",
        "[]",
        "{}",
        status,
        0,
        now,
        0,
        3,
        None,
        None,
        0.0,
        False,
        None,
        None,
        0,
        0,
        0,
        0,
        "[]",
        now,
    )


def migrate(url: str) -> None:
    open_engine(url).dispose()


def sqlite_taskq_db(directory: Path, name: str = "bench.db") -> tuple[Path, str]:
    """A new SQLite file migrated by taskq's own Alembic scripts."""
    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    migrate(url)
    return path, url


@dataclass(frozen=True)
class PgSchema:
    name: str
    url: str  # SQLAlchemy URL whose connections see only this schema
    conninfo: str  # the same for bare psycopg


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(plain_conninfo(), connect_timeout=3):
            return None
    except Exception as error:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}".splitlines()[0]


def plain_conninfo() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_schema(prefix: str = "bench", migrated: bool = True) -> Iterator[PgSchema]:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
    schema = PgSchema(
        name,
        url.render_as_string(hide_password=False),
        f"{plain_conninfo()}?options=-csearch_path%3D{name}",
    )
    try:
        if migrated:
            migrate(schema.url)
        yield schema
    finally:
        with psycopg.connect(plain_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')
