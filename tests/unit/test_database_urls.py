"""Database URLs: a password is never shown (taskq/urls.py is the one masking helper), `postgres://` maps to
the installed driver, a relative SQLite path in settings.yaml is taken from the settings file's folder, and
new SQLite files are private. (The same in real pools and CLI processes: tests/process/test_secrets_and_paths.py.)"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import taskq
from taskq.cli import main
from taskq.engine import DatabaseUnavailable, create_database_engine
from taskq.settings import SettingsError, load_settings

PASSWORD = "Pa55-w0rd-never-shown"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (f"postgresql+psycopg://app:{PASSWORD}@db:5432/q", "postgresql+psycopg://app:***@db:5432/q"),
        (f"postgres://app:{PASSWORD}@db/q", "postgres://app:***@db/q"),
        (f"postgresql://app@db/q?password={PASSWORD}&sslmode=require", "postgresql://app@db/q?password="),
        ("sqlite:///taskq.db", "sqlite:///taskq.db"),
    ],
)
def test_mask_hides_the_password_and_keeps_the_rest(value: str, shown: str) -> None:
    from taskq import urls

    assert PASSWORD not in urls.mask(value) and urls.mask(value).startswith(shown)


@pytest.mark.parametrize(
    "value", [f"app:{PASSWORD}@db/q", f"postgresql+psycopg://app:{PASSWORD}@db:notaport/q", f"{PASSWORD}", ""]
)
def test_a_value_that_is_not_a_url_is_never_shown(value: str) -> None:
    from taskq import urls

    assert urls.mask(value) == urls.UNPARSABLE


@pytest.mark.parametrize("layer", ["file", "env", "flag"])
def test_a_bad_database_value_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    bad = f"app:{PASSWORD}@db/q"  # the scheme forgotten
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"database: {bad}\n" if layer == "file" else "workers: 1\n")
    monkeypatch.setenv("TASKQ_DATABASE_URL", bad if layer == "env" else "")
    with pytest.raises(SettingsError) as caught:
        load_settings(settings, database=bad if layer == "flag" else None)
    assert "expected a database URL" in str(caught.value) and PASSWORD not in str(caught.value)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*(["--db", bad] if layer == "flag" else []), "stats"])
    assert result.exit_code == 1 and "expected a database URL" in result.output
    assert PASSWORD not in result.output


def test_the_engine_never_echoes_a_bad_url() -> None:
    for bad in (f"app:{PASSWORD}@db/q", f"postgresql+psycopg://app:{PASSWORD}@db:notaport/q"):
        with pytest.raises(DatabaseUnavailable) as caught:
            create_database_engine(bad)
        assert "invalid database URL" in str(caught.value) and PASSWORD not in str(caught.value)


def test_short_postgres_schemes_map_to_psycopg_3() -> None:
    pytest.importorskip("psycopg")
    for scheme in ("postgres", "postgresql"):
        engine = create_database_engine(f"{scheme}://app:pw@db:5432/q?sslmode=require")
        assert (
            engine.url.render_as_string(hide_password=False) == "postgresql+psycopg://app:pw@db:5432/q?sslmode=require"
        )
        engine.dispose()
        assert load_settings(None, database=f"{scheme}://app@db/q").database == "postgresql+psycopg://app@db/q"
    from taskq import urls

    assert urls.normalize("postgresql+psycopg2://app@db/q") == "postgresql+psycopg2://app@db/q"  # explicit: kept


def test_without_psycopg_a_short_postgres_url_is_a_one_line_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets when it is not installed
    with pytest.raises(
        DatabaseUnavailable, match=r"^postgres:// needs psycopg 3 .*pip install 'taskq-sql\[postgres\]'"
    ):
        create_database_engine("postgres://app@db/q")


def test_a_relative_sqlite_path_in_settings_is_next_to_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "settings.yaml").write_text("database: sqlite:///data/taskq.db\n")
    (tmp_path / "bare.yaml").write_text("workers: 1\n")
    monkeypatch.setenv("TASKQ_DATABASE_URL", "")
    monkeypatch.chdir(project / "sub")
    assert load_settings("../settings.yaml").database == f"sqlite:///{project / 'data' / 'taskq.db'}"
    # Without `database:` the default taskq.db is next to the settings file too.
    assert load_settings("../../bare.yaml").database == f"sqlite:///{tmp_path / 'taskq.db'}"
    # The command line and the environment are read from the working directory, as any path typed there.
    assert load_settings("../settings.yaml", database="sqlite:///x.db").database == "sqlite:///x.db"


def test_new_sqlite_files_and_their_wal_and_shm_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which gave 0644 files
    try:
        store = taskq.open_store(f"sqlite:///{tmp_path / 'new.db'}")
        store.enqueue("taskq.echo", [1])
        files = sorted(tmp_path.glob("new.db*"))
        assert [f.name for f in files] == ["new.db", "new.db-shm", "new.db-wal"]
        assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == dict.fromkeys(
            ("new.db", "new.db-shm", "new.db-wal"), "0o600"
        )
        store.dispose()
    finally:
        os.umask(old_umask)


def test_an_existing_sqlite_file_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    taskq.open_store(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
