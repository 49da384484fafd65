"""`taskq workers` lists the workers of a real pool (the other bulk and listing commands run in this process:
tests/unit/test_cli_bulk.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from poolkit import PoolProcess, wait_for

from taskq.cli import main


def run(url: str, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--db", url, *args], input=input, env={"COLUMNS": "120"})
    return result.exit_code, result.output


def test_workers_shows_a_real_pool(tmp_path: Path, db, pools) -> None:  # type: ignore[no-untyped-def]
    url, _store = db
    pool = PoolProcess(tmp_path, url, "--workers", "2")
    pools.append(pool)
    pool.wait_ready(2)
    listed = wait_for(lambda: len(json.loads(run(url, "workers", "--json")[1])) == 2 and run(url, "workers", "--json"))
    names = sorted(worker["name"] for worker in json.loads(listed[1]))
    assert names == ["worker-1", "worker-2"]
