"""taskq/launch.py finds the subcommand without click, to start the fork server before importing it."""

from __future__ import annotations

import pytest

from taskq.launch import command_of


@pytest.mark.parametrize(
    ("arguments", "command"),
    [
        (["worker"], "worker"),
        (["--db", "sqlite:///x.db", "--import", "app.tasks", "worker", "--workers", "2"], "worker"),
        (["--settings", "worker", "list"], "list"),  # a value that happens to read "worker" is no command
        (["--db=sqlite:///x.db", "worker"], "worker"),
        (["worker", "--help"], None),
        (["--version"], None),
        (["enqueue", "taskq.echo", "worker"], "enqueue"),
        ([], None),
    ],
)
def test_the_subcommand_is_the_first_word_that_is_no_option_value(arguments: list[str], command: str | None) -> None:
    assert command_of(arguments) == command
