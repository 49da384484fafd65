"""Watch settings.yaml for edits with watchdog. Only records that a reload is wanted; the pool reloads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

DEBOUNCE_SECONDS = (
    0.1  # editors write a file in bursts (truncate, write, rename) within milliseconds; reload once after the last
)


class SettingsWatcher(FileSystemEventHandler):
    """Watches the file's directory, not the file: editors that save by writing a temporary file and
    renaming it over the original replace the inode, which a watch on the file itself would lose."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self._changed_at: float | None = None
        self._lock = threading.Lock()
        self._observer = Observer()
        self._observer.schedule(self, str(self.path.parent), recursive=False)

    def start(self) -> None:
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):  # our own reads of the file
            return
        touched = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if str(self.path) in touched:
            with self._lock:
                self._changed_at = time.monotonic()

    def reload_due(self) -> bool:
        """True once per burst of edits, DEBOUNCE_SECONDS after the last one."""
        with self._lock:
            if self._changed_at is None or time.monotonic() - self._changed_at < DEBOUNCE_SECONDS:
                return False
            self._changed_at = None
            return True
