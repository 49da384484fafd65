"""Worker heartbeats: which worker processes are alive, on which host, doing what."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from taskq.clock import utc_now
from taskq.model import WorkerInfo
from taskq.schema import workers
from taskq.store.base import StoreBase


class WorkerOps(StoreBase):
    def register_worker(
        self, worker_id: str, *, hostname: str, pid: int, name: str, queues: Sequence[str], now: datetime | None = None
    ) -> None:
        now = now or utc_now()
        row = {
            "id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "name": name,
            "queues": list(queues),
            "started_at": now,
            "heartbeat_at": now,
            "current_task_id": None,
            "tasks_done": 0,
        }

        def work(conn: Connection) -> None:
            conn.execute(delete(workers).where(workers.c.id == worker_id))
            conn.execute(workers.insert(), row)

        self.write(work)

    def heartbeat_worker(
        self, worker_id: str, *, current_task_id: int | None, tasks_done: int, now: datetime | None = None
    ) -> None:
        statement = (
            update(workers)
            .where(workers.c.id == worker_id)
            .values(heartbeat_at=now or utc_now(), current_task_id=current_task_id, tasks_done=tasks_done)
        )
        self.write(lambda conn: conn.execute(statement))

    def unregister_worker(self, worker_id: str) -> None:
        self.write(lambda conn: conn.execute(delete(workers).where(workers.c.id == worker_id)))

    def list_workers(self, *, alive_within: float = 60.0, now: datetime | None = None) -> list[WorkerInfo]:
        """Workers whose last heartbeat is at most `alive_within` seconds old, by id."""
        cutoff = (now or utc_now()) - timedelta(seconds=alive_within)
        query = select(workers).where(workers.c.heartbeat_at >= cutoff).order_by(workers.c.id)
        return [WorkerInfo.from_row(row) for row in self.read(lambda conn: conn.execute(query).mappings().all())]

    def prune_workers(self, *, silent_for: float, now: datetime | None = None) -> int:
        """Forget workers that have not reported for `silent_for` seconds (crashed hosts)."""
        cutoff = (now or utc_now()) - timedelta(seconds=silent_for)
        statement = delete(workers).where(workers.c.heartbeat_at < cutoff)
        return int(self.write(lambda conn: conn.execute(statement).rowcount))
