"""A task module that does not import (here a syntax error) blocks only the commands that need its tasks:
`list`, `show`, `stats`, `cancel`, `retry`... warn, naming the module, and work; `enqueue` (it checks the
arguments against the task's signature), `tasks` and `worker` refuse in one line naming it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskq import registry
from taskq.cli import main

WARNING = "warning: cannot import task module 'broken_cli_tasks': SyntaxError"


@pytest.fixture
def project(tmp_path: Path, sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    # sqlite_db: ./taskq.db, the default database, is there at the schema's head already.
    # The CLI puts the working directory on sys.path and PYTHONPATH and fills the registry: restore them.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    for name in ("good_cli_tasks", "broken_cli_tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good_cli_tasks.py").write_text(
        "import taskq\n\n@taskq.task\ndef add(a: int, b: int) -> int:\n    return a + b\n"
    )
    (tmp_path / "broken_cli_tasks.py").write_text("import taskq\n\ndef oops(:\n    pass\n")
    (tmp_path / "settings.yaml").write_text("imports: [good_cli_tasks]\n")
    return tmp_path


def test_read_only_commands_warn_and_work(project: Path) -> None:
    enqueued = CliRunner().invoke(main, ["enqueue", "good_cli_tasks.add", "--args", "[1, 2]"])
    assert enqueued.exit_code == 0, enqueued.output
    task_id = enqueued.stdout.strip()
    (project / "settings.yaml").write_text("imports: [good_cli_tasks, broken_cli_tasks]\n")
    for args, code in (
        (["list"], 0),
        (["show", task_id], 0),
        (["stats"], 0),
        (["queues"], 0),
        (["workers"], 0),
        (["wait", task_id, "--timeout", "0"], 2),  # pending, no pool: timed out, not an import error
        (["cancel", task_id], 0),
        (["retry", task_id], 0),
        (["cancel", "--all", "--yes"], 0),
        (["retry", "--all", "--status", "cancelled", "--yes"], 0),
        (["purge", "--older-than", "7d"], 0),
        (["db", "upgrade"], 0),
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == code, (args, result.output)
        assert WARNING in result.stderr and "Traceback" not in result.output, (args, result.output)


@pytest.mark.parametrize(
    "args", [["enqueue", "good_cli_tasks.add", "--args", "[1, 2]"], ["tasks"], ["worker", "--workers", "1"]]
)
def test_commands_that_need_the_tasks_refuse_naming_the_module(project: Path, args: list[str]) -> None:
    (project / "settings.yaml").write_text("imports: [good_cli_tasks, broken_cli_tasks]\n")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: cannot import task module 'broken_cli_tasks': SyntaxError"), result.output
    assert "Traceback" not in result.output
