"""procrastinate on the same PostgreSQL, in a private schema; two `procrastinate worker` processes."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import dbs, procs
from bench.peers import Peer

PREFILL_BATCH = 1_000


class ProcrastinatePeer(Peer):
    name = "procrastinate"
    label = "procrastinate (PostgreSQL)"

    def __init__(self) -> None:
        self._schema: Any = None
        self._opened: Any = None

    def missing(self) -> str | None:
        if importlib.util.find_spec("procrastinate") is None:
            return "procrastinate is not installed (see bench/requirements.txt)"
        return dbs.postgres_available()

    def setup(self, workdir: Path) -> None:
        """One private schema for the whole run (the app binds its connection string at import);
        each measurement starts from emptied tables."""
        import psycopg

        if self._schema is None:
            self._schema = dbs.pg_schema("bench_procrastinate", migrated=False)
            self.conninfo = self._schema.__enter__().conninfo
            os.environ["BENCH_PG_CONNINFO"] = self.conninfo
            from bench.peers import procrastinate_app

            self.module = procrastinate_app
            self._opened = self.module.app.open()
            self._opened.__enter__()
            self.module.app.schema_manager.apply_schema()
            self.connection = psycopg.connect(self.conninfo, autocommit=True)
            self.connection.execute("CREATE TABLE bench_stamps (job_id bigint PRIMARY KEY, started double precision)")
        self.connection.execute("TRUNCATE procrastinate_jobs, bench_stamps CASCADE")

    def close(self) -> None:
        if self._opened is not None:
            with contextlib.suppress(Exception):
                self._opened.__exit__(None, None, None)
                self.connection.close()
            self._opened = None
        if self._schema is not None:
            with contextlib.suppress(Exception):
                self._schema.__exit__(None, None, None)
            self._schema = None

    def enqueue_noops(self, count: int) -> None:
        for _ in range(count):
            self.module.noop.defer()

    def prefill_noops(self, count: int) -> None:
        """Untimed: procrastinate's batch_defer, 1,000 jobs per statement (10,000 defers one by one take
        longer than the drain they feed)."""
        for start in range(0, count, PREFILL_BATCH):
            self.module.noop.batch_defer(*({} for _ in range(min(PREFILL_BATCH, count - start))))
        self.connection.execute("ANALYZE procrastinate_jobs")  # see TaskqPeer.prefill

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        arguments = [
            "-m",
            "procrastinate",
            "--app",
            "bench.peers.procrastinate_app.app",
            "worker",
            "--concurrency",
            "1",
        ]
        return [procs.start(arguments, log, {"BENCH_PG_CONNINFO": self.conninfo}) for _ in range(workers)]

    def finished(self) -> int:
        query = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        return self.connection.execute(query).fetchone()[0]

    def enqueue_stamp(self) -> Any:
        return self.module.stamp.defer()

    def stamp_of(self, handle: Any, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            row = self.connection.execute("SELECT started FROM bench_stamps WHERE job_id = %s", (handle,)).fetchone()
            if row is not None:
                return float(row[0])
            if time.monotonic() > deadline:
                raise TimeoutError(f"procrastinate job {handle} did not start in {timeout:.0f} s")
            time.sleep(0.002)


PEER = ProcrastinatePeer()
