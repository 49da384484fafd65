"""`taskq wait` on a real pseudo-terminal: a progress bar while the task runs, then the failed task's error.
(What the other commands show in a terminal is tested in this process: tests/unit/test_cli_terminal.py.)"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path


def run_on_a_tty(args: list[str], cwd: Path, seconds: float = 30) -> tuple[int, str]:
    """Run the CLI with a real pseudo-terminal as stdin/stdout/stderr; returns its exit code and output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "taskq", *args],
        cwd=cwd,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(10), output.decode(errors="replace")


def test_wait_shows_progress_on_a_terminal_and_prints_the_error_of_a_failed_task(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, store = db
    task_id = store.enqueue("taskq.echo", max_retries=0).id
    store.claim("w")
    store.set_progress(task_id, 40, "4/10 files")
    code, output = 0, ""

    def fail_soon() -> None:
        time.sleep(1.0)
        store.fail(task_id, "Traceback ...\nKeyError: 'missing'", worker_id="w")

    import threading

    failing = threading.Thread(target=fail_soon)
    failing.start()
    code, output = run_on_a_tty(["--db", url, "wait", str(task_id), "--timeout", "20"], tmp_path)
    failing.join()
    assert code == 1
    assert "40%" in output and "4/10 files" in output  # the bar, drawn on the terminal
    assert f"task {task_id} failed: KeyError: 'missing'" in output
