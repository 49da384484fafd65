"""How much work each figure does, in quick and full mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    runs: int  # repetitions per figure (median, min, max over these)
    single: int  # tasks enqueued one at a time
    batches: int  # batches of 1,000 for enqueue_many
    claims: int  # claim + complete cycles
    finished_rows: int  # finished rows in the table for the "claim cost is flat" figures
    drain: int  # no-op tasks drained by a worker pool
    cpu_tasks: int  # tasks of ~CPU_TASK_MS of pure-Python work, drained by 1 and by 2 workers
    sleep_tasks: int  # tasks sleeping SLEEP_TASK_MS (I/O-like), drained by 1 and by 4 workers (issue 21)
    latency_samples: int  # enqueues into an idle pool
    fanout: int  # children spawned by one task
    progress_tasks: int  # tasks making 100 progress calls each
    idle_seconds: float  # window of the idle CPU figure
    soak: int  # tasks run before the RSS figure (0: measure RSS after the 2-worker drain)


QUICK = Sizes(
    runs=3,
    single=2_000,
    batches=20,
    claims=2_000,
    finished_rows=200_000,
    drain=10_000,  # issue 11: start-up (~0.6 s) must not dominate the drain figures
    cpu_tasks=2_000,
    sleep_tasks=4_000,
    latency_samples=50,
    fanout=2_000,
    progress_tasks=200,
    idle_seconds=3.0,
    soak=0,
)
FULL = Sizes(
    runs=3,
    single=10_000,
    batches=100,
    claims=10_000,
    finished_rows=1_000_000,
    drain=10_000,
    cpu_tasks=2_000,
    sleep_tasks=4_000,
    latency_samples=50,
    fanout=10_000,
    progress_tasks=1_000,
    idle_seconds=10.0,
    soak=100_000,
)
