"""The taskq command's errors in this process (CliRunner): a missing driver names the extra to install, an
unexpected error is one line unless a traceback is asked for; and the distribution name the README installs.
(tests/process/test_cli.py runs the command as a real subprocess.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


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

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "taskq"  # `taskq` on PyPI is an unrelated 2014 package
    assert project["scripts"] == {"taskq": "taskq.launch:main"}  # starts the fork server, then taskq.cli
    readme = (root / "README.md").read_text()
    assert f"pip install {DISTRIBUTION}" in readme and f"pip install '{DISTRIBUTION}[postgres]'" in readme
    assert "pip install taskq\n" not in readme and "'taskq[" not in readme
