"""The handle `task.enqueue(...)` returns, waited on until a real worker pool has run the task (tasks in
tests/support/pool_tasks.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pool_tasks import gives_up, record_run
from poolkit import PoolProcess

import taskq
from taskq import api
from taskq.model import Status
from taskq.store import Store


@pytest.fixture
def default_store(database_url: str) -> Iterator[Store]:
    """`task.enqueue(...)` goes to the default store: point it at the test's database, then forget it."""
    yield taskq.configure(database_url)
    api.default_store().dispose()
    api._default = None


def test_task_enqueue_handle_waits_for_a_real_worker(tmp_path, database_url, default_store, pools) -> None:
    pool = PoolProcess(tmp_path, database_url, "--workers", "1")
    pools.append(pool)
    doubled = record_run.enqueue(21)
    assert doubled.wait(timeout=30).status is Status.COMPLETED and doubled.result() == 42
    refused = gives_up.enqueue()
    with pytest.raises(taskq.TaskFailed, match=r"failed: .*Fail: the input can never work"):
        refused.result(timeout=30)
    assert refused.status() is Status.FAILED
