"""PostgreSQL scale-out through real parts: two pools as separate process trees (standing in for two hosts) on
one schema, a fan-out whose children finish on both, a server restart under a draining pool. (LISTEN wake-up
and the claim and last-child races at the store level: tests/contract/test_postgres_store.py.) Pools come from
tests/support/poolkit.py; each pool records its task runs in its own run log, so runs are counted outside the
tasks table."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import PrivateSchema
from poolkit import PoolProcess, runs, wait_for
from sqlalchemy.engine import make_url

import taskq
from taskq.model import Status
from taskq.store import Store

POSTGRES_URL = os.environ.get("TASKQ_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="TASKQ_TEST_POSTGRES_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"
)


def start_pool(directory: Path, url: str, workers: int, lease: str = "30s") -> PoolProcess:
    """A pool in a directory of its own (its run log is directory/runs.log)."""
    directory.mkdir()
    settings = directory / "settings.yaml"
    settings.write_text(f"lease: {lease}\nshutdown_grace: 10s\nretention: forever\n")
    return PoolProcess(directory, url, "--workers", str(workers), "--import", "postgres_pool_tasks", settings=settings)


def settled(store: Store) -> dict[str, int] | None:
    """The stats once no task is pending, running or waiting; None before."""
    stats = store.stats()
    active = stats["pending"] + stats["running"] + stats["waiting_for_children"]
    return None if active else stats


@pytest.fixture(scope="module")
def two_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[PoolProcess]]]:
    """Two pools of two workers each on one fresh schema, started once for the tests that share them."""
    directory = tmp_path_factory.mktemp("two_pools")
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    pools = [start_pool(directory / f"pool-{n}", schema.url, workers=2) for n in (1, 2)]
    try:
        for pool in pools:
            pool.wait_ready(2, timeout=30)
        yield store, pools
    finally:
        for pool in pools:
            pool.stop()
        store.dispose()
        schema.drop()
    for pool in pools:
        assert pool.process.returncode == 0, pool.log()[-3000:]


def test_two_pools_drain_5000_tasks_each_run_exactly_once(two_pools: tuple[Store, list[PoolProcess]]) -> None:
    store, pools = two_pools
    store.enqueue_many([{"name": "t.record", "args": [number]} for number in range(5000)])
    stats = wait_for(lambda: settled(store), 90, interval=0.25, what="5,000 tasks to drain")
    assert stats["completed"] == 5000 and stats["failed"] == 0, stats
    per_pool = [runs(pool.runlog, "run") for pool in pools]
    counts = collections.Counter(int(number) for ran in per_pool for number in ran)
    assert set(counts) == set(range(5000)), "some tasks never ran"
    assert [number for number, count in counts.items() if count > 1] == [], "tasks ran twice"
    assert all(per_pool), "both pools should have run tasks"


def test_fan_out_across_two_pools_runs_its_continuation_once(two_pools: tuple[Store, list[PoolProcess]]) -> None:
    store, pools = two_pools
    parent = store.enqueue("pgtest.fan_out", [300, 0.002]).id
    wait_for(lambda: settled(store), 60, interval=0.25, what="the fan-out and its continuation to finish")
    assert store.require(parent).status is Status.COMPLETED
    children = [runs(pool.runlog, "child") for pool in pools]
    assert all(children), "children should have finished on both pools"
    assert sorted(int(number) for ran in children for number in ran) == list(range(300))
    assert [int(key) for pool in pools for key in runs(pool.runlog, "gather")] == [parent]
    continuations = store.list(name="pgtest.gather")
    assert [(task.args, task.status) for task in continuations] == [([parent], Status.COMPLETED)]


def _restart_command() -> list[str] | None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    host = make_url(POSTGRES_URL or "").host
    if len(versions) != 1 or host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"]


def server_accepts_connections() -> bool:
    url = make_url(POSTGRES_URL or "")
    probe = ["pg_isready", "-q", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    return subprocess.run(probe, check=False).returncode == 0


def test_pool_survives_a_postgresql_restart_and_finishes_every_task(tmp_path: Path) -> None:
    restart = _restart_command()
    if restart is None:
        pytest.skip("restarting PostgreSQL needs root, pg_ctlcluster and a single local cluster")
    schema = PrivateSchema()
    store = taskq.open_store(schema.url)
    pool = start_pool(tmp_path / "pool", schema.url, workers=2, lease="4s")
    total = 1500
    try:
        pool.wait_ready(2, timeout=30)
        store.enqueue_many([{"name": "t.slow", "args": [number, 0.004]} for number in range(total)])
        wait_for(lambda: store.stats()["completed"] >= 100, 30, what="the pool to be draining")
        assert store.stats()["completed"] < total - 500, "the pool drained too fast to be restarted mid-way"
        subprocess.run(restart, check=True, timeout=60, capture_output=True)
        wait_for(server_accepts_connections, 30, interval=0.2, what="pg_isready after the restart")
        stats = wait_for(lambda: settled(store), 45, interval=0.25, what="every task to reach a terminal state")
        assert pool.process.poll() is None, "the pool exited:\n" + pool.log()[-3000:]
    finally:
        pool.stop()
        store.dispose()
        schema.drop()
    assert stats["completed"] == total, stats
    assert {int(number) for number in runs(pool.runlog, "done")} == set(range(total))
    assert pool.process.returncode == 0, pool.log()[-3000:]
    log = pool.log()
    assert "listen_lost" in log, "the pool should have noticed the restart"
    crashes = [line for line in log.splitlines() if "worker_exited" in line and " ERROR " in line]
    assert crashes == [], "workers should ride out a restart, not die and be respawned"
