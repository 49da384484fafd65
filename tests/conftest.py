"""Shared fixtures: a real SQLite file per test, and (when TASKQ_TEST_POSTGRES_URL is set) a private
PostgreSQL schema per test, so one store suite runs on both dialects.

The layers (tests/README.md): unit/ (in-process, no PostgreSQL, under 10 s), contract/ (the store on both
dialects), process/ (real pools, signals, servers). Helpers and the task modules workers import
(`--import pool_tasks`) live in support/, which goes on sys.path here and on the workers' PYTHONPATH in
support/poolkit.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent / "support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from databases import POSTGRES_SKIP_REASON, POSTGRES_URL, PrivateSchema, sqlite_url  # noqa: E402
from poolkit import PoolProcess  # noqa: E402

import taskq  # noqa: E402
from taskq.store import Store  # noqa: E402

__all__ = ["POSTGRES_SKIP_REASON", "POSTGRES_URL", "sqlite_url"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own; dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    schema = PrivateSchema()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a real SQLite file and on real PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the schema's head, made once per session by the store's own upgrade: migrating a new
    file runs every Alembic revision (~30 ms of CPU), more than most tests that need a database."""
    folder = tmp_path_factory.mktemp("migrated")
    taskq.open_store(sqlite_url(folder)).dispose()
    migrated = folder / "taskq.db"
    assert [path.name for path in folder.iterdir()] == [migrated.name], "closed: no -wal or -shm file left"
    return migrated


@pytest.fixture
def sqlite_db(tmp_path: Path, migrated_sqlite_file: Path) -> str:
    """The URL of a SQLite file of this test's own, already at the schema's head (a copy of
    `migrated_sqlite_file`). A test of migrating a new file uses `sqlite_url(tmp_path)` instead."""
    shutil.copyfile(migrated_sqlite_file, tmp_path / migrated_sqlite_file.name)
    return sqlite_url(tmp_path)


def _opened(url: str) -> Iterator[Store]:
    opened = taskq.open_store(url)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    yield from _opened(database_url)


@pytest.fixture
def sqlite_store(sqlite_db: str) -> Iterator[Store]:
    """A store on a real SQLite file, for tests of something above the store (the contract tests use `store`)."""
    yield from _opened(sqlite_db)


@pytest.fixture
def db(sqlite_db: str, sqlite_store: Store) -> tuple[str, Store]:
    """The URL of a real SQLite file (for the CLI or a pool), and a store on it to enqueue and observe."""
    return sqlite_db, sqlite_store


@pytest.fixture
def pools() -> Iterator[list[PoolProcess]]:
    """Pools a test starts and appends here are stopped (SIGTERM, then SIGKILL) when it ends."""
    started: list[PoolProcess] = []
    yield started
    for pool in started:
        pool.stop()
