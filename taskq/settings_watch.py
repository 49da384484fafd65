"""Watch settings.yaml for edits with watchdog. Only records that a reload is wanted, and wakes the
pool's main loop when it is due; the pool reloads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # watchdog is imported when a watcher is made: a CLI command that loads settings never pays
    from watchdog.events import FileSystemEvent

# Editors write a file in bursts (truncate, write, rename) within milliseconds: reload once, after the last
# event. A close after writing or a rename onto the file means the writer is done, so a short settle is
# enough; a bare modification may be followed by more writes.
DEBOUNCE_SECONDS = 0.1
SETTLED_SECONDS = 0.01
TIMER_MARGIN_SECONDS = 0.002  # the wake-up lands just after the reload is due, never just before
_WRITER_DONE = ("closed", "moved")  # watchdog's event types for IN_CLOSE_WRITE and a rename


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is written or replaced (inode, size, modification time); None if absent."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class SettingsWatcher:
    """Watches the file's directory, not the file: editors that save by writing a temporary file and
    renaming it over the original replace the inode, which a watch on the file itself would lose.
    `wake` is called (from a timer thread) when a reload has become due, so the pool's loop need not
    poll for it; it must only signal, e.g. write a byte to a pipe."""

    def __init__(self, path: Path, wake: Callable[[], None] | None = None) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.path = path.resolve()
        self._wake = wake
        self._due_at: float | None = None
        self._lock = threading.Lock()
        handler = FileSystemEventHandler()
        handler.on_any_event = self.on_any_event  # type: ignore[method-assign]
        self._observer = Observer()
        self._observer.schedule(handler, str(self.path.parent), recursive=False)

    def start(self) -> None:
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):  # our own reads of the file
            return
        touched = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if str(self.path) not in touched:
            return
        delay = SETTLED_SECONDS if event.event_type in _WRITER_DONE else DEBOUNCE_SECONDS
        with self._lock:
            self._due_at = time.monotonic() + delay
        if self._wake is not None:
            timer = threading.Timer(delay + TIMER_MARGIN_SECONDS, self._wake)
            timer.daemon = True
            timer.start()

    def reload_due(self) -> bool:
        """True once per burst of edits, once its last event has settled."""
        with self._lock:
            if self._due_at is None or time.monotonic() < self._due_at:
                return False
            self._due_at = None
            return True
