"""The systemd unit: contrib/taskq.service is what `taskq systemd-unit` renders, with the code read-only and the
database in its state directory. (Its exposure rating, by systemd-analyze: tests/process/test_systemd_exposure.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from taskq import systemd
from taskq.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_contrib_unit_is_the_rendered_default() -> None:
    assert (ROOT / "contrib" / "taskq.service").read_text() == systemd.render_unit()


def test_contrib_unit_keeps_the_code_read_only_and_the_database_in_its_state_directory() -> None:
    unit = (ROOT / "contrib" / "taskq.service").read_text()
    assert "ReadWritePaths" not in unit and "ProtectSystem=strict" in unit
    assert "StateDirectory=taskq" in unit and "TASKQ_DATABASE_URL=sqlite:////var/lib/taskq/taskq.db" in unit
    assert "WorkingDirectory=/srv/myapp" in unit and "NotifyAccess=main" in unit and "Type=notify" in unit


def test_systemd_unit_keeps_a_postgresql_database_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    (tmp_path / "settings.yaml").write_text("database: postgresql+psycopg://taskq@db/taskq\n")
    result = CliRunner().invoke(main, ["systemd-unit", "--user", "nobody"])
    assert result.exit_code == 0, result.output
    assert "Environment=TASKQ_DATABASE_URL" not in result.stdout


def test_paths_with_a_space_and_a_percent_are_quoted_and_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "my app 100%"
    project.mkdir()
    (project / "settings.yaml").write_text("database: postgresql+psycopg://taskq@db/taskq\n")
    monkeypatch.chdir(project)
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["systemd-unit", "--user", "nobody"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    escaped = str(project).replace("%", "%%")
    assert f"WorkingDirectory={escaped}" in lines  # specifiers expand there: % is written %%
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start.endswith(f' worker --settings "{escaped}/settings.yaml"'), exec_start


def test_quote_word_follows_systemd_syntax() -> None:
    assert systemd.quote_word("/srv/app/.venv/bin/taskq") == "/srv/app/.venv/bin/taskq"
    assert systemd.quote_word("/a b/c") == '"/a b/c"'
    assert systemd.quote_word("/a%b") == "/a%%b"
    assert systemd.quote_word("/a$b") == "/a$$b"
    assert systemd.quote_word('/a"b\\c') == '"/a\\"b\\\\c"'
    with pytest.raises(systemd.UnitError):
        systemd.quote_word("/a\nb")
    with pytest.raises(systemd.UnitError):
        systemd.render_unit(systemd.Unit(name="x y"))


def test_protect_home_looks_through_symlinks(tmp_path: Path) -> None:
    """A venv outside /home whose bin/python links to an interpreter under /home (pyenv, uv): ProtectHome=yes
    would hide the interpreter and its standard library, so the service could not start."""
    home = tmp_path / "home"
    interpreter = home / "dev" / ".pyenv" / "versions" / "3.12" / "bin" / "python3.12"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("")
    venv_python = tmp_path / "srv" / "app" / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(interpreter)
    homes = (f"{home}/",)
    assert systemd.protect_home([tmp_path / "srv" / "app", venv_python], homes=homes) == "read-only"
    assert systemd.protect_home([tmp_path / "srv" / "app"], homes=homes) == "yes"
    assert systemd.protect_home([home / "dev"], homes=homes) == "read-only"
