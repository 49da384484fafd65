"""Worker heartbeats: which worker processes are alive, on which host, doing what."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from taskq.model import WorkerInfo
from taskq.schema import workers


def register_worker(
    conn: Connection, worker_id: str, *, hostname: str, pid: int, name: str, queues: Sequence[str], now: datetime
) -> None:
    conn.execute(delete(workers).where(workers.c.id == worker_id))
    conn.execute(
        workers.insert(),
        {
            "id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "name": name,
            "queues": list(queues),
            "started_at": now,
            "heartbeat_at": now,
            "current_task_id": None,
            "tasks_done": 0,
        },
    )


def heartbeat_worker(
    conn: Connection, worker_id: str, *, current_task_id: int | None, tasks_done: int, now: datetime
) -> None:
    conn.execute(
        update(workers)
        .where(workers.c.id == worker_id)
        .values(heartbeat_at=now, current_task_id=current_task_id, tasks_done=tasks_done)
    )


def unregister_worker(conn: Connection, worker_id: str) -> None:
    conn.execute(delete(workers).where(workers.c.id == worker_id))


def list_workers(conn: Connection, *, alive_within: float, now: datetime) -> list[WorkerInfo]:
    """Workers whose last heartbeat is at most `alive_within` seconds old, by id."""
    cutoff = now - timedelta(seconds=alive_within)
    query = select(workers).where(workers.c.heartbeat_at >= cutoff).order_by(workers.c.id)
    return [WorkerInfo.from_row(row) for row in conn.execute(query).mappings().all()]


def prune_workers(conn: Connection, *, silent_for: float, now: datetime) -> int:
    """Forget workers that have not reported for `silent_for` seconds (crashed hosts)."""
    cutoff = now - timedelta(seconds=silent_for)
    return int(conn.execute(delete(workers).where(workers.c.heartbeat_at < cutoff)).rowcount)
