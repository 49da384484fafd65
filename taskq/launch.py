"""The `taskq` command's entry point: starts the worker pool's fork server before anything heavy is
imported, then hands over to the click CLI (taskq/cli.py).

`taskq worker` spends its first ~0.35 s (quiet 2-core machine) importing the CLI, SQLAlchemy and the
store, and its fork server spends as long importing the worker's code. Started here, the server imports
while the supervisor does, on the other core, so the first worker forks about when the supervisor is
ready for it. Only the standard library and taskq.forkserver are imported before that.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Options of the `taskq` group that take a value (taskq/cli.py's main): the word after them is no command.
_GROUP_OPTIONS_WITH_VALUE = ("--db", "--settings", "--import")
_HELP = ("-h", "--help", "--version")


def command_of(arguments: Sequence[str]) -> str | None:
    """The subcommand named in `arguments` (argv without the program), None for none or for help."""
    if any(argument in _HELP for argument in arguments):
        return None
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
        elif argument in _GROUP_OPTIONS_WITH_VALUE:
            skip_value = True
        elif not argument.startswith("-"):
            return argument
    return None


def main(arguments: Sequence[str] | None = None, prog_name: str = "taskq") -> None:
    """`taskq ...` (console script), `python -m taskq ...` and run.py."""
    argv = list(sys.argv[1:] if arguments is None else arguments)
    if command_of(argv) == "worker":
        from taskq import forkserver

        forkserver.start_early()
    from taskq.cli import main as cli_main

    cli_main(argv, prog_name=prog_name)
