"""Finding tasks the way a web app remembers them: by dedup key, or "what is still running"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, select, union_all

from taskq.model import Task
from taskq.schema import tasks
from taskq.store.base import StoreBase, active_parts


class LookupOps(StoreBase):
    def latest_by_dedup_key(self, dedup_key: str) -> Task | None:
        """The newest task enqueued with `dedup_key`, active or finished (a new web session finds the
        job its user started earlier). One probe of ix_tasks_dedup_key, however many rows the table holds;
        the IS NOT NULL term is the partial index's own condition, spelled out for the planners."""
        query = (
            select(tasks)
            .where(tasks.c.dedup_key == dedup_key, tasks.c.dedup_key.is_not(None))
            .order_by(tasks.c.id.desc())
            .limit(1)
        )
        row = self.read(lambda conn: conn.execute(query).mappings().first())
        return None if row is None else Task.from_row(row)

    def active(self, *, names: Sequence[str] | None = None, limit: int = 50) -> list[Task]:
        """Pending, running and waiting tasks, oldest first; only those called one of `names` if given."""

        def part(status: ColumnElement[bool]) -> Select[Any]:
            query = select(tasks).where(status)
            return query if names is None else query.where(tasks.c.name.in_(list(names)))

        rows = union_all(*active_parts(part)).subquery()
        # `id + 0`: ordered after the parts are read, so each part picks the index of its status rather than
        # walking the whole table in id order to avoid a sort (which SQLite prefers for a running-rows part).
        query = select(rows).order_by(rows.c.id + 0).limit(limit)
        return [Task.from_row(row) for row in self.read(lambda conn: conn.execute(query).mappings().all())]
