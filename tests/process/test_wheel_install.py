"""The wheel, installed as a user installs it (not editable, in a fresh venv), runs the README's quick start
and plain Alembic against its packaged alembic.ini. The venv sees the system's site-packages for the
dependencies (no download); the test checks that its `taskq` is the wheel's, not this checkout's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from test_readme_quickstart import files_of, quick_start

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_the_wheel_installs_and_runs_the_quick_start_and_alembic(tmp_path: Path) -> None:
    started = time.monotonic()
    build_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        tmp_path / "dist",
        ROOT,
        cwd=tmp_path,
        env=build_env,
    )
    (wheel,) = (tmp_path / "dist").glob("taskq_sql-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in ("taskq/py.typed", "taskq/alembic.ini", "taskq/migrations/env.py"):
        assert packaged in names, packaged
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv, cwd=tmp_path, env=build_env)
    python = venv / "bin" / "python"
    # --force-reinstall: this checkout is installed (editable) in the system site-packages the venv sees.
    install = ("install", "--no-deps", "--force-reinstall", "-q", wheel)
    run(sys.executable, "-m", "pip", "--python", python, *install, cwd=tmp_path, env=build_env)

    project = tmp_path / "project"
    project.mkdir()
    env = {key: value for key, value in build_env.items() if not key.startswith("TASKQ_") and key != "NOTIFY_SOCKET"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    where = run(python, "-c", "import taskq; print(taskq.__file__); print(taskq.__version__)", cwd=project, env=env)
    location, version = where.split()
    assert location.startswith(str(venv)), location
    assert (
        version
        == run(
            python, "-c", "import importlib.metadata as m; print(m.version('taskq-sql'))", cwd=project, env=env
        ).strip()
    )

    # The quick start, as the README writes it, with the venv's console script.
    for path, text in files_of(quick_start()).items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    with open(tmp_path / "pool.log", "w") as log:
        pool = subprocess.Popen([venv / "bin" / "taskq", "worker"], cwd=project, env=env, stdout=log, stderr=log)
    try:
        task_id = run("taskq", "enqueue", "myapp.tasks.resize", "--args", '["cat.png", 640]', cwd=project, env=env)
        assert run("taskq", "wait", task_id.strip(), "--timeout", "60", cwd=project, env=env).strip() == "completed"
        second = run(python, "enqueue.py", cwd=project, env=env).strip()
        assert run("taskq", "wait", second, "--timeout", "60", cwd=project, env=env).strip() == "completed"
    finally:
        pool.terminate()
        pool.wait(30)
    assert f"database=sqlite:///{project / 'taskq.db'}" in (tmp_path / "pool.log").read_text()

    # Plain Alembic with the packaged alembic.ini: upgrade a new database, then `check` finds no drift.
    ini = run("taskq", "db", "alembic-ini", cwd=project, env=env).strip()
    assert ini == str(
        venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "taskq" / "alembic.ini"
    )
    other = f"url=sqlite:///{tmp_path / 'alembic.db'}"
    run(python, "-m", "alembic", "-c", ini, "-x", other, "upgrade", "head", cwd=project, env=env)
    check = subprocess.run(
        [python, "-m", "alembic", "-c", ini, "-x", other, "check"], cwd=project, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr, check
    print(f"wheel test: {time.monotonic() - started:.1f} s")  # 46 s on the shared 2-core machine
