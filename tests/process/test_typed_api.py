"""Users' type checkers check calls of `.enqueue` against the task's signature and type `.result()`.

mypy (--strict) runs on a small program the way a user's project would run it on theirs: every line
marked `# error` must be reported, and nothing else. Before the typed decorator, `.enqueue` took
anything and `.result()` was Any, so the marked lines passed and the assert_type lines failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")

USER_CODE = '''
from typing import assert_type

import taskq


@taskq.task(max_retries=5, timeout=300)
def resize(path: str, width: int) -> dict[str, object]:
    return {"path": path, "width": width}


@taskq.task
def count_up(ctx: taskq.TaskContext, count: int) -> int:
    return count + ctx.attempt


@taskq.task(queue="io")
async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode()


async def from_a_coroutine() -> None:
    handle = await resize.enqueue_async("a.png", width=320)
    assert_type(await handle.result_async(), dict[str, object])
    await resize.enqueue_async("a.png", width="wide")  # error


assert_type(resize.enqueue("a.png", 320), taskq.Enqueued[dict[str, object]])
assert_type(resize.enqueue("a.png", 320).result(), dict[str, object])
assert_type(count_up.enqueue(3).result(timeout=5), int)
assert_type(fetch.enqueue("https://example.com", retries=2).result(), bytes)
resize.enqueue("a.png", "wide")  # error
resize.enqueue("a.png")  # error
count_up.enqueue(None, 3)  # error
fetch.enqueue("https://example.com", 2)  # error
fetch.enqueue(url="https://example.com", timeout=3)  # error
'''


def test_enqueue_is_checked_against_the_signature_and_result_is_typed(tmp_path: Path) -> None:
    program = tmp_path / "user_code.py"
    program.write_text(USER_CODE)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache")}
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--show-error-codes", program.name],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    reported = {
        int(match.group(1))
        for match in re.finditer(r"^user_code\.py:(\d+): error:", checked.stdout, re.MULTILINE)
    }
    expected = {number for number, line in enumerate(USER_CODE.splitlines(), 1) if line.endswith("# error")}
    assert reported == expected, checked.stdout
