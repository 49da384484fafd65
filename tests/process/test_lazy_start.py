"""`taskq worker` starts at once because what it does not need is not imported (issue 21 point 3). These
tests pin where each heavy import may happen; the timing itself lives in bench/ (bench/startup.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import taskq
from taskq.model import Status

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("alembic", "rich", "croniter", "uvicorn", "starlette", "watchdog", "click", "yaml", "sqlalchemy")


# The worker's own code, which the supervisor never runs, and what only some processes need: PostgreSQL's
# dialect (with the modules of all its drivers) on SQLite, the wake-up's file watching before the first workers.
EXECUTION = (
    "taskq.worker",
    "taskq.worker_kernel",
    "taskq.serial",
    "taskq.executor",
    "taskq.heartbeat",
    "taskq.context",
    "taskq.concurrent",
)
POSTGRESQL = "sqlalchemy.dialects.postgresql"


def modules_after(statement: str) -> set[str]:
    """Every module a fresh interpreter has loaded after `statement`."""
    probe = f"import sys; {statement}; print(__import__('json').dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout))


def imported_after(statement: str) -> set[str]:
    """Which HEAVY top-level packages a fresh interpreter has loaded after `statement`."""
    return {module.split(".")[0] for module in modules_after(statement)} & set(HEAVY)


def test_the_package_and_the_launcher_import_nothing_heavy() -> None:
    # What runs before the fork server is started: the rest imports while the server does.
    assert imported_after("import taskq, taskq.launch, taskq.forkserver") == set()


def test_the_cli_leaves_alembic_rich_and_the_daemon_parts_out() -> None:
    assert imported_after("import taskq.cli") == {"click", "yaml", "sqlalchemy"}


def test_the_fork_servers_preload_is_the_store_and_the_worker_only() -> None:
    assert imported_after("import taskq.worker") == {"yaml", "sqlalchemy"}


def test_the_supervisor_imports_none_of_the_workers_code() -> None:
    assert modules_after("import taskq.pool") & {*EXECUTION, "taskq.wakeup", "watchdog"} == set()


def test_a_sqlite_store_never_imports_postgresqls_dialect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskq.db'}"
    taskq.open_store(url).dispose()  # migrated here: Alembic's migrations name both dialects
    opened = modules_after(f"import taskq; taskq.open_store({url!r}).enqueue('x'); import taskq.worker, taskq.pool")
    assert "sqlalchemy.dialects.sqlite" in opened
    assert {module for module in opened if module.startswith(POSTGRESQL)} == set()


def test_a_running_pool_never_imports_alembic_rich_or_croniter_and_workers_find_app_modules(tmp_path: Path) -> None:
    """Every process of the pool (supervisor, fork server, workers) reports its imports
    (PYTHONPROFILEIMPORTTIME); the schema is current, so the start-up check must not load Alembic. The
    task module sits next to settings.yaml, a folder only the supervisor adds to the import path, after
    the early fork server has started: the worker must still find it."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "settings.yaml").write_text("imports: [lazy_app_tasks]\nworkers: 1\n")
    (app / "lazy_app_tasks.py").write_text(
        "import taskq\n\n@taskq.task\ndef hello(who: str) -> str:\n    return f'hello {who}'\n"
    )
    url = f"sqlite:///{tmp_path / 'taskq.db'}"
    store = taskq.open_store(url)  # migrated now: the pool's start finds it current
    task_id = store.enqueue("lazy_app_tasks.hello", ["you"]).id
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONPROFILEIMPORTTIME": "1",
        "TASKQ_DATABASE_URL": "",
    }
    log_path = tmp_path / "pool.log"
    with open(log_path, "w") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "taskq", "--db", url, "worker", "--settings", str(app / "settings.yaml")],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while (task := store.get(task_id)) is not None and task.status is not Status.COMPLETED:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                assert pool.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.05)
        finally:
            pool.terminate()
            pool.wait(30)
            store.dispose()
    text = log_path.read_text()
    modules = {line.split("|")[-1].strip() for line in text.splitlines() if line.startswith("import time:")}
    imported = {module.split(".")[0] for module in modules}
    assert "taskq" in imported and "sqlalchemy" in imported  # the probe did see the pool's imports
    assert imported & {"alembic", "rich", "croniter", "uvicorn", "starlette"} == set()
    assert {module for module in modules if module.startswith(POSTGRESQL)} == set()
    assert re.search(r"task_completed task_id=\d+ name=lazy_app_tasks.hello", text)


def test_a_task_declared_through_the_lazy_package_enqueues_on_the_default_store(tmp_path: Path) -> None:
    """`import taskq` no longer imports taskq.api itself; taking `taskq.task` from it must still wire the
    default store, as the README's quick start does."""
    script = "import taskq\n\n@taskq.task\ndef hello() -> None:\n    pass\n\nprint(hello.enqueue().id)\n"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TASKQ_DATABASE_URL": f"sqlite:///{tmp_path / 'default.db'}",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
