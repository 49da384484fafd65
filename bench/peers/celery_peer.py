"""Celery with kombu's SQLAlchemy transport on SQLite (`celery worker -P prefork -c N`)."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.peers import Peer


class CeleryPeer(Peer):
    name = "celery"
    label = "Celery (sqla+sqlite)"
    # The SQLAlchemy transport polls once a second and commits with SQLite's default fsync: ~50 tasks/s.
    max_enqueue = 300
    max_drain = 1_000
    max_latency_samples = 10

    def missing(self) -> str | None:
        for package in ("celery", "kombu", "sqlalchemy"):
            if importlib.util.find_spec(package) is None:
                return f"{package} is not installed (see bench/requirements.txt)"
        return None

    def setup(self, workdir: Path) -> None:
        self.directory = workdir / "celery"
        self.directory.mkdir(exist_ok=True)
        os.environ["BENCH_CELERY_DIR"] = str(self.directory)  # read once, when celery_app is first imported
        from bench.peers import celery_app

        self.app = celery_app
        self.results_db = self.directory / "celery-results.db"
        with self.app.app.connection_for_write() as connection:
            connection.default_channel.queue_purge("celery")
        self._clear_results()

    def _clear_results(self) -> None:
        if self.results_db.exists():
            connection = sqlite3.connect(self.results_db, timeout=5)
            with connection:
                connection.execute("DELETE FROM celery_taskmeta")
            connection.close()

    def enqueue_noops(self, count: int) -> None:
        for _ in range(count):
            self.app.noop.delay()

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        arguments = [
            "-m",
            "celery",
            "-A",
            "bench.peers.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(workers),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]
        return [procs.start(arguments, log, {"BENCH_CELERY_DIR": str(self.directory)})]

    def finished(self) -> int:
        if not self.results_db.exists():
            return 0
        connection = sqlite3.connect(self.results_db, timeout=5)
        try:
            return connection.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0
        finally:
            connection.close()

    def enqueue_stamp(self) -> Any:
        return self.app.stamp.delay()

    def stamp_of(self, handle: Any, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not handle.ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Celery task {handle.id} did not finish in {timeout:.0f} s")
            time.sleep(0.005)
        return float(handle.get())


PEER = CeleryPeer()
