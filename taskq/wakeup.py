"""How an idle pool learns that the database may hold new work, without querying it in a loop: the
supervisor's wake thread waits on one of these and then nudges its idle workers through their pipes.

SQLite: every commit in WAL mode writes the database's -wal file, so a watch on the database's directory
hears each commit. PostgreSQL: enqueues NOTIFY inside their transaction (taskq/dialect.py), and a LISTEN
connection hears them once committed. Changes neither can see are covered by the workers' fallback poll.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine

from taskq.dialect import NOTIFY_CHANNEL
from taskq.events import log_event

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

log = logging.getLogger("taskq.wake")

IN_Q_OVERFLOW = 0x4000  # the kernel's queue of events overflowed


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
    database = Path(engine.url.database or "").resolve()
    return SqliteInotify.open(database) or SqliteWatchdog(database)


class SqliteInotify:
    """inotify on the database's directory, read by the waiting thread itself: one read takes every event
    queued since the last, and the kernel merges a commit's repeated writes to the -wal file while they
    wait unread. A busy pool commits thousands of times a second; watchdog carried each of those events
    through three threads of its own (a third of the supervisor's CPU per task on a no-op drain), this
    costs a read per wait. Where inotify is missing, `SqliteWatchdog` does the same job."""

    # IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE: commits and checkpoints; opens and reads of the
    # database, which every query makes, are not in the mask.
    MASK = 0x2 | 0x8 | 0x80 | 0x100

    def __init__(self, database: Path, fd: int) -> None:
        self._names = {database.name.encode(), f"{database.name}-wal".encode()}
        self._fd = fd

    @classmethod
    def open(cls, database: Path) -> SqliteInotify | None:
        """The watch, or None where this system has no inotify."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, str(database.parent).encode(), cls.MASK) < 0:
            os.close(fd)
            return None
        return cls(database, fd)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return False
            if self._changed():
                return True

    def _changed(self) -> bool:
        """Whether the events queued now name the database or its -wal file (other files in the directory,
        a log file for one, do not count); reads them all."""
        changed = False
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._fd, 65536):
                offset = 0
                while not changed and offset < len(data):  # struct inotify_event: wd, mask, cookie, len, name
                    mask = int.from_bytes(data[offset + 4 : offset + 8], sys.byteorder)
                    length = int.from_bytes(data[offset + 12 : offset + 16], sys.byteorder)
                    name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                    changed = name in self._names or bool(mask & IN_Q_OVERFLOW)  # events lost: any may be ours
                    offset += 16 + length
        return changed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SqliteWatchdog:
    """watchdog on the database's directory, not the file: the -wal file comes and goes. Brings the
    platform's own watcher (or watchdog's polling) where inotify is missing."""

    def __init__(self, database: Path) -> None:
        from watchdog.events import (
            FileClosedEvent,
            FileCreatedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        self._paths = {f"{database}-wal", str(database)}
        self._changed = threading.Event()
        handler = FileSystemEventHandler()
        handler.on_any_event = self.on_any_event  # type: ignore[method-assign]
        self._observer = Observer()
        # The filter narrows the kernel's watch mask too: opens and reads of the database, which every
        # query makes, never wake the observer's thread.
        self._observer.schedule(
            handler,
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
