"""The systemd units taskq renders are hardened: `systemd-analyze security` rates them at most 3 (skipped
where systemd-analyze is not installed). What the units say: tests/unit/test_systemd_unit.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskq.cli import main

ROOT = Path(__file__).resolve().parents[2]


MAX_EXPOSURE = 3.0


def exposure(unit_file: Path) -> float:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_contrib_unit_exposure_is_at_most_3(tmp_path: Path) -> None:
    assert exposure(ROOT / "contrib" / "taskq.service") <= MAX_EXPOSURE


def test_systemd_unit_command_describes_this_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings.yaml").write_text("workers: 2\n")
    result = CliRunner().invoke(main, ["systemd-unit", "--user", "nobody", "--name", "myapp-tasks"])
    assert result.exit_code == 0, result.output
    unit = result.stdout
    assert f"WorkingDirectory={tmp_path}" in unit
    venv_script = Path(sys.executable).parent / "taskq"
    expected = str(venv_script) if venv_script.is_file() else f"{sys.executable} -m taskq"
    assert f"ExecStart={expected} worker --settings {tmp_path / 'settings.yaml'}" in unit
    assert "User=nobody" in unit and "StateDirectory=myapp-tasks" in unit
    assert "TASKQ_DATABASE_URL=sqlite:////var/lib/myapp-tasks/taskq.db" in unit
    generated = tmp_path / "myapp-tasks.service"
    generated.write_text(unit)
    assert exposure(generated) <= MAX_EXPOSURE
