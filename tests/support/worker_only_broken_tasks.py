"""A task module that imports in the supervisor but not in a worker forked by the fork server (it renames
itself taskq-worker-N first): each worker raises out of its start-up, as a module broken on a worker
host would, so a test sees how the crash is logged (`worker_crashed`)."""

from __future__ import annotations

from pathlib import Path

if Path("/proc/self/comm").read_text().startswith("taskq-worker"):
    raise RuntimeError("this module does not import in a worker")
