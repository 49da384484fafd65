"""taskq itself, driven exactly like the peers: `python -m taskq worker --workers N` against SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

import bench.tasks  # noqa: F401  (as an app would: @task defaults such as then= apply at enqueue)
import taskq
from bench import dbs, procs
from bench.ceilings import BATCH_SIZE
from bench.peers import Peer
from taskq.schema import tasks

NOOP = "bench.tasks.noop"
SETTINGS = """# written by the benchmark: taskq's defaults, plus the benchmark's task module
imports: [bench.tasks]
"""


class TaskqPeer(Peer):
    def __init__(self, dialect: str = "sqlite", worker_options: Sequence[str] = ()) -> None:
        self.dialect = dialect
        self.name = "taskq" if dialect == "sqlite" else "taskq_pg"
        self.label = "taskq" if dialect == "sqlite" else "taskq/pg"
        self.worker_options = tuple(worker_options)
        self._schema: Any = None
        self.store: taskq.Store | None = None

    def missing(self) -> str | None:
        return dbs.postgres_available() if self.dialect == "postgresql" else None

    def setup(self, workdir: Path, url: str | None = None) -> None:
        """A fresh database, or `url` as it is (e.g. one already holding a million finished rows)."""
        self.workdir = workdir
        if url is None and self.dialect == "sqlite":
            _path, url = dbs.sqlite_taskq_db(workdir, "taskq-peer.db")
        elif url is None:
            self._schema = dbs.pg_schema("bench_taskq")
            url = self._schema.__enter__().url
        self.url = url
        self.store = taskq.open_store(url)
        self.settings = workdir / "taskq-bench-settings.yaml"
        self.settings.write_text(SETTINGS)
        # Completions are counted among tasks created from here on, so rows already present do not count.
        next_id = text("SELECT coalesce(max(id), 0) + 1 FROM tasks")
        self.first_id = self.store.read(lambda c: c.execute(next_id).scalar())

    def teardown(self) -> None:
        if self.store is not None:
            self.store.dispose()
            self.store = None
        if self._schema is not None:
            with contextlib.suppress(Exception):
                self._schema.__exit__(None, None, None)
            self._schema = None

    def storage_settings(self) -> dict[str, object]:
        if self.dialect != "sqlite":
            return {}

        def pragmas(connection: Any) -> dict[str, object]:
            read = connection.exec_driver_sql
            return {
                "journal_mode": read("PRAGMA journal_mode").scalar(),
                "synchronous": read("PRAGMA synchronous").scalar(),
            }

        return self.store.read(pragmas)

    def enqueue_noops(self, count: int) -> None:
        for _ in range(count):
            self.store.enqueue(NOOP)

    def prefill(self, name: str, count: int, args: Sequence[Any] = ()) -> None:
        for start in range(0, count, BATCH_SIZE):
            size = min(BATCH_SIZE, count - start)
            self.store.enqueue_many([taskq.TaskRequest(name, list(args)) for _ in range(size)])
        if self.dialect == "postgresql":
            # Planner statistics, as a database in use has them: each measurement starts from a new
            # schema or a truncated table that PostgreSQL believes empty, and a plan made for an empty
            # table slowed procrastinate's 10,000-job drain from ~210/s to ~130/s. Both peers get it.
            with self.store.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE tasks")

    def prefill_noops(self, count: int) -> None:
        self.prefill(NOOP, count)

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        return [self.start_pool(log, self.settings, workers)]

    def start_pool(self, log: Path, settings: Path, workers: int | None = None) -> subprocess.Popen:
        """The supervisor; without `workers`, the settings file decides how many (and may change it live)."""
        arguments = ["-m", "taskq", "worker", "--settings", str(settings), "--db", self.url]
        if workers is not None:
            arguments += ["--workers", str(workers)]
        return procs.start([*arguments, *self.worker_options], log)

    def count(self, status: str, name: str | None = None) -> int:
        query = "SELECT count(*) FROM tasks WHERE status = :status AND id >= :first"
        if name:
            query += " AND name = :name"
        params = {"status": status, "first": self.first_id, "name": name}
        return self.store.read(lambda c: c.execute(text(query), params).scalar())

    def work_span(self, name: str) -> float:
        """Seconds from the first task named `name` starting to the last one finishing, from the rows'
        started_at / finished_at: the drain once workers are up, without the pool's start-up."""
        query = select(func.min(tasks.c.started_at), func.max(tasks.c.finished_at)).where(
            tasks.c.name == name, tasks.c.id >= self.first_id
        )
        first, last = self.store.read(lambda c: c.execute(query).one())
        return (last - first).total_seconds()

    def finished(self) -> int:
        return self.count("completed")

    def enqueue_stamp(self) -> Any:
        return self.store.enqueue("bench.tasks.stamp").id

    def stamp_of(self, handle: Any, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.store.get(handle)
            if task is not None and task.status.value == "completed":
                return float(task.result)
            if task is not None and task.status.value in ("failed", "cancelled"):
                raise RuntimeError(f"stamp task {handle} {task.status.value}: {task.error}")
            time.sleep(0.002)
        raise TimeoutError(f"stamp task {handle} did not finish in {timeout:.0f} s")


PEER = TaskqPeer("sqlite")
