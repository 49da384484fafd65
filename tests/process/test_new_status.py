"""A new status is written in model.py and lifecycle.py, and carried to databases by a migration: every
place that lists, groups or counts statuses follows from those (the command line's choices and columns,
the dashboard's sets and colours, the rollup's columns, /metrics' counters, Django's statuses).

Proven on a scratch copy of the package with two statuses added, one active and one finished, by editing
those two files only; support/new_status_check.py then runs against the copy. The migration, the third
file, is stood in for by a database made from the copy's schema.py (tests/contract/test_migrations.py
fails while a status has no migration)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

from databases import sqlite_url

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "support" / "new_status_check.py"

# (file, the line after which the addition goes, the addition)
EDITS = (
    (
        "model.py",
        '    CANCELLED = "cancelled"  # cancelled before or while running\n',
        '    PAUSED = "paused"  # held by an operator until resumed\n'
        '    EXPIRED = "expired"  # not run before its deadline\n',
    ),
    (
        "model.py",
        "        Status.CANCELLED: StatusClass.STOPPED,\n",
        "        Status.PAUSED: StatusClass.WAITING,\n        Status.EXPIRED: StatusClass.FAILURE,\n",
    ),
    (
        "lifecycle.py",
        '    RESCHEDULE = "reschedule"  # a schedule\'s settings entry was edited: its pending row follows\n',
        '    PAUSE = "pause"\n    RESUME = "resume"\n    EXPIRE = "expire"\n',
    ),
    (
        "lifecycle.py",
        "    Transition(Event.PASS_ON, _R, _P),\n",
        "    Transition(Event.PAUSE, _P, Status.PAUSED),\n"
        "    Transition(Event.RESUME, Status.PAUSED, _P),\n"
        "    Transition(Event.CANCEL, Status.PAUSED, _X),\n"
        "    Transition(Event.EXPIRE, _R, Status.EXPIRED),\n"
        "    Transition(Event.RETRY, Status.EXPIRED, _P),\n",
    ),
)


def changed_files(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    changed = [*comparison.diff_files, *comparison.left_only, *comparison.right_only]
    for name in comparison.common_dirs:
        changed += [f"{name}/{path}" for path in changed_files(left / name, right / name)]
    return sorted(changed)


def test_a_new_status_is_two_files_of_the_package_and_everything_else_follows(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    for part in ("taskq", "migrations"):  # as a checkout has them, migrations beside the package
        shutil.copytree(ROOT / part, scratch / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name, anchor, addition in EDITS:
        path = scratch / "taskq" / name
        source = path.read_text()
        assert source.count(anchor) == 1, f"{name} no longer has {anchor!r}: update this test's EDITS"
        path.write_text(source.replace(anchor, anchor + addition))
    assert changed_files(ROOT / "taskq", scratch / "taskq") == ["lifecycle.py", "model.py"]

    env = {**os.environ, "PYTHONPATH": str(scratch), "TASKQ_DATABASE_URL": ""}
    run = subprocess.run(
        [sys.executable, str(CHECK), str(scratch), sqlite_url(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("ok")
