"""The taskq command line, run as a real subprocess against a real SQLite file."""

from __future__ import annotations

import json
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


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("--db", url, *args, cwd=tmp_path)

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def test_enqueue_prints_the_id_and_json_says_deduplicated(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("enqueue", "taskq.echo", "--args", "[1, 2]", "--kwargs", '{"a": 1}', "--dedup-key", "k")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().isdigit()
    again = cli("enqueue", "taskq.echo", "--dedup-key", "k", "--json")
    assert json.loads(again.stdout) == {"id": int(first.stdout), "deduplicated": True}


def test_enqueue_options_reach_the_row(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "enqueue",
        "taskq.echo",
        "--priority",
        "7",
        "--delay",
        "1h",
        "--max-retries",
        "5",
        "--queue",
        "slow",
        "--timeout",
        "12",
    )
    task = taskq.open_store(cli.url).require(int(result.stdout))
    assert (task.priority, task.max_retries, task.queue, task.timeout) == (7, 5, "slow", 12.0)
    assert (task.run_after - task.created_at).total_seconds() == pytest.approx(3600, abs=1)
    at = cli("enqueue", "taskq.echo", "--run-after", "2030-01-01T12:00:00+02:00")
    assert taskq.open_store(cli.url).require(int(at.stdout)).run_after.isoformat() == "2030-01-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "taskq.echo", "--args", "[1,"], "not valid JSON"),
        (["enqueue", "taskq.echo", "--args", '{"a": 1}'], "args must be a JSON array (a list), got dict"),
        (["enqueue", "taskq.echo", "--kwargs", "[1]"], "kwargs must be a JSON object (a mapping), got list"),
        (["enqueue", "no.such.task"], "unknown task 'no.such.task'"),
        (["enqueue", "taskq.echo", "--delay", "soon"], "invalid duration"),
        (["enqueue", "taskq.echo", "--run-after", "tomorrow"], "invalid ISO 8601"),
        (["show", "999"], "no task with id 999"),
        (["cancel", "999"], "no task with id 999"),
        (["retry", "999"], "no task with id 999"),
        (["purge", "--older-than", "7 parsecs"], "invalid duration"),
        (["list", "--status", "bogus"], "Invalid value"),
    ],
)
def test_bad_input_is_one_clear_line_non_zero_and_writes_nothing(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sum(taskq.open_store(cli.url).stats().values()) == 0


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("--db", f"sqlite:///{tmp_path}/missing/dir/x.db", "stats", cwd=tmp_path)
    assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("--db", "postgresql+psycopg://nobody@127.0.0.1:1/none", "stats", cwd=tmp_path)
    assert result.returncode == 1 and "cannot open database" in result.stderr and "Traceback" not in result.stderr


def test_show_list_stats_cancel_retry_purge(cli) -> None:  # type: ignore[no-untyped-def]
    task_id = cli("enqueue", "taskq.echo", "--args", '["<hello>"]').stdout.strip()
    shown = json.loads(cli("show", task_id, "--json").stdout)
    assert shown["args"] == ["<hello>"] and shown["status"] == "pending"
    assert "taskq.echo" in cli("show", task_id).stdout
    listed = json.loads(cli("list", "--status", "pending", "--json").stdout)
    assert [t["id"] for t in listed] == [int(task_id)]
    assert "taskq.echo" in cli("list").stdout
    assert json.loads(cli("stats", "--json").stdout) == {
        "pending": 1,
        "running": 0,
        "waiting_for_children": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert "pending" in cli("stats").stdout
    assert cli("cancel", task_id).returncode == 0
    again = cli("cancel", task_id)
    assert again.returncode == 1 and "already cancelled" in again.stderr
    assert cli("retry", task_id).returncode == 0
    assert json.loads(cli("show", task_id, "--json").stdout)["status"] == "pending"
    not_retryable = cli("retry", task_id)
    assert not_retryable.returncode == 1 and "only failed or cancelled" in not_retryable.stderr
    cli("cancel", task_id)
    assert cli("purge", "--older-than", "1h").stdout.strip() == "purged 0 tasks"
    assert cli("purge", "--older-than", "0s").stdout.strip() == "purged 1 tasks"


def test_wait_exit_codes(cli) -> None:  # type: ignore[no-untyped-def]
    store = taskq.open_store(cli.url)
    done = store.enqueue("taskq.echo").id
    store.claim("w")
    store.complete(done, 1, worker_id="w")
    assert cli("wait", str(done)).returncode == 0
    cancelled = store.enqueue("taskq.echo").id
    store.cancel(cancelled)
    assert cli("wait", str(cancelled)).returncode == 1
    pending = store.enqueue("taskq.echo").id
    assert cli("wait", str(pending), "--timeout", "0.3").returncode == 2


def test_db_upgrade_creates_the_schema_on_an_empty_file(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    result = run_cli("--db", f"sqlite:///{database}", "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "revision" in result.stdout and database.exists()
    assert run_cli("db", "upgrade", "--db", f"sqlite:///{database}", cwd=tmp_path).returncode == 0


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
    result = run_cli("--import", "nowhere.tasks", "stats", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"looked in {tmp_path}" in result.stderr


@pytest.mark.parametrize("how", ["--db", "env"])
def test_a_bad_database_url_is_one_line_naming_where_it_came_from(tmp_path: Path, how: str) -> None:
    if how == "--db":
        result = run_cli("--db", "notaurl", "stats", cwd=tmp_path)
    else:
        result = run_cli("stats", cwd=tmp_path, env={"TASKQ_DATABASE_URL": "notaurl"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: {'--db' if how == '--db' else 'TASKQ_DATABASE_URL'}: "
        "expected a database URL such as sqlite:///taskq.db, got 'notaurl'"
    )


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from taskq.cli import main

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets when it is not installed
    result = CliRunner().invoke(main, ["--db", "postgresql+psycopg://u@127.0.0.1:1/x", "stats"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: postgresql+psycopg needs the psycopg module: pip install 'taskq-sql[postgres]'"
    )


def test_an_unexpected_error_is_one_line_unless_a_traceback_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from taskq.cli import main
    from taskq.store import Store

    def broken(self: Store) -> dict[str, int]:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(Store, "stats", broken)
    monkeypatch.delenv("TASKQ_TRACEBACK", raising=False)
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "stats"])
    assert result.exit_code == 1
    assert result.output == "Error: RuntimeError: disk on fire (TASKQ_TRACEBACK=1 shows where)\n"
    monkeypatch.setenv("TASKQ_TRACEBACK", "1")
    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "stats"])
    assert isinstance(result.exception, RuntimeError)


def test_the_distribution_name_is_not_the_taken_one_and_the_readme_installs_it() -> None:
    import tomllib

    from taskq.distribution import DISTRIBUTION

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "taskq"  # `taskq` on PyPI is an unrelated 2014 package
    assert project["scripts"] == {"taskq": "taskq.cli:main"}
    readme = (root / "README.md").read_text()
    assert f"pip install {DISTRIBUTION}" in readme and f"pip install '{DISTRIBUTION}[postgres]'" in readme
    assert "pip install taskq\n" not in readme and "'taskq[" not in readme


def test_run_py_imports_app_modules_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "tasks.py").write_text(
        "import taskq\n\n@taskq.task\ndef triple(n: int) -> int:\n    return 3 * n\n"
    )
    (tmp_path / "settings.yaml").write_text("imports: [myapp.tasks]\nworkers: 1\n")
    url = f"sqlite:///{tmp_path / 'taskq.db'}"
    store = taskq.open_store(url)
    task_id = store.enqueue("myapp.tasks.triple", [5]).id
    run_py = Path(__file__).resolve().parent.parent / "run.py"
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
