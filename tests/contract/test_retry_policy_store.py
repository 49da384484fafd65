"""Per-task retry policies in the store, on SQLite and PostgreSQL: lease recovery applies the policy of the
task it recovers. (The pure decision: tests/unit/test_retry_policy.py; real pools: tests/process/
test_retry_policy_pool.py.)"""

from __future__ import annotations

from datetime import timedelta

import taskq
from taskq.clock import utc_now
from taskq.store import Store


def test_lease_recovery_applies_the_policy_of_the_task_it_recovers(store: Store) -> None:
    @taskq.task(name="test.recovered_with_policy", retry_backoff=100)
    def recovered() -> None: ...

    task_id = store.enqueue("test.recovered_with_policy").id
    now = utc_now()
    claimed = store.claim("w", now=now, lease_seconds=1)
    assert claimed is not None and store.mark_started(task_id, worker_id="w", started_at=now)
    assert store.recover_expired(now=now + timedelta(seconds=5)) == 1
    assert store.require(task_id).run_after == now + timedelta(seconds=105)
