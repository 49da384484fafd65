"""The README's Quick start, run verbatim in a fresh folder with a real worker pool.

Files are the code blocks whose first line names them (`# myapp/tasks.py`); the bash block after
"Terminal 1" runs in the background for the whole test, each line of the one after "Terminal 2" runs
in order and must succeed. `taskq` is a console script on PATH, as pip installs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Quick start")
    return readme[start : readme.index("\n## ", start + 1)]


def blocks_after(section: str, marker: str) -> str:
    language, body = BLOCK.search(section, section.index(marker)).groups()  # type: ignore[union-attr]
    assert language == "bash"
    return body


def files_of(section: str) -> dict[str, str]:
    files = {}
    for _language, body in BLOCK.findall(section):
        first = body.splitlines()[0]
        if re.fullmatch(r"# [\w/]+\.(py|yaml)", first):
            files[first[2:]] = body
    return files


@pytest.fixture
def fresh_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty folder, and an environment where `taskq` is a console script of this checkout."""
    folder = tmp_path / "project"
    folder.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "taskq"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom taskq.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKQ_") and key != "NOTIFY_SOCKET"}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)  # this checkout, as `pip install -e .` would make it importable
    return folder, env


def test_the_quick_start_works_verbatim_in_a_fresh_folder(fresh_folder) -> None:  # type: ignore[no-untyped-def]
    folder, env = fresh_folder
    section = quick_start()
    files = files_of(section)
    assert set(files) == {"myapp/tasks.py", "settings.yaml", "enqueue.py"}
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    pool_command = blocks_after(section, "**Terminal 1**").strip()
    assert pool_command == "taskq worker"
    pool_log = folder.parent / "pool.log"
    with open(pool_log, "w") as log:
        pool = subprocess.Popen(
            ["bash", "-c", f"exec {pool_command}"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    outputs: list[str] = []
    try:
        for line in blocks_after(section, "**Terminal 2**").strip().splitlines():
            result = subprocess.run(
                ["bash", "-c", line], cwd=folder, env=env, capture_output=True, text=True, timeout=90
            )
            assert result.returncode == 0, f"{line!r} failed:\n{result.stdout}{result.stderr}\n{pool_log.read_text()}"
            outputs.append(result.stdout)
    finally:
        pool.send_signal(signal.SIGINT)  # Ctrl+C in terminal 1
        code = pool.wait(60)
    assert code == 0, pool_log.read_text()
    assert outputs[0].strip() == "1" and outputs[1].strip() == "completed" and outputs[2].strip() == "2"
    assert "dog.png" in outputs[4] and "completed" in outputs[4]
    # Exactly the two tasks the walkthrough enqueued: importing the task module enqueues nothing.
    listed = subprocess.run(
        ["bash", "-c", "taskq list --json"], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )
    assert [(task["id"], task["status"]) for task in json.loads(listed.stdout)] == [(2, "completed"), (1, "completed")]
    assert "unknown task" not in pool_log.read_text()
