"""taskq: a durable background task queue for Python (SQLite embedded, PostgreSQL to scale out).

The names below are imported on first use (PEP 562), not with the package: `python -m taskq worker`
starts its fork server before it pays for SQLAlchemy and the store (taskq/launch.py), and the fork
server's own `python -m taskq.forkserver` would otherwise import the supervisor's whole API first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.api import configure, default_store, open_store
    from taskq.context import TaskContext
    from taskq.lifecycle import Fail, Retry, RetryPolicy
    from taskq.model import (
        ClaimLimits,
        Enqueued,
        Status,
        Task,
        TaskFailed,
        TaskNotFinished,
        TaskqError,
        TaskRequest,
    )
    from taskq.registry import TaskSpec, task
    from taskq.store import Store

    __version__: str

_HOMES = {  # public name -> the module that defines it
    "configure": "taskq.api",
    "default_store": "taskq.api",
    "open_store": "taskq.api",
    "TaskContext": "taskq.context",
    "Fail": "taskq.lifecycle",
    "Retry": "taskq.lifecycle",
    "RetryPolicy": "taskq.lifecycle",
    "ClaimLimits": "taskq.model",
    "Enqueued": "taskq.model",
    "Status": "taskq.model",
    "Task": "taskq.model",
    "TaskFailed": "taskq.model",
    "TaskNotFinished": "taskq.model",
    "TaskqError": "taskq.model",
    "TaskRequest": "taskq.model",
    "TaskSpec": "taskq.registry",
    "task": "taskq.registry",
    "Store": "taskq.store",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from taskq.distribution import version

        value: Any = version()  # the installed distribution's (importlib.metadata); "unknown" in a bare checkout
    elif name in _HOMES:
        # taskq.api first, whatever the name: it wires the default store into the registry (what
        # `@task(...).enqueue` uses) and registers the built-in tasks, as `import taskq` always did.
        importlib.import_module("taskq.api")
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'taskq' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, "__version__"})


__all__ = [
    "ClaimLimits",
    "Enqueued",
    "Fail",
    "Retry",
    "RetryPolicy",
    "Status",
    "Store",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskNotFinished",
    "TaskRequest",
    "TaskSpec",
    "TaskqError",
    "configure",
    "default_store",
    "open_store",
    "task",
]
