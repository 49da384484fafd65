"""The library entry points an application uses: open a store wired to the task registry."""

from __future__ import annotations

import threading

from taskq import builtin_tasks as _builtin_tasks  # noqa: F401  (registers taskq.echo and taskq.sleep)
from taskq import registry
from taskq.engine import open_engine
from taskq.store import Store

_default: Store | None = None
_default_lock = threading.Lock()


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """A Store on `url` (default: TASKQ_DATABASE_URL, else sqlite:///taskq.db), schema upgraded if needed;
    enqueue fills priority, retries, queue, timeout and continuation from the task's @task options, and
    checks the arguments against the signature of every task this process has imported."""
    return Store(open_engine(url, upgrade=upgrade), catalog=registry.CATALOG)


def default_store() -> Store:
    """One Store per process for `spec.enqueue(...)`; configure it with `configure(url)` or TASKQ_DATABASE_URL."""
    global _default
    with _default_lock:
        if _default is None:
            _default = open_store()  # TASKQ_DATABASE_URL, else the default
        return _default


registry.use_default_store(default_store)


def configure(url: str) -> Store:
    """Point the default store at `url` (call once at application start-up)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.dispose()
        _default = open_store(url)
        return _default
