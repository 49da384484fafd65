"""The settings watcher on a real directory: every way an editor saves is seen, other files' writes are not."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskq.settings_watch import SettingsWatcher


def _due_within(watcher: SettingsWatcher, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watcher.reload_due():
            return True
        time.sleep(0.01)
    return False


def _in_place(path: Path) -> None:
    path.write_text("workers: 3\n")  # truncate, write, close


def _renamed_over(path: Path) -> None:
    temporary = path.with_name(".settings.yaml.swp")
    temporary.write_text("workers: 3\n")
    os.replace(temporary, path)


def _appended_by_a_writer_left_open(path: Path) -> None:
    with path.open("a") as file:
        file.write("# a comment\n")
        file.flush()
        time.sleep(0.05)


@pytest.mark.parametrize("save", [_in_place, _renamed_over, _appended_by_a_writer_left_open])
def test_an_edit_makes_a_reload_due_and_other_files_do_not(tmp_path: Path, save: Callable[[Path], None]) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("workers: 2\n")
    watcher = SettingsWatcher(settings)
    watcher.start()
    try:
        time.sleep(0.1)  # the observer's watch is in place
        for _ in range(50):  # a busy database beside it: its -wal file written over and over
            with (tmp_path / "taskq.db-wal").open("a") as wal:
                wal.write("x" * 100)
                wal.flush()
        assert not _due_within(watcher, 0.3), "another file's writes should not reload the settings"
        save(settings)
        assert _due_within(watcher, 2.0), "the edit should make a reload due"
        assert not _due_within(watcher, 0.3), "one edit, one reload"
    finally:
        watcher.stop()
