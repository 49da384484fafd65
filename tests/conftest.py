"""Shared fixtures: a real SQLite file per test, and (when TASKQ_TEST_POSTGRES_URL is set) a private
PostgreSQL schema per test, so one store suite runs on both dialects."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from poolkit import PoolProcess
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import taskq
from taskq.store import Store

POSTGRES_URL = os.environ.get("TASKQ_TEST_POSTGRES_URL")
POSTGRES_SKIP_REASON = "TASKQ_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'taskq.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema of their own; dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    schema = f"taskq_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a real SQLite file and on real PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = taskq.open_store(database_url)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """For pool tests: the URL of a real SQLite file, and a store on it to enqueue and observe."""
    url = sqlite_url(tmp_path)
    opened = taskq.open_store(url)
    yield url, opened
    opened.dispose()


@pytest.fixture
def pools() -> Iterator[list[PoolProcess]]:
    """Pools a test starts and appends here are stopped (SIGTERM, then SIGKILL) when it ends."""
    started: list[PoolProcess] = []
    yield started
    for pool in started:
        pool.stop()
