"""examples/scan_folder.py end to end: folder -> one child per file -> summary continuation, through a real pool."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import taskq

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scan_folder.py"


def test_scan_folder_example_summarises_every_file_once(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    for n in range(1, 8):
        (folder / f"f{n}.txt").write_text("x\n" * n)
    (folder / "sub" / "big.txt").write_text("y\n" * 100)
    url = f"sqlite:///{tmp_path / 'scan.db'}"
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), str(folder), "--db", url, "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    printed = run.stdout.strip().split(": ", 1)
    assert ast.literal_eval(printed[1]) == {
        "files": 8,
        "bytes": 2 * (28 + 100),
        "lines": 28 + 100,
        "biggest": str(folder / "sub" / "big.txt"),
    }
    store = taskq.open_store(url)
    try:
        (scan,) = store.list(name="scan.folder")
        assert (scan.status, scan.progress, scan.children_completed) == (taskq.Status.COMPLETED, 100.0, 8)
        assert len(store.list(name="scan.summary")) == 1
    finally:
        store.dispose()
