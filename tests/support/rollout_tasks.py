"""A task module only some pools import (`--import rollout_tasks`): the task a rolling deploy adds, or the
module a badly deployed host lacks. Each run is a line of the pool's run log, as in pool_tasks.py."""

from __future__ import annotations

from pool_tasks import record

import taskq


@taskq.task(name="rollout.new")
def new(n: int) -> int:
    record("ran", n)
    return n
