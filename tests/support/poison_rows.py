"""Rows enqueue would refuse, written straight into the tasks table with SQL: the JSON
columns get the raw text given, so a test can store what an older taskq let in, or another program wrote.
Also the tasks a pool imports for them (`--import poison_rows`): results nested too deep to store."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text

import taskq
from taskq.clock import utc_now
from taskq.store import Store

POISON_DEPTH = 990  # passed the old enqueue check (encoded in a shallow stack); no worker could read it back


def nested_text(depth: int) -> str:
    """A JSON array `depth` levels deep, as text (building the value would need a deep stack to encode)."""
    return "[" * depth + "]" * depth


def nested(depth: int) -> Any:
    """A list `depth` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def insert_raw(
    store: Store,
    *,
    name: str = "taskq.echo",
    args: str = "[]",
    kwargs: str = "{}",
    result: str | None = None,
    status: str = "pending",
    priority: int = 0,
    max_retries: int = 3,
) -> int:
    """One task row with these JSON texts stored as they are; returns its id."""
    cast = (lambda bind: f"CAST({bind} AS json)") if store.dialect.name == "postgresql" else (lambda bind: bind)
    now = utc_now()
    values = {
        "name": name,
        "args": args,
        "kwargs": kwargs,
        "result": result,
        "status": status,
        "priority": priority,
        "max_retries": max_retries,
        "run_after": now.replace(tzinfo=None) if store.dialect.name == "sqlite" else now,
    }
    columns = ", ".join(values) + ", queue, created_at"
    binds = ", ".join(cast(f":{key}") if key in ("args", "kwargs", "result") else f":{key}" for key in values)
    statement = text(f"INSERT INTO tasks ({columns}) VALUES ({binds}, 'default', :run_after) RETURNING id")
    with store.engine.connect() as connection:
        store.begin_write(connection)
        task_id = int(connection.execute(statement, values).scalar_one())
        connection.commit()
    return task_id


def record(kind: str, value: Any) -> None:
    path = os.environ.get("TASKQ_TEST_RUNLOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{kind} {value} {os.getpid()}\n")


@taskq.task(name="poison.deep_result", max_retries=2)
def deep_result(depth: int) -> Any:
    record("ran", depth)
    return nested(depth)


@taskq.task(name="poison.deep_result_async", max_retries=2)
async def deep_result_async(depth: int) -> Any:
    record("ran", depth)
    return nested(depth)


@taskq.task(name="poison.pid")
def pid(n: int) -> int:
    record("ran", n)
    return n
