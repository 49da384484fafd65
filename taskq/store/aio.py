"""Async twins of the calls a web app makes, for Starlette/FastAPI/FastHTML handlers: the blocking store
call runs in the event loop's default thread pool (`asyncio.to_thread`), and waiting sleeps with
`asyncio.sleep` between reads, so no call holds the loop for longer than a thread hand-off.

Why threads and not an async driver: the store's statements, its retries on a locked SQLite file and the
SQLite hot path are synchronous and measured; an INSERT takes well under a millisecond, so handing it to a
thread costs little, while a second, async implementation of every operation would have to be kept in
step with the first (procrastinate went the other way, async-first with a sync wrapper, because its
workers are async too).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taskq.model import Enqueued, Task, TaskRequest
from taskq.store.base import StoreBase
from taskq.store.queries import Waiting


class AsyncOps(StoreBase):
    async def enqueue_async(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Enqueued:
        """`enqueue` without blocking the event loop; takes the same options."""
        call = functools.partial(self.enqueue, name, args, kwargs, **options)  # type: ignore[attr-defined]
        return await asyncio.to_thread(call)

    async def enqueue_many_async(
        self, requests: Iterable[TaskRequest | Mapping[str, Any]], **options: Any
    ) -> list[Enqueued]:
        call = functools.partial(self.enqueue_many, list(requests), **options)  # type: ignore[attr-defined]
        return await asyncio.to_thread(call)

    async def get_async(self, task_id: int) -> Task | None:
        return await asyncio.to_thread(self.get, task_id)  # type: ignore[attr-defined]

    async def wait_async(self, task_id: int, timeout: float | None = None) -> Task:
        """`wait` for a coroutine: each read runs in a thread, each pause is an asyncio.sleep, so a
        thousand requests waiting at once hold no thread between reads."""
        waiting = Waiting(task_id, timeout)
        while True:
            pause = waiting.after(await asyncio.to_thread(self.require, task_id))  # type: ignore[attr-defined]
            if isinstance(pause, Task):
                return pause
            await asyncio.sleep(pause)
