"""Where the tests' databases come from: a real SQLite file in a folder, or (when TASKQ_TEST_POSTGRES_URL is
set) a private PostgreSQL schema that is dropped afterwards."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TASKQ_TEST_POSTGRES_URL")
POSTGRES_SKIP_REASON = "TASKQ_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'taskq.db'}"


class PrivateSchema:
    """A schema of our own on the test server; connections through `url` see only it."""

    def __init__(self, **settings: str) -> None:
        assert POSTGRES_URL
        self.name = f"taskq_test_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(POSTGRES_URL, pool_pre_ping=True)
        with self.admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{self.name}"'))
        options = " ".join([f"-csearch_path={self.name}", *(f"-c{key}={value}" for key, value in settings.items())])
        self.url = make_url(POSTGRES_URL).update_query_dict({"options": options}).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self.admin.dispose()
