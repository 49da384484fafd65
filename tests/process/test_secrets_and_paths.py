"""Issue 20, points 7 and 8, with real processes: a database password never reaches a log line or an error
message; a pool started from another folder with `--settings ../settings.yaml` uses the database next to the
settings file and logs its absolute path; `postgres://` works. (The helpers themselves, and the commands
that work with a broken task module: tests/unit/test_database_urls.py, tests/unit/test_cli_broken_module.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from poolkit import REPO, SUPPORT_DIR, stop_gracefully, wait_for
from sqlalchemy.engine import make_url

import taskq

PASSWORD = "Pa55-w0rd-never-shown"
OTHER_PASSWORD = "An0ther-pa55-never-shown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKQ_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT_DIR), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**env, **extra}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args], cwd=cwd, env=environment(), capture_output=True, text=True, timeout=60
    )


class Pool:
    """`taskq [ARGS] worker` without --db: the database comes from the settings file, as an operator runs it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.log_path = cwd / "pool.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "taskq", *args, "worker"],
                cwd=cwd,
                env=environment(TASKQ_TEST_RUNLOG=str(cwd / "runs.log")),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        stop_gracefully(self.process)


@pytest.fixture
def pool_stopper():  # type: ignore[no-untyped-def]
    started: list[Pool] = []
    yield started
    for pool in started:
        pool.stop()


def test_a_password_never_appears_in_a_pools_log_or_an_error(tmp_path: Path, postgres_url: str, pool_stopper) -> None:  # type: ignore[no-untyped-def]
    url = make_url(postgres_url)
    with_password = url.set(password=PASSWORD).render_as_string(hide_password=False)
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"database": with_password, "imports": ["pool_tasks"], "workers": 1}))
    enqueued = cli("enqueue", "t.record", "--args", "[7]", cwd=tmp_path)
    assert enqueued.returncode == 0, enqueued.stderr
    pool = Pool(tmp_path, "--settings", str(settings))
    pool_stopper.append(pool)
    wait_for(lambda: "worker_started" in pool.log(), 30, what="a worker")
    waited = cli("wait", enqueued.stdout.strip(), "--timeout", "30", cwd=tmp_path)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    # Edits of `database:` while it runs: another password (a restart of the pool is needed: logged), then a
    # value without its scheme (refused: logged).
    other = url.set(password=OTHER_PASSWORD).render_as_string(hide_password=False)
    settings.write_text(yaml.safe_dump({"database": other, "imports": ["pool_tasks"], "workers": 1}))
    wait_for(lambda: "setting_needs_pool_restart key=database" in pool.log(), 20, what="the database edit logged")
    schemeless = f"postgres:{OTHER_PASSWORD}@127.0.0.1/test"
    settings.write_text(yaml.safe_dump({"database": schemeless, "imports": ["pool_tasks"], "workers": 1}))
    wait_for(lambda: "settings_invalid" in pool.log(), 20, what="the bad edit logged")
    pool.stop()
    log = pool.log()
    assert "pool_started" in log and "postgresql+psycopg://postgres:***@" in log, log
    assert PASSWORD not in log and OTHER_PASSWORD not in log, log
    # The same values on the command line: errors name the problem, never the password.
    for bad in (schemeless, url.set(password=PASSWORD, port=1).render_as_string(hide_password=False)):
        result = cli("--db", bad, "stats", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert PASSWORD not in result.stderr + result.stdout and OTHER_PASSWORD not in result.stderr, result.stderr


def test_postgres_scheme_urls_work_from_the_command_line(tmp_path: Path, postgres_url: str) -> None:
    for scheme in ("postgres", "postgresql"):
        short = make_url(postgres_url).set(drivername=scheme).render_as_string(hide_password=False)
        result = cli("--db", short, "stats", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr


def test_a_pool_started_from_another_folder_uses_the_database_next_to_its_settings(
    tmp_path: Path, pool_stopper
) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"
    elsewhere = project / "deploy"
    elsewhere.mkdir(parents=True)
    (project / "settings.yaml").write_text("database: sqlite:///taskq.db\nimports: [pool_tasks]\nworkers: 1\n")
    enqueued = cli("enqueue", "t.record", "--args", "[3]", cwd=project)
    assert enqueued.returncode == 0, enqueued.stderr
    pool = Pool(elsewhere, "--settings", "../settings.yaml")
    pool_stopper.append(pool)
    waited = cli("wait", enqueued.stdout.strip(), "--timeout", "30", cwd=project)
    assert waited.returncode == 0, waited.stdout + waited.stderr + pool.log()
    assert not (elsewhere / "taskq.db").exists()
    absolute = f"database=sqlite:///{project / 'taskq.db'}"
    wait_for(lambda: "worker_started" in pool.log(), 10, what="the worker's start line")
    pool.stop()
    started = [line for line in pool.log().splitlines() if "pool_started" in line or "worker_started" in line]
    assert len(started) == 2 and all(absolute in line for line in started), pool.log()
    assert taskq.open_store(f"sqlite:///{project / 'taskq.db'}").require(int(enqueued.stdout)).result == 6


def test_the_dashboard_and_db_upgrade_name_the_absolute_database(tmp_path: Path) -> None:
    project = tmp_path / "project"
    elsewhere = project / "deploy"
    elsewhere.mkdir(parents=True)
    (project / "settings.yaml").write_text("database: sqlite:///taskq.db\n")
    absolute = f"sqlite:///{project / 'taskq.db'}"
    upgraded = cli("--settings", "../settings.yaml", "db", "upgrade", cwd=elsewhere)
    assert upgraded.returncode == 0 and upgraded.stdout.startswith(f"{absolute} at revision"), upgraded
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "taskq", "--settings", "../settings.yaml", "dashboard", "--port", str(free_port())],
        cwd=elsewhere,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dashboard.stdout is not None
        first = dashboard.stdout.readline()
    finally:
        dashboard.terminate()
        dashboard.wait(30)
    assert first.startswith("taskq dashboard on http://127.0.0.1:") and first.strip().endswith(absolute), first
    assert not (elsewhere / "taskq.db").exists()
