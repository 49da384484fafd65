"""Database URLs as taskq shows and reads them: the one masking helper every message uses, the short
PostgreSQL schemes mapped to the installed driver, and SQLite paths made absolute.

Imports only SQLAlchemy's URL type, so settings.py (the bottom of the import order) can use it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from taskq.distribution import install_hint

MASK = "***"
UNPARSABLE = "<a value that is not a URL (scheme://...), not shown: it may hold a password>"
# Query parameters libpq and its drivers read a secret from (`?password=...` is as good as `user:pw@`).
_SECRET_QUERY_KEYS = ("password", "sslpassword", "passfile")
# The schemes Heroku, Render, Docker images and libpq itself hand out; SQLAlchemy knows only `postgresql`
# (and maps it to psycopg2, which taskq does not use: its wake-up speaks psycopg 3).
_SHORT_POSTGRES_SCHEMES = ("postgres", "postgresql")
POSTGRES_DRIVER = "postgresql+psycopg"


class DatabaseURLError(ValueError):
    """A database value taskq cannot use; its message never holds the value's password."""


def parse(value: str | URL) -> URL | None:
    """The URL, or None when SQLAlchemy cannot read it (never an exception that would quote it)."""
    if isinstance(value, URL):
        return value
    try:
        return make_url(value)
    except Exception:  # ArgumentError, ValueError on a bad port, ...: all of them may quote the value
        return None


def mask(value: object) -> str:
    """`value` fit to print or log: the password (in user:pw@ or the query) replaced by ***; a value that
    does not parse as a URL is not shown at all, since where its password is cannot be told."""
    url = parse(value) if isinstance(value, (str, URL)) else None
    if url is None or (isinstance(value, str) and "://" not in value):
        return UNPARSABLE
    query = {key: (MASK if key.lower() in _SECRET_QUERY_KEYS else item) for key, item in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True)


def normalize(value: str) -> str:
    """`postgres://` and `postgresql://` -> `postgresql+psycopg://` when psycopg 3 is installed; without
    it, a DatabaseURLError with the one command that fixes it. Any other URL is returned unchanged."""
    url = parse(value)
    if url is None or url.drivername not in _SHORT_POSTGRES_SCHEMES:
        return value
    if importlib.util.find_spec("psycopg") is None:
        raise DatabaseURLError(
            f"{url.drivername}:// needs psycopg 3 (taskq's PostgreSQL driver): {install_hint('postgres')},"
            f" then use it as is or as {POSTGRES_DRIVER}://"
        )
    return url.set(drivername=POSTGRES_DRIVER).render_as_string(hide_password=False)


def sqlite_file(value: str | URL) -> Path | None:
    """The file a SQLite URL names, as written (maybe relative); None for other databases, memory, URIs."""
    url = parse(value)
    if url is None or url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def anchored(value: str, folder: Path) -> str:
    """A SQLite URL whose relative path is taken from `folder` instead of the working directory."""
    path = sqlite_file(value)
    if path is None or path.is_absolute():
        return value
    url = parse(value)
    assert url is not None
    return url.set(database=os.path.abspath(folder / path)).render_as_string(hide_password=False)


def describe(value: str) -> str:
    """What logs say at start: the masked URL, with a SQLite path made absolute (from the working directory)."""
    return mask(anchored(value, Path.cwd()))
