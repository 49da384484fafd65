"""The Django layer's helpers (tests/django): the test project's environment and `manage.py taskq_worker`
pools as real subprocess trees."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from poolkit import REPO, SUPPORT_DIR, stop_gracefully, wait_for

DJANGO_SKIP_REASON = (
    "neither Django >= 6 (django.tasks) nor Django 5.2 with the django-tasks backport is importable here:"
    " .ci/run runs the Django layer in venvs of its own (~/.cache/taskq-ci/venv-django*)"
)


def project_env(sqlite_path: Path, postgres_url: str | None, runlog: Path) -> dict[str, str]:
    """What the test process and its pools share: the settings module, its databases, the run log."""
    env = {
        "DJANGO_SETTINGS_MODULE": "djangotest.settings",
        "TASKQ_TEST_DJANGO_SQLITE": str(sqlite_path),
        "TASKQ_TEST_RUNLOG": str(runlog),
        "TASKQ_DATABASE_URL": "",
    }
    if postgres_url:
        env["TASKQ_TEST_DJANGO_POSTGRES"] = postgres_url
    return env


class DjangoPool:
    """`python -m django taskq_worker ARGS` (what `python manage.py taskq_worker` runs) in `directory`."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.log_path = directory / f"django-pool-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SUPPORT_DIR), str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "taskq_worker", *args],
            cwd=directory,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, workers: int, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the pool exited with {self.process.returncode}:\n{self.log()}")
            return self.log().count("worker_started") >= workers

        wait_for(ready, timeout, what=f"{workers} Django workers started")

    def stop(self) -> None:
        stop_gracefully(self.process)
        self._log.close()


def runlog_lines(runlog: Path, kind: str, result_id: str) -> list[list[str]]:
    """The signal receivers' lines (djangotest/signals.py) for one result: [status, attempts] each."""
    if not runlog.exists():
        return []
    rows = [line.split() for line in runlog.read_text().splitlines()]
    return [row[2:] for row in rows if len(row) == 4 and row[0] == kind and row[1] == result_id]
