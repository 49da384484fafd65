"""Results and arguments read back exactly as written, on SQLite and PostgreSQL: the numbers SQLite's
NUMERIC affinity used to convert (a JSON column) and a few neighbours, as bare values and nested."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from taskq.clock import utc_now
from taskq.model import TaskRequest
from taskq.store import Store

NUMBERS: list[Any] = [2**64, -(2**63) - 1, 2**63, 1.0, 1e16, -0.0, 0.1, 1.5e300, 2**53 + 1, 10**40, "12", "1.0"]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down (1.0 == 1 in Python, but they are different results)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return repr(a) == repr(b)  # repr tells -0.0 from 0.0


@pytest.mark.parametrize("value", NUMBERS, ids=repr)
def test_a_bare_number_result_reads_back_exactly(store: Store, value: Any) -> None:
    task_id = store.enqueue("a.job").id
    claimed = store.claim("w", queues=["default"])
    assert claimed is not None and claimed.id == task_id
    store.complete(task_id, value, worker_id="w", attempt=claimed.attempts, started_at=utc_now())
    got = store.require(task_id).result
    assert same(got, value), f"{value!r} came back as {got!r}"


def test_arguments_and_nested_results_read_back_exactly_through_every_path(store: Store) -> None:
    kwargs = {"n": NUMBERS, "big": 2**64}
    single = store.enqueue("a.job", NUMBERS, kwargs).id
    (batched,) = store.enqueue_many([TaskRequest("a.job", NUMBERS, kwargs)])
    for task_id in (single, batched.id):
        task = store.require(task_id)
        assert same(task.args, NUMBERS) and same(task.kwargs, kwargs)
    claimed = store.claim("w", queues=["default"])  # the claim's own RETURNING path
    assert claimed is not None and same(claimed.args, NUMBERS) and same(claimed.kwargs, kwargs)
    store.complete(claimed.id, {"r": NUMBERS}, worker_id="w", attempt=claimed.attempts, started_at=utc_now())
    assert same(store.require(claimed.id).result, {"r": NUMBERS})


def test_postgresql_keeps_the_text_as_written_where_jsonb_would_not(store: Store) -> None:
    """The columns are json, not jsonb: jsonb stores numbers as numeric and rewrites 1e16 (it keeps 1.0)."""
    if store.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's json and jsonb types")
    with store.engine.connect() as connection:
        types = connection.execute(
            text(
                "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'tasks' AND column_name IN ('args', 'kwargs', 'result', 'error_log')"
            )
        ).scalars()
        assert list(types) == ["json"]
        rewritten = connection.execute(text("SELECT '1e16'::jsonb::text, '1.0'::jsonb::text, '1e16'::json::text")).one()
    assert tuple(rewritten) == ("10000000000000000", "1.0", "1e16")
