"""`taskq systemd-unit` run by a real venv's interpreter: a venv in a folder whose name has a space and a `%`
gives a unit systemd reads back with the right paths (checked by `systemd-analyze verify`), and a venv whose
bin/python links to an interpreter under a home directory gets ProtectHome=read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOMES = ("/home/", "/root/", "/run/user/")


@pytest.fixture
def venv_unit(tmp_path: Path) -> tuple[Path, str]:
    """A venv (system site-packages: taskq's dependencies; this checkout's taskq on PYTHONPATH) at a path
    with a space and a %, and the unit its interpreter renders for a project folder of the same kind."""
    venv = tmp_path / "my venv 100%"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    project = tmp_path / "my app %i"
    project.mkdir()
    (project / "settings.yaml").write_text("workers: 1\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKQ_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "taskq", "systemd-unit", "--user", "nobody"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return venv, result.stdout


def test_systemd_reads_the_quoted_paths_back(venv_unit: tuple[Path, str], tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    venv, unit = venv_unit
    unit_file = tmp_path / "taskq-paths.service"
    unit_file.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=60)
    # verify names the command it would run when it is not executable, and warns about unknown specifiers;
    # with the paths split at the space or `%` read as a specifier, it says so.
    problems = [line for line in result.stderr.splitlines() if "not executable" in line or "pecifier" in line]
    assert problems == [], result.stderr
    assert f'ExecStart="{venv}/bin/python" -m taskq worker'.replace("%", "%%") in unit


def test_protect_home_is_read_only_when_the_venv_interpreter_lives_under_a_home(venv_unit: tuple[Path, str]) -> None:
    real = os.path.realpath(sys.executable)
    if not real.startswith(HOMES) or str(venv_unit[0]).startswith(HOMES):
        pytest.skip(f"needs a venv outside /home whose interpreter is under one (this one is {real})")
    assert "ProtectHome=read-only" in venv_unit[1].splitlines()
