"""Run with a scratch copy of taskq first on the path, in which two statuses were added (tests/process/
test_new_status.py): `paused` (active, of class waiting) and `expired` (finished, of class failure). Checks
that every place that lists, groups or counts statuses includes them, then prints "ok".

The database is made from the scratch schema.py and stamped current, as the migration a new status comes
with would leave it (tests/contract/test_migrations.py holds migrations to schema.py)."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine, insert, text, update

import taskq
from taskq import engine as taskq_engine
from taskq.clock import utc_now
from taskq.model import STATUS_CLASSES, Status
from taskq.schema import rollup_state, tasks
from taskq.store import Store

SCRATCH = Path(sys.argv[1])
DATABASE = sys.argv[2]
assert Path(taskq.__file__).is_relative_to(SCRATCH), taskq.__file__  # the scratch copy, not the checkout
PAUSED, EXPIRED = Status("paused"), Status("expired")


def make_database() -> None:
    from taskq.schema import metadata

    engine = create_engine(DATABASE)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": taskq_engine.SCHEMA_REVISION})
        connection.execute(insert(rollup_state).values(id=1, generation=0, counts_stale=False))  # as 0005 seeds it
    engine.dispose()


def check_cli() -> None:
    from taskq.cli import main

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--db", DATABASE, *args], catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
        return result.output

    assert "paused" in run("cancel", "--help")  # a choice of `cancel --all --status`
    assert "expired" in run("retry", "--help")
    assert "expired" in run("list", "--help")
    queues = run("queues")
    assert "paused" in queues and "expired" in queues, queues  # columns of the table
    counts = json.loads(run("queues", "--json"))["mail"]
    assert counts["paused"] == 1 and counts["expired"] == 1, counts
    assert json.loads(run("stats", "--json"))["expired"] == 1
    # lifecycle.py lets paused tasks be cancelled
    assert "cancelled 1 tasks" in run("cancel", "--all", "--status", "paused", "--yes")


def check_rollup_and_metrics(store: Store) -> None:
    from taskq.store.metrics import RUN_OUTCOMES
    from taskq.web.metrics import render

    assert store.rollup(now=utc_now() + timedelta(minutes=1)) >= 1
    (tally,) = [t for (queue, _name), t in store.metric_totals().items() if queue == "mail"]
    assert tally.expired == 1 and tally.runtime_count == 1  # a failure ran to an end: its run time counts
    assert "expired" in RUN_OUTCOMES  # a series of the throughput chart
    body = render(store)[0].decode()
    assert 'taskq_tasks_expired_total{name="mail.send",queue="mail"} 1.0' in body, body


def check_dashboard() -> None:
    from taskq.web import pages

    lifecycle = json.loads(pages.LIFECYCLE)
    assert lifecycle["classes"]["paused"] == "waiting" and lifecycle["classes"]["expired"] == "failure"
    assert "paused" in lifecycle["active"] and "paused" in lifecycle["cancellable"]
    assert "expired" in lifecycle["retryable"] and "expired" not in lifecycle["active"]
    static = Path(pages.__file__).parent / "static"
    script, css = (static / "dashboard.js").read_text(), (static / "dashboard.css").read_text()
    named = [status.value for status in Status if re.search(rf"[\"'`]{status.value}[\"'`]", script)]
    assert named == [], f"dashboard.js names statuses: {named}"
    coloured = f'[data-status-class="{STATUS_CLASSES[EXPIRED]}"]'
    assert coloured in css, f"no colour for {coloured}"


def check_django() -> None:
    try:
        from taskq.contrib.django.results import STATUSES
    except ImportError:  # Django not installed here: nothing of it to check
        return
    assert PAUSED in STATUSES and EXPIRED in STATUSES


def main() -> None:
    make_database()
    store = taskq.open_store(DATABASE)
    try:
        now = utc_now()
        paused = store.enqueue("mail.send", queue="mail").id
        expired = store.enqueue("mail.send", queue="mail").id
        # No event of the store enters the new statuses (those are behaviour, written with the statuses'
        # events): put the rows there directly, as such an event would.
        with store.engine.begin() as connection:
            connection.execute(update(tasks).where(tasks.c.id == paused).values(status="paused"))
            connection.execute(
                update(tasks)
                .where(tasks.c.id == expired)
                .values(status="expired", started_at=now - timedelta(seconds=2), finished_at=now)
            )
        check_rollup_and_metrics(store)
        check_cli()
        check_dashboard()
        check_django()
    finally:
        store.dispose()
    print("ok")


if __name__ == "__main__":
    main()
