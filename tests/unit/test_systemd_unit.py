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
