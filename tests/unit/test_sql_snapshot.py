"""A reviewer's view of the SQL: every statement the store names, compiled for SQLite and PostgreSQL, is
kept in tests/sql/statements.sql (tests/support/sql_snapshot.py writes it). A change to the store's SQL
fails here until the file is refreshed, so the change shows up in review as a diff of that file."""

from __future__ import annotations

import pytest
from sql_snapshot import BUILDER_NAMES, REFRESH, SNAPSHOT, difference, render, statement_builders


def test_the_compiled_sql_is_the_snapshot() -> None:
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    actual = render()
    if actual != expected:
        pytest.fail(
            f"the store's SQL differs from {SNAPSHOT.name}; if that is meant, run `{REFRESH}` and commit the file\n"
            + difference(expected, actual),
            pytrace=False,
        )


def test_every_statement_builder_of_the_store_is_in_the_snapshot() -> None:
    # A new builder (a cached function, *_statement, *_query, or one typed to return a statement) needs
    # its shapes listed in sql_snapshot._builders, or its SQL would change unseen.
    assert statement_builders() == BUILDER_NAMES
