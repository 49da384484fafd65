"""How an idle pool learns that the database may hold new work, without querying it in a loop: the
supervisor's wake thread waits on one of these and then nudges its idle workers through their pipes.

SQLite: every commit in WAL mode writes the database's -wal file, so a watch on the database's directory
hears each commit. PostgreSQL: enqueues NOTIFY inside their transaction (taskq/dialect.py), and a LISTEN
connection hears them once committed. Changes neither can see are covered by the workers' fallback poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from taskq.dialect import NOTIFY_CHANNEL
from taskq.events import log_event

log = logging.getLogger("taskq.wake")


class WakeSignal(Protocol):
    """Tells an idle pool that the database may hold new work, without querying it in a loop."""

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True as soon as something may have changed."""
        ...

    def close(self) -> None: ...


def wake_signal(engine: Engine) -> WakeSignal:
    """The transport for this engine's database."""
    if engine.dialect.name == "postgresql":
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresNotifications(url)
    return SqliteFileChange(Path(engine.url.database or "").resolve())


class SqliteFileChange(FileSystemEventHandler):
    """watchdog on the database's directory, not the file: the -wal file comes and goes. The same stack
    watches settings.yaml (taskq/settings_watch.py); it replaced a ctypes inotify reader at no measured
    cost (idle pickup p50 2.56 ms against 2.47 ms, idle CPU 0.6 % of a core for both), and brings the
    platform's own watcher (or watchdog's polling) where inotify is missing."""

    def __init__(self, database: Path) -> None:
        self._paths = {f"{database}-wal", str(database)}
        self._changed = threading.Event()
        self._observer = Observer()
        # The filter narrows the kernel's watch mask too: opens and reads of the database, which every
        # query makes, never wake the observer's thread.
        self._observer.schedule(
            self,
            str(database.parent),
            recursive=False,
            event_filter=[FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileCreatedEvent],
        )
        self._observer.daemon = True
        self._observer.start()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if str(event.src_path) in self._paths or str(getattr(event, "dest_path", "") or "") in self._paths:
            self._changed.set()

    def wait(self, timeout: float) -> bool:
        if not self._changed.wait(timeout):
            return False
        # Cleared before the caller nudges: a commit from here on sets it again and is not lost.
        self._changed.clear()
        return True

    def close(self) -> None:
        self._observer.stop()


class PostgresNotifications:
    """LISTEN on a dedicated autocommit connection; enqueue NOTIFYs inside its transaction, so a
    notification arrives only once the task is committed. Reconnects with backoff after a loss."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: Any = None
        self._retry_at = 0.0
        self._backoff = 0.5

    def _connect(self) -> Any:
        import psycopg

        # TCP keepalives: a host or network that vanishes without closing the socket would otherwise leave
        # us listening on a dead connection forever (workers would fall back to polling, silently).
        connection = psycopg.connect(
            self._url, autocommit=True, keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
        )
        connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return connection

    def wait(self, timeout: float) -> bool:
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                time.sleep(min(timeout, self._retry_at - time.monotonic()))
                return False
            try:
                self._connection = self._connect()
                self._backoff = 0.5
            except Exception as error:
                log_event(log, logging.WARNING, "listen_failed", retry_in=self._backoff, error=str(error))
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, 10.0)
                return True  # we may have missed notifications: let workers look
        try:
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except Exception as error:
            log_event(log, logging.WARNING, "listen_lost", error=str(error))
            self.close()
            return True

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
