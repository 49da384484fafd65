"""The taskq command line as a real subprocess: what only a process shows (imports from the working
directory, run.py, unreachable databases). The commands themselves, and their error messages, are tested in
this process through CliRunner in tests/unit/test_cli_commands.py and tests/unit/test_cli_errors.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import taskq


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TASKQ_DATABASE_URL": "", **(env or {})},
    )


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("--db", f"sqlite:///{tmp_path}/missing/dir/x.db", "stats", cwd=tmp_path)
    assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "stats", cwd=tmp_path)
    assert result.returncode == 1 and "cannot open database" in result.stderr and "Traceback" not in result.stderr


def test_settings_file_and_import_option_are_used(tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(
        "import taskq\n\n@taskq.task(name='my.add', priority=3)\ndef add(a, b):\n    return a + b\n"
    )
    (tmp_path / "settings.yaml").write_text(f"database: sqlite:///{tmp_path / 's.db'}\nimports: [mytasks]\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("enqueue", "my.add", "--args", "[1, 2]", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert taskq.open_store(f"sqlite:///{tmp_path / 's.db'}").require(int(result.stdout)).priority == 3
    (tmp_path / "settings.yaml").write_text("workers: 2\nwokers: 3\n")
    broken = run_cli("stats", cwd=tmp_path, env=env)
    assert broken.returncode == 1
    assert "settings.yaml:2: unknown key 'wokers'" in broken.stderr


def console_script(tmp_path: Path) -> Path:
    """What pip writes as bin/taskq: run as a file, its own folder (not the working directory) is sys.path[0]."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    script = bin_dir / "taskq"
    script.write_text("import sys\nfrom taskq.cli import main\nsys.exit(main())\n")
    return script


def test_the_bare_command_and_its_workers_import_app_modules_from_the_working_directory(tmp_path: Path) -> None:
    app = tmp_path / "project"
    (app / "myapp").mkdir(parents=True)
    (app / "myapp" / "__init__.py").write_text("")
    (app / "myapp" / "tasks.py").write_text(
        "import taskq\n\n@taskq.task\ndef double(n: int) -> int:\n    return 2 * n\n"
    )
    script = console_script(tmp_path)

    def bare(*args: str, cwd: Path = app) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TASKQ_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
        )

    enqueued = bare("--import", "myapp.tasks", "enqueue", "myapp.tasks.double", "--args", "[21]")
    assert enqueued.returncode == 0, enqueued.stderr
    # From elsewhere, the settings file's folder is searched too (systemd's WorkingDirectory may differ).
    (app / "settings.yaml").write_text("imports: [myapp.tasks]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert bare("--settings", str(app / "settings.yaml"), "tasks", cwd=elsewhere).returncode == 0
    pool = subprocess.Popen(
        [sys.executable, str(script), "--settings", str(app / "settings.yaml"), "worker", "--workers", "1"],
        cwd=elsewhere,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TASKQ_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"},
    )
    try:
        waited = bare("wait", enqueued.stdout.strip(), "--timeout", "30", cwd=elsewhere)
        assert waited.returncode == 0, waited.stdout + waited.stderr
    finally:
        pool.terminate()
        _, log = pool.communicate(timeout=30)
    assert taskq.open_store(f"sqlite:///{tmp_path / 'app.db'}").require(int(enqueued.stdout)).result == 42, log


def test_a_missing_module_says_where_it_looked(tmp_path: Path) -> None:
    result = run_cli("--import", "nowhere.tasks", "tasks", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"looked in {tmp_path}" in result.stderr
    # A command that only reads rows warns and goes on (tests/unit/test_cli_broken_module.py).
    result = run_cli("--import", "nowhere.tasks", "stats", cwd=tmp_path)
    assert result.returncode == 0 and f"looked in {tmp_path}" in result.stderr


@pytest.mark.parametrize("how", ["--db", "env"])
def test_a_bad_database_url_is_one_line_naming_where_it_came_from(tmp_path: Path, how: str) -> None:
    if how == "--db":
        result = run_cli("--db", "notaurl", "stats", cwd=tmp_path)
    else:
        result = run_cli("stats", cwd=tmp_path, env={"TASKQ_DATABASE_URL": "notaurl"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: {'--db' if how == '--db' else 'TASKQ_DATABASE_URL'}: "
        "expected a database URL such as sqlite:///taskq.db, got <a value that is not a URL (scheme://...),"
        " not shown: it may hold a password>"
    )


def test_run_py_imports_app_modules_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(
        "import taskq\n\n@taskq.task\ndef triple(n: int) -> int:\n    return 3 * n\n"
    )
    (tmp_path / "settings.yaml").write_text("imports: [myapp.tasks]\nworkers: 1\n")
    url = f"sqlite:///{tmp_path / 'taskq.db'}"
    store = taskq.open_store(url)
    task_id = store.enqueue("myapp.tasks.triple", [5]).id
    run_py = Path(__file__).resolve().parents[2] / "run.py"
    pool = subprocess.Popen(
        [sys.executable, str(run_py)],  # sys.path[0] is run.py's folder, not the app's
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TASKQ_DATABASE_URL": ""},
    )
    try:
        deadline = time.monotonic() + 30
        while store.require(task_id).status.value != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pool.terminate()
        _, log = pool.communicate(timeout=30)
    assert store.require(task_id).result == 15, log
