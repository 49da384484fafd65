"""Huey with SqliteHuey and `huey_consumer -k process -w N`."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from bench import procs
from bench.peers import Peer


class HueyPeer(Peer):
    name = "huey"
    label = "Huey (SqliteHuey)"
    counterpart = "sqlite"

    def missing(self) -> str | None:
        return None if importlib.util.find_spec("huey") else "huey is not installed (see bench/requirements.txt)"

    def setup(self, workdir: Path) -> None:
        self.db = workdir / "huey.db"
        os.environ["BENCH_HUEY_DB"] = str(self.db)  # read once, when huey_app is first imported
        from bench.peers import huey_app

        self.app = huey_app
        self.app.huey.flush()

    def storage_settings(self) -> dict[str, object]:
        return self.app.storage_pragmas(self.app.huey.storage.conn)

    def enqueue_noops(self, count: int) -> None:
        for _ in range(count):
            self.app.noop()

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        arguments = ["-m", "huey.bin.huey_consumer", "bench.peers.huey_app.huey", "-k", "process", "-w", str(workers)]
        return [procs.start(arguments, log, {"BENCH_HUEY_DB": str(self.db)})]

    def finished(self) -> int:
        connection = sqlite3.connect(self.db, timeout=5)
        try:
            return connection.execute("SELECT count(*) FROM kv WHERE queue = 'bench'").fetchone()[0]
        finally:
            connection.close()

    def enqueue_stamp(self) -> Any:
        return self.app.stamp()

    def stamp_of(self, handle: Any, timeout: float) -> float:
        return float(handle.get(blocking=True, timeout=timeout, backoff=1.0, max_delay=0.005))


PEER = HueyPeer()
