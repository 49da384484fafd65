"""Django tasks the tests enqueue and the pools run (autodiscovered by `manage.py taskq_worker`)."""

import asyncio
import time

from django.db import connection

import taskq
from taskq.context import current
from taskq.contrib.django import options
from taskq.contrib.django.framework import task


class Boom(Exception):
    pass


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="ordered")
def stamp(label: str) -> dict:
    return {"label": label, "at": time.time()}


@task(max_retries=1, retry_backoff=0.1)
def fails(message: str) -> None:
    raise Boom(message)


@task(max_retries=0)
def fails_once_builtin() -> None:
    raise ValueError("plain")


@task(takes_context=True, max_retries=2, retry_backoff=0.1)
def flaky(context, succeed_on: int) -> dict:
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt}")
    return {"attempt": context.attempt, "id": context.task_result.id, "workers": context.task_result.worker_ids}


@task
async def async_double(value: int) -> int:
    await asyncio.sleep(0.01)
    return value * 2


@task
def with_progress() -> str:
    ctx = current()  # taskq's own context: progress and cancellation
    ctx.progress(50, "half way")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(0.05)
    return "not cancelled"


@task(timeout=1, max_retries=0)
def too_slow() -> None:
    time.sleep(30)


@task
def table_count(table: str) -> int:
    """Reads through the worker's own Django connection (closed around each task)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


@task(retry_on=KeyError, max_retries=5, retry_backoff=0.1)
def not_retried() -> None:
    raise taskq.Fail("permanent")


@task(max_concurrency=1)
def capped(seconds: float) -> list[float]:
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


@task(max_retries=3)
def returns_a_set() -> set:
    return {1, 2}


@task(max_retries=0)
def exits() -> None:
    raise SystemExit("This Task failed due to SystemExit")


@options(max_retries=0, timeout=5)  # Django 6.0's way: its @task passes no taskq option on
@task
def decorated_for_django_60() -> str:
    return "ok"


@task
def where_was_django_set_up() -> dict:
    import os

    from taskq.contrib.django import boot

    return {"setup_pid": boot.SETUP_PID, "worker_pid": os.getpid()}


@task
def fan_out(count: int, hold: float) -> None:
    """Spawns `count` children (Django tasks too, through their taskq names) and waits for them."""
    current().spawn_children([{"name": "djangotest.tasks.add", "args": [i, i]} for i in range(count)] + [
        {"name": "djangotest.tasks.capped", "args": [hold]}
    ])
