"""Reading tasks: by id, keyset pages and search, counts, children, the active ones, a dedup key's latest.
Read-only: every operator action that writes lives in transitions.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    case,
    cast,
    func,
    null,
    or_,
    select,
    union_all,
)

from taskq.clock import as_utc
from taskq.dialect import JsonBytes
from taskq.model import (
    TERMINAL_STATUSES,
    ClippedValue,
    PageItem,
    Status,
    Task,
    TaskFilter,
    TaskNotFinished,
    TaskPage,
    TaskSummary,
    error_headline,
)
from taskq.schema import tasks
from taskq.store.base import PENDING, _status_is, active_parts
from taskq.store.metrics import known_names

MAX_NAME_MATCHES = 20  # a name substring matching more task names than this is searched with LIKE instead


WAIT_POLL_MIN_SECONDS = 0.02  # first re-read of a task being waited for...
WAIT_POLL_MAX_SECONDS = 0.5  # ...doubling up to this: a quick task is seen done at once, a long wait costs 2 reads/s


class Waiting:
    """The schedule of one wait, shared by the blocking and the async one. It polls: a finished task
    sends no notification (LISTEN/NOTIFY and the SQLite file watch announce new tasks to workers), and
    a read by primary key costs well under a millisecond on either dialect."""

    def __init__(self, task_id: int, timeout: float | None) -> None:
        self.task_id, self.timeout = task_id, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.poll = WAIT_POLL_MIN_SECONDS

    def after(self, task: Task) -> Task | float:
        """The finished task, else the seconds to sleep before reading it again; TaskNotFinished once
        the deadline has passed."""
        if task.status in TERMINAL_STATUSES:
            return task
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TaskNotFinished(f"task {self.task_id} is still {task.status.value} after {self.timeout:g} s")
        pause = self.poll if left is None else min(self.poll, left)
        self.poll = min(self.poll * 2, WAIT_POLL_MAX_SECONDS)
        return pause


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally (escape character \\)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def get(conn: Connection, task_id: int) -> Task | None:
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
    return None if row is None else Task.from_row(row)


# -- summaries and clipped values: what a page polled every second may read --------------------------------

CLIPPED_COLUMNS = (tasks.c.args, tasks.c.kwargs, tasks.c.result)  # JSON of the application's, any size
LARGE_COLUMNS = frozenset(column.name for column in (*CLIPPED_COLUMNS, tasks.c.error, tasks.c.error_log))
ERROR_END_CHARS = 500  # of an error (up to ERROR_TEXT_LIMIT), the head and the tail a headline is cut from


def _summary_columns() -> list[Any]:
    error_size = func.length(tasks.c.error)
    return [
        *(column for column in tasks.c if column.name not in LARGE_COLUMNS),
        *(JsonBytes(column).label(f"{column.name}_size") for column in CLIPPED_COLUMNS),
        func.substr(tasks.c.error, 1, ERROR_END_CHARS).label("error_head"),
        case(
            (error_size > ERROR_END_CHARS, func.substr(tasks.c.error, error_size - (ERROR_END_CHARS - 1))),
            else_=null(),
        ).label("error_tail"),
    ]


SUMMARY_COLUMNS = _summary_columns()


def _summary_from_row(row: Mapping[Any, Any]) -> TaskSummary:
    head, tail = row["error_head"], row["error_tail"]
    # The headline is a traceback's last line (in the tail) or any other error's first (in the head).
    text = head if tail is None else f"{head}\n{tail}"
    return TaskSummary.from_row({**row, "error_line": error_headline(text)})


def get_clipped(conn: Connection, task_id: int, max_bytes: int) -> tuple[Task, dict[str, ClippedValue]] | None:
    """The task, with each of args, kwargs and result whose JSON is longer than `max_bytes` left out of
    it (the Task holds [], {} or None there) and given instead as its size and first `max_bytes`
    characters. The database measures and cuts them: a 50 MB result never reaches Python. Two reads, so
    each value is scanned once for its size and once more only if it is cut (in one statement the size's
    expression ran once per use: 1.2-1.5 s for a 50 MB result on PostgreSQL here, 0.4 s in two reads)."""
    sizes_query = select(*(JsonBytes(column).label(column.name) for column in CLIPPED_COLUMNS))
    sizes = conn.execute(sizes_query.where(tasks.c.id == task_id)).mappings().first()
    if sizes is None:
        return None
    large = [column for column in CLIPPED_COLUMNS if (sizes[column.name] or 0) > max_bytes]
    columns: list[Any] = [column for column in tasks.c if column not in large]
    columns += [func.substr(cast(column, Text), 1, max_bytes).label(f"{column.name}_head") for column in large]
    row = conn.execute(select(*columns).where(tasks.c.id == task_id)).mappings().first()
    if row is None:  # deleted between the two reads
        return None
    clipped = {column.name: ClippedValue(int(sizes[column.name]), row[f"{column.name}_head"]) for column in large}
    return Task.from_row({**row, **dict.fromkeys(clipped)}), clipped


def count(conn: Connection, where: TaskFilter) -> int:
    """How many tasks match (the dashboard shows it before a bulk action). Reads every matching row's
    index entry: fast with a status, name or queue filter, a scan for text searches."""
    names = _names_for(conn, where)
    query = select(func.count()).select_from(tasks).where(*_conditions(where, None, names))
    if names is not None:
        query = query.where(tasks.c.name.in_(names))
    return int(conn.execute(query).scalar_one())


def page(
    conn: Connection,
    where: TaskFilter,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
    statuses: Sequence[Status | str] | None = None,
) -> TaskPage[Task]:
    """One page of the tasks matching `where`, newest first, by keyset: `before_id` gives the page of
    older rows, `after_id` the page of newer ones (after_id=0: the oldest page). Never OFFSET, so
    the last page of a million rows costs what the first does.

    A name substring is resolved to the task names it matches (known_names) and each name is read
    through ix_tasks_name_id, `limit` rows at most per name, merged here; without a rollup yet, or
    for text searches (error, arguments), rows are walked by id and filtered."""
    return _page(conn, [tasks], Task.from_row, where, before_id, after_id, limit, statuses)


def summaries(
    conn: Connection,
    where: TaskFilter,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
    statuses: Sequence[Status | str] | None = None,
) -> TaskPage[TaskSummary]:
    """`page`, of summaries: the large values' sizes and the error's headline instead of the values."""
    return _page(conn, SUMMARY_COLUMNS, _summary_from_row, where, before_id, after_id, limit, statuses)


def _page(
    conn: Connection,
    columns: Sequence[Any],
    build: Callable[[Mapping[Any, Any]], PageItem],
    where: TaskFilter,
    before_id: int | None,
    after_id: int | None,
    limit: int,
    statuses: Sequence[Status | str] | None,
) -> TaskPage[PageItem]:
    ascending = after_id is not None and before_id is None
    names = _names_for(conn, where)
    conditions = _conditions(where, statuses, names)
    if ascending:
        conditions.append(tasks.c.id > after_id)
    elif before_id is not None:
        conditions.append(tasks.c.id < before_id)
    base = select(*columns).where(*conditions).order_by(tasks.c.id.asc() if ascending else tasks.c.id.desc())
    base = base.limit(limit + 1)
    queries = [base] if names is None else [base.where(tasks.c.name == name) for name in names]
    rows = [row for query in queries for row in conn.execute(query).mappings().all()]
    rows.sort(key=lambda row: row["id"], reverse=not ascending)
    more = len(rows) > limit
    found = [build(row) for row in rows[:limit]]
    if not found:
        return TaskPage([], None, None)
    if ascending:
        found.reverse()
        # after_id > 0 came from an older page, so older rows exist; after_id = 0 is the oldest page.
        return TaskPage(found, found[-1].id if after_id else None, found[0].id if more else None)
    return TaskPage(found, found[-1].id if more else None, found[0].id if before_id is not None else None)


def _conditions(where: TaskFilter, statuses: Sequence[Status | str] | None, names: list[str] | None) -> list[Any]:
    conditions: list[Any] = []
    if where.name_contains and names is None:
        conditions.append(func.lower(tasks.c.name).like(_like(where.name_contains.lower()), escape="\\"))
    wanted = (where.status,) if where.status is not None else statuses
    if wanted is not None:
        conditions.append(_status_is(*wanted, listing=True))
    if where.name is not None:
        conditions.append(tasks.c.name == where.name)
    if where.queue is not None:
        conditions.append(tasks.c.queue == where.queue)
    if where.parent_id is not None:
        conditions.append(tasks.c.parent_id == where.parent_id)
    if where.error_contains:
        conditions.append(tasks.c.error.like(_like(where.error_contains), escape="\\"))
    if where.args_contains:
        conditions.append(_args_contain(where.args_contains))
    return conditions


def _args_contain(text: str) -> ColumnElement[bool]:
    """`text` inside the JSON text of args or kwargs, spelt as JSON spells it inside a string: a quote
    or a backslash in `text` matches one in a value (not every escaped quote), and a non-ASCII word
    matches whether the JSON was written with \\u escapes (json.dumps' default) or as UTF-8."""
    spellings = dict.fromkeys(json.dumps(text, ensure_ascii=escaped)[1:-1] for escaped in (True, False))
    return or_(
        *(
            cast(column, Text).like(_like(spelling), escape="\\")
            for column in (tasks.c.args, tasks.c.kwargs)
            for spelling in spellings
        )
    )


def _names_for(conn: Connection, where: TaskFilter) -> list[str] | None:
    """The task names a name substring stands for (None: no substring, or names unknown -> LIKE)."""
    if not where.name_contains:
        return None
    known = known_names(conn)
    needle = where.name_contains.lower()
    if known is None:
        return None
    matches = [name for name in known if needle in name.lower()]
    return None if len(matches) > MAX_NAME_MATCHES else matches


def children_results(conn: Connection, parent_id: int) -> list[Task]:
    """Every child of `parent_id`, oldest first (continuations read their inputs here)."""
    query = select(tasks).where(tasks.c.parent_id == parent_id).order_by(tasks.c.id)
    return [Task.from_row(row) for row in conn.execute(query).mappings().all()]


def children_counts(conn: Connection, parent_id: int) -> dict[str, int]:
    query = select(tasks.c.status, func.count()).where(tasks.c.parent_id == parent_id).group_by(tasks.c.status)
    counts = {status.value: 0 for status in Status}
    counts.update({row[0]: row[1] for row in conn.execute(query).all()})
    return counts


def next_run_after(conn: Connection, queues: Sequence[str] | None = None) -> datetime | None:
    """When the earliest pending task becomes ready (lets an idle worker sleep exactly that long)."""
    query = select(func.min(tasks.c.run_after)).where(_status_is(Status.PENDING))
    if queues:
        query = query.where(tasks.c.queue.in_(list(queues)))
    value = conn.execute(query).scalar_one_or_none()
    return None if value is None else as_utc(value)


# -- finding tasks the way a web app remembers them: by dedup key, or "what is still running" -----------


def latest_by_dedup_key(conn: Connection, dedup_key: str) -> Task | None:
    """The newest task enqueued with `dedup_key`, active or finished (a new web session finds the
    job its user started earlier). One probe of ix_tasks_dedup_key, however many rows the table holds;
    the IS NOT NULL term is the partial index's own condition, spelled out for the planners."""
    query = (
        select(tasks)
        .where(tasks.c.dedup_key == dedup_key, tasks.c.dedup_key.is_not(None))
        .order_by(tasks.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else Task.from_row(row)


def active(conn: Connection, *, names: Sequence[str] | None = None, limit: int = 50) -> list[Task]:
    """Pending, running and waiting tasks, oldest first; only those called one of `names` if given."""

    def part(status: ColumnElement[bool]) -> Select[Any]:
        query = select(tasks).where(status)
        return query if names is None else query.where(tasks.c.name.in_(list(names)))

    rows = union_all(*active_parts(part)).subquery()
    # `id + 0`: ordered after the parts are read, so each part picks the index of its status rather than
    # walking the whole table in id order to avoid a sort (which SQLite prefers for a running-rows part).
    query = select(rows).order_by(rows.c.id + 0).limit(limit)
    return [Task.from_row(row) for row in conn.execute(query).mappings().all()]


def queue_counts(conn: Connection, *, now: datetime) -> dict[str, dict[str, int]]:
    """Tasks per queue and status, plus `delayed`: pending tasks whose run_after is still ahead (`taskq queues`)."""
    delayed = func.sum(case((tasks.c.run_after > now, 1), else_=0))
    query = select(tasks.c.queue, tasks.c.status, func.count(), delayed).group_by(tasks.c.queue, tasks.c.status)
    counts: dict[str, dict[str, int]] = {}
    for queue, status, n, later in conn.execute(query).all():
        row = counts.setdefault(queue, {**{s.value: 0 for s in Status}, "delayed": 0})
        row[status] = int(n)
        if status == PENDING:
            row["delayed"] = int(later or 0)
    return dict(sorted(counts.items()))
