"""Finding tasks the way a web app remembers them: by dedup key, or "what is still running"."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from taskq.model import Task
from taskq.schema import tasks
from taskq.store.base import _ACTIVE, StoreBase, _status_is


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
        query = select(tasks).where(_status_is(*_ACTIVE)).order_by(tasks.c.id).limit(limit)
        if names is not None:
            query = query.where(tasks.c.name.in_(list(names)))
        return [Task.from_row(row) for row in self.read(lambda conn: conn.execute(query).mappings().all())]
