"""The async API for web apps, against a real worker pool: get, wait and result awaited until the worker has
run the task. (The store calls alone, on both dialects: tests/contract/test_async_api.py.)"""

from __future__ import annotations

import asyncio

import pytest
from pool_tasks import record_run
from poolkit import PoolProcess

import taskq
from taskq.model import Status


def test_get_async_and_a_handle_awaited_until_a_real_worker_finishes(tmp_path, database_url, store, pools) -> None:
    pool = PoolProcess(tmp_path, database_url, "--workers", "1")
    pools.append(pool)

    async def scenario() -> None:
        handle = await store.enqueue_async(record_run.name, [5])
        assert (await store.get_async(handle.id)).name == "t.record"  # type: ignore[union-attr]
        with pytest.raises(taskq.TaskNotFinished):
            await store.wait_async(handle.id, timeout=0)
        assert (await handle.wait_async(timeout=30)).status is Status.COMPLETED
        assert await handle.result_async() == 10 and await handle.status_async() is Status.COMPLETED
        assert await store.get_async(10**9) is None
        later = await store.enqueue_async(record_run.name, [1], delay=3600)
        assert await later.cancel_async() is Status.CANCELLED
        with pytest.raises(taskq.TaskFailed, match="cancelled"):
            await later.result_async()

    asyncio.run(scenario())
