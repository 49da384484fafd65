"""taskq: a durable background task queue for Python (SQLite embedded, PostgreSQL to scale out)."""

from taskq import builtin_tasks as _builtin_tasks  # noqa: F401  (registers taskq.echo and taskq.sleep)
from taskq.api import configure, default_store, open_store
from taskq.context import TaskContext
from taskq.distribution import version as _version
from taskq.lifecycle import Fail, Retry, RetryPolicy
from taskq.model import ClaimLimits, Enqueued, Status, Task, TaskFailed, TaskNotFinished, TaskqError, TaskRequest
from taskq.registry import TaskSpec, task
from taskq.store import Store

__version__ = _version()  # the installed distribution's (importlib.metadata); "unknown" in a bare checkout

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
