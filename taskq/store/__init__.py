"""The store: the only code that writes SQL.

`Store` (facade.py) owns the transactions: each of its methods opens one and calls plain functions over
its connection from the topic modules, which import what they call from each other explicitly:

    base.py         the shared vocabulary: status predicates, owner guard, StoreContext
    hot.py          the SQLite driver path (plain enqueues, finish_and_claim)
    enqueue.py      request -> row values, deduplicated inserts
    workflow.py     parents and children, continuations: what every finished task runs
    claim.py        claims: the claim statements, concurrency caps, a worker's finish-and-claim round
    outcomes.py     results, failures, leases, progress, a dead worker's tasks
    transitions.py  operator actions: cancel, retry, purge
    queries.py      read-only: by id, pages, counts, children, lookups
    metrics.py      status counts, queue depth, rollups and charts
    workers.py      worker heartbeats
    schedules.py    schedule state rows and one scheduler step
"""

from taskq.store.base import DEFAULT_LEASE_SECONDS, NO_TASKS, DefaultsLookup, StoreContext, TaskCatalog, TaskDefaults
from taskq.store.facade import Store

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "NO_TASKS",
    "DefaultsLookup",
    "Store",
    "StoreContext",
    "TaskCatalog",
    "TaskDefaults",
]
