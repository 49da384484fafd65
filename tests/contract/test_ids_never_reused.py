"""Task ids are never handed out twice, on SQLite and PostgreSQL, including databases made before
migration 0006 (which rebuilds SQLite's `tasks` with AUTOINCREMENT and keeps every row and id)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from taskq.clock import utc_now
from taskq.engine import create_database_engine, ensure_schema, upgrade_schema
from taskq.model import TaskRequest
from taskq.schema import schedules, tasks, workers
from taskq.store import Store


def finish(store: Store, name: str) -> int:
    task_id = store.enqueue(name).id
    claimed = store.claim("w", queues=["default"])
    assert claimed is not None and claimed.id == task_id
    store.complete(task_id, {"n": task_id}, worker_id="w", attempt=claimed.attempts, started_at=utc_now())
    return task_id


def test_an_enqueue_after_a_purge_of_the_newest_rows_gets_a_new_id(store: Store) -> None:
    kept = finish(store, "a.job")
    purged = [finish(store, "b.job") for _ in range(3)]
    store.write(
        lambda conn: conn.execute(
            update(tasks).where(tasks.c.id.in_(purged)).values(finished_at=utc_now() - timedelta(days=2))
        )
    )
    store.write(lambda conn: conn.execute(update(tasks).where(tasks.c.id == kept).values(finished_at=utc_now())))
    assert store.purge(timedelta(days=1)) == 3  # the three newest rows go, the oldest id stays
    assert store.enqueue("c.job").id > max(purged)
    assert store.enqueue_many([TaskRequest("d.job")])[0].id > max(purged)


def _indexes(engine: Engine) -> dict[str, str]:
    if engine.dialect.name == "sqlite":
        query = text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL"
        )
    else:
        query = text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' AND schemaname = current_schema()"
        )
    with engine.connect() as connection:
        return {name: sql for name, sql in connection.execute(query)}


def test_a_0005_database_with_rows_keeps_its_ids_and_links_and_never_reuses_one(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade_schema(engine, "0005")
    now = utc_now()

    def row(**values: object) -> dict[str, object]:
        return {"name": "old.job", "args": [], "kwargs": {}, "run_after": now, "created_at": now, **values}

    with engine.begin() as connection:
        parent = connection.execute(
            insert(tasks).values(row(status="waiting_for_children")).returning(tasks.c.id)
        ).scalar_one()
        child = connection.execute(
            insert(tasks)
            .values(row(status="completed", parent_id=parent, finished_at=now, result={"x": 1}))
            .returning(tasks.c.id)
        ).scalar_one()
        keyed = connection.execute(insert(tasks).values(row(dedup_key="k")).returning(tasks.c.id)).scalar_one()
        newest = connection.execute(
            insert(tasks).values(row(status="failed", finished_at=now - timedelta(days=3))).returning(tasks.c.id)
        ).scalar_one()
        # On SQLite, a schedule and a worker may still name rows purged before the upgrade, with ids above
        # every row's (PostgreSQL's sequence is past every id it gave, so there these only stand in for it).
        connection.execute(insert(schedules).values(name="nightly", task_id=newest + 10))
        connection.execute(
            insert(workers).values(
                id="h:1:w",
                hostname="h",
                pid=1,
                name="w",
                queues=[],
                started_at=now,
                heartbeat_at=now,
                current_task_id=newest + 5,
            )
        )
    before = _indexes(engine)

    ensure_schema(engine)  # 0005 -> head, as opening the store does

    assert _indexes(engine) == before  # every index kept as it was, partial ones included
    with engine.connect() as connection:
        ids = connection.execute(select(tasks.c.id, tasks.c.parent_id).order_by(tasks.c.id)).all()
        # the child was not cascaded away when the old table went
        assert ids == [(parent, None), (child, parent), (keyed, None), (newest, None)]
        assert connection.execute(select(tasks.c.result).where(tasks.c.id == child)).scalar_one() == {"x": 1}
    for refused in (row(dedup_key="k"), row(status="lost")):  # the partial unique index and the CHECKs hold
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(tasks).values(refused))
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            ddl = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'tasks'")).scalar_one()
        assert "AUTOINCREMENT" in ddl and 'REFERENCES "tasks"' in ddl
        assert tasks.dialect_options["sqlite"]["autoincrement"]  # schema.py says the same
    assert "metric_names" in inspect(engine).get_table_names()

    store = Store(engine)
    assert store.purge(timedelta(days=1)) == 1  # the newest row
    fresh = store.enqueue("new.job").id
    assert fresh > newest  # above the purged row
    if engine.dialect.name == "sqlite":
        assert fresh > newest + 10  # and above the ids the schedule and a worker still hold
    engine.dispose()
