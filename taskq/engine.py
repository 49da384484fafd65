"""Open a database engine: connection settings per dialect and automatic schema upgrade."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError

from taskq import urls
from taskq.dialect import dialect_for
from taskq.distribution import install_hint
from taskq.json_limits import read_column
from taskq.model import TaskqError
from taskq.schema import declare_partial_indexes
from taskq.settings import DATABASE, environment_value

SQLITE_SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")
SQLITE_BUSY_TIMEOUT_MS = 1000  # short on purpose: the store retries with jitter, which is fairer
SQLITE_FILE_MODE = 0o600  # a new database file (and so its -wal/-shm): the owner's only
_PACKAGE_DIR = Path(__file__).resolve().parent


class DatabaseUnavailable(TaskqError):
    pass


def _installed_or_checkout(name: str) -> Path:
    """`name` (alembic.ini, migrations/): a wheel ships them inside the package, a checkout at its top."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.exists():
            return candidate
    raise TaskqError(f"taskq's {name} is missing from this installation")


def migrations_dir() -> Path:
    return _installed_or_checkout("migrations")


def _newest_migration() -> str | None:
    """The newest migration's revision, from the file names (migrations/versions/<revision>_<what>.py), so
    a new migration needs no edit here; tests/contract/test_migrations.py keeps it equal to Alembic's head.
    One directory listing, not Alembic's import and script loading."""
    try:
        versions = migrations_dir() / "versions"
    except TaskqError:
        return None  # no migrations installed: every open tries to upgrade, and says what is missing
    return max((path.name.split("_", 1)[0] for path in versions.glob("[0-9]*_*.py")), default=None)


SCHEMA_REVISION = _newest_migration()


def alembic_ini() -> Path:
    """The alembic.ini plain `alembic -c` takes; its script_location is the migrations beside it."""
    return _installed_or_checkout("alembic.ini")


def alembic_config(connection: Any = None) -> Any:
    # Alembic is imported only when the schema is checked or upgraded: workers never need it, and it
    # costs a quarter of a second and several MB per process.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def sqlite_synchronous() -> str:
    """NORMAL by default: in WAL mode a power loss may roll back the last commits but never corrupts the
    file. TASKQ_SQLITE_SYNCHRONOUS=FULL makes every commit durable (an fsync each), in every process that
    reads the environment (CLI, workers, web app): set it for all of them."""
    value = os.environ.get("TASKQ_SQLITE_SYNCHRONOUS", "NORMAL").strip().upper()
    if value not in SQLITE_SYNCHRONOUS_LEVELS:
        raise DatabaseUnavailable(
            f"TASKQ_SQLITE_SYNCHRONOUS={value!r}: choose one of {', '.join(SQLITE_SYNCHRONOUS_LEVELS)}"
        )
    return value


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions by itself: the store issues BEGIN IMMEDIATE for writes,
    # and plain reads run in autocommit so they never hold a snapshot open.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={sqlite_synchronous()}")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _create_private_file(path: Path) -> None:
    """Create a new SQLite file readable by its owner only: tasks' arguments and results may be secrets.
    SQLite gives the -wal and -shm files it creates later the database file's mode (unix VFS,
    findCreateFileMode), so they are 0600 too. An existing file keeps the mode its owner chose."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))


def create_database_engine(url: str) -> Engine:
    """JSON columns are decoded by json_limits.read_column on both dialects (psycopg calls it too): a row
    nested too deep, or not JSON, is read with a placeholder instead of raising in whoever reads it."""
    try:
        url = urls.normalize(url)
    except urls.DatabaseURLError as error:
        raise DatabaseUnavailable(str(error)) from None
    parsed = urls.parse(url)
    if parsed is None:
        raise DatabaseUnavailable(f"invalid database URL: {urls.mask(url)}")
    if parsed.get_backend_name() == "sqlite":
        file = urls.sqlite_file(parsed)
        if file is not None:
            directory = file.resolve().parent
            if not directory.is_dir():
                raise DatabaseUnavailable(f"database directory {directory} does not exist (url {urls.mask(url)})")
            _create_private_file(file)
        engine = create_engine(parsed, connect_args={"check_same_thread": False}, json_deserializer=read_column)
        event.listen(engine, "connect", _configure_sqlite)
    else:
        try:
            engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=read_column)
        except ModuleNotFoundError as error:  # the driver is an optional extra
            extra = "postgres" if parsed.get_backend_name() == "postgresql" else None
            hint = f": {install_hint(extra)}" if extra else ""
            raise DatabaseUnavailable(f"{parsed.drivername} needs the {error.name} module{hint}") from error
        except Exception as error:  # bad options
            raise DatabaseUnavailable(f"cannot use database {urls.mask(parsed)}: {error}") from error
    dialect_for(engine)  # an unsupported dialect fails here
    declare_partial_indexes(engine.dialect.name)
    return engine


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision`, serialised across processes."""
    from alembic import command

    dialect = dialect_for(engine)
    with engine.connect() as connection:
        dialect.lock_for_migration(connection)
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def ensure_schema(engine: Engine) -> None:
    """Upgrade a fresh or out-of-date database. One plain query when it is already current: Alembic is
    imported only to upgrade (its import and script loading would double a CLI command's start-up)."""
    try:
        with engine.connect() as connection:
            current = None
            if inspect(connection).has_table("alembic_version"):
                current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError as error:
        raise DatabaseUnavailable(f"cannot open database {urls.mask(engine.url)}: {error.orig}") from error
    if current != SCHEMA_REVISION:
        upgrade_schema(engine)


def open_engine(url: str | None = None, *, upgrade: bool = True) -> Engine:
    engine = create_database_engine(url or environment_value(DATABASE))
    if upgrade:
        ensure_schema(engine)
    return engine
