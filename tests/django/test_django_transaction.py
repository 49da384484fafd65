"""An enqueue inside Django's transaction.atomic() commits or rolls back with the view's own writes, on
SQLite and on PostgreSQL, when taskq's tables live in the app's database (OPTIONS DATABASE_ALIAS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_pool import DJANGO_SKIP_REASON, DjangoPool
from poolkit import wait_for

pytest.importorskip("taskq.contrib.django.framework", reason=DJANGO_SKIP_REASON)

from django.db import connections, transaction

from taskq.contrib.django.framework import TaskResultStatus, task_backends


class Rollback(Exception):
    pass


def notes(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT body FROM notes ORDER BY body")
        return [row[0] for row in cursor.fetchall()]


def check_atomic(alias: str) -> str:
    """Roll back one view's writes and commit another's; returns the committed task's result id."""
    from djangotest.tasks import add

    task = add.using(backend=alias)
    store = task_backends[alias].store
    with connections[alias].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS notes")
        cursor.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(Rollback), transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("INSERT INTO notes VALUES ('rolled back')")
        rolled = task.enqueue(1, 1)
        raise Rollback
    assert store.get(int(rolled.id)) is None and notes(alias) == []
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("INSERT INTO notes VALUES ('kept')")
        kept = task.enqueue(2, 2)
        # Written through Django's connection, so taskq's own connection cannot see it before COMMIT.
        assert store.get(int(kept.id)) is None
    assert store.get(int(kept.id)) is not None and notes(alias) == ["kept"]
    return kept.id


def test_sqlite_rollback_leaves_no_task_and_commit_leaves_one(pool: DjangoPool) -> None:
    kept = check_atomic("default")
    result = task_backends["default"].get_result(kept)
    wait_for(lambda: (result.refresh(), result.is_finished)[1], 30, what="the committed task ran")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 4


@pytest.fixture
def postgres_pool(postgres_site) -> Iterator[DjangoPool]:  # type: ignore[no-untyped-def]
    started = DjangoPool(postgres_site.directory, "--workers", "1", "--db", task_backends["pg"].url)
    try:
        started.wait_ready(1)
        yield started
    finally:
        started.stop()


def test_postgres_rollback_leaves_no_task_and_commit_leaves_one(postgres_pool: DjangoPool) -> None:
    kept = check_atomic("pg")
    result = task_backends["pg"].get_result(kept)
    assert result.backend == "pg" and result.task.backend == "pg"
    wait_for(lambda: (result.refresh(), result.is_finished)[1], 30, what="the committed task ran")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 4


def test_outside_atomic_the_enqueue_commits_on_its_own() -> None:
    from djangotest.tasks import add

    assert not connections["default"].in_atomic_block
    result = add.using(run_after=None).enqueue(3, 3)
    assert task_backends["default"].store.get(int(result.id)) is not None


def test_a_dedup_key_taken_earlier_in_the_same_atomic_block_returns_that_task() -> None:
    from datetime import timedelta

    from django.utils import timezone
    from djangotest.tasks import add

    later = add.using(run_after=timezone.now() + timedelta(hours=1), dedup_key="same-transaction")
    with transaction.atomic():
        first = later.enqueue(1, 1)
        second = later.enqueue(2, 2)  # the holder is not committed: taskq's own connection cannot see it
    assert second.id == first.id and second.status == TaskResultStatus.READY
    assert task_backends["default"].store.require(int(first.id)).args == [1, 1]
    task_backends["default"].store.cancel(int(first.id))
