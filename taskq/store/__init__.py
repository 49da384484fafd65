"""The store: the only code that writes SQL. One class, split by topic into mixins that share
`StoreBase` (engine, dialect, transaction helpers)."""

from taskq.store.aio import AsyncOps
from taskq.store.base import DEFAULT_LEASE_SECONDS, DefaultsLookup, StoreBase, TaskDefaults
from taskq.store.enqueue import EnqueueOps
from taskq.store.lookup import LookupOps
from taskq.store.metrics import MetricsOps
from taskq.store.outcomes import OutcomeOps
from taskq.store.queries import QueryOps
from taskq.store.queue_counts import QueueCountOps
from taskq.store.schedules import ScheduleOps, ScheduleViewOps
from taskq.store.workers import WorkerOps
from taskq.store.workflow import WorkflowOps


class Store(
    EnqueueOps,
    OutcomeOps,
    WorkflowOps,
    QueryOps,
    MetricsOps,
    WorkerOps,
    LookupOps,
    ScheduleOps,
    ScheduleViewOps,
    QueueCountOps,
    AsyncOps,
    StoreBase,
):
    """Every named operation on the tasks table; see each mixin for its topic."""


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DefaultsLookup",
    "Store",
    "StoreBase",
    "TaskDefaults",
]
