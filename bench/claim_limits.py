"""`python -m bench.claim_limits [--runs 9] [--only sqlite,postgres] [--figures configured,index,capped]`: what
concurrency caps cost claims.

A worker's store loop in this process: `finish_and_claim` recording the previous batch and claiming the
next, draining N no-op tasks that have no cap, at batch sizes 1 and 32 (a worker's batch adapts between
them). Each figure is measured in pairs, without and with `limits=ClaimLimits(...)` configured (caps on
other task names and another queue, as a worker whose task modules declare some), in ABBA order, and the
ratio is taken pair by pair, so drift of the shared machine cancels out. Ratios are of CPU seconds per
task (this process, plus on PostgreSQL its server backends, read from /proc: the server runs here), which
other sessions' load on the shared cores moves much less than wall time; wall-clock tasks/s are shown
beside them. Then the same loop without caps, without and with an index on running rows by (name, queue):
the index the caps could have used to count a name's running rows with a seek, and what every claim and
outcome would pay to maintain it (taskq does not create it: caps count over ix_tasks_lease instead).
Last, for reference, draining tasks that are all capped (with a cap that never binds), which takes the
counting path on every claim. Prints Markdown tables.

On PostgreSQL, `--plan-cache-mode` (default force_custom_plan) is set for the benchmark's connections: with
the server's default (auto), psycopg's prepared claim statements flip between generic and custom plans
depending on table statistics, and at batch 32 the plain claim ran at 4k/s where the capped variant ran at
12k/s in one run, and the other way round in another, which says nothing about the caps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import taskq
from bench import dbs
from taskq.clock import utc_now
from taskq.model import ClaimLimits, Completion
from taskq.store import Store

WORKER = "bench-worker"
UNCAPPED = "bench.tasks.noop"
CAPPED = "bench.capped"
# Caps as a worker would have them: on other task names and on a queue the drained tasks are not in.
CONFIGURED = ClaimLimits(by_name={CAPPED: 2, "bench.other": 5}, by_queue={"reports": 3})
NEVER_BINDING = ClaimLimits(by_name={CAPPED: 1_000_000})
BATCHES = (1, 32)
TASKS = {"sqlite": {1: 3_000, 32: 12_000}, "postgresql": {1: 1_000, 32: 4_000}}  # per sample
APPLICATION_NAME = "taskq-bench-claim-limits"  # finds this benchmark's PostgreSQL backends
TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
CREATE_INDEX = "CREATE INDEX IF NOT EXISTS bench_running_names ON tasks (name, queue) WHERE status = 'running'"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class CpuClock:
    """CPU seconds of this process, plus those of its PostgreSQL server backends when there are any."""

    def __init__(self, url: str, application_name: str = APPLICATION_NAME) -> None:
        self.admin = create_engine(url) if url.startswith("postgresql") else None
        self.application_name = application_name

    def __call__(self) -> float:
        return time.process_time() + sum(self.backend_ticks().values()) * TICK_SECONDS

    def backend_ticks(self) -> dict[int, int]:
        """CPU clock ticks (utime + stime) of each server backend whose connection has the application name."""
        if self.admin is None:
            return {}
        with self.admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": self.application_name},
            ).scalars()
            ticks = {}
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # a backend that just exited
                    continue
                ticks[pid] = int(fields[11]) + int(fields[12])
            return ticks

    def dispose(self) -> None:
        if self.admin is not None:
            self.admin.dispose()


def drain(
    store: Store, cpu: CpuClock, name: str, count: int, batch: int, limits: ClaimLimits | None
) -> tuple[float, float]:
    """Tasks/s (wall) and CPU seconds per task of the worker's loop over `count` fresh tasks (enqueued untimed)."""
    for start in range(0, count, 1_000):
        store.enqueue_many([taskq.TaskRequest(name) for _ in range(min(1_000, count - start))])
    done = 0
    finished: list[Completion] = []
    cpu_started = cpu()
    started = time.perf_counter()
    while True:
        _recorded, claimed = store.finish_and_claim(WORKER, finished, limit=batch, limits=limits)
        if not claimed:
            break
        done += len(claimed)
        now = utc_now()
        finished = [Completion(task.id, task.attempts, None, now, has_follow_up=False) for task in claimed]
    elapsed = time.perf_counter() - started
    cpu_seconds = cpu() - cpu_started
    if done != count:
        raise RuntimeError(f"claimed {done} of {count} tasks")
    return count / elapsed, cpu_seconds / count


Sample = tuple[float, float]  # tasks/s (wall), CPU seconds per task


def paired(runs: int, before: Callable[[], Sample], after: Callable[[], Sample]) -> str:
    """A Markdown row's figures, in ABBA order: median tasks/s of each, and the medians of the pair-by-pair
    ratios after / before of throughput by CPU (1 / CPU per task) and by wall clock."""
    firsts: list[Sample] = []
    seconds: list[Sample] = []
    for index in range(runs):
        if index % 2 == 0:
            firsts.append(before())
            seconds.append(after())
        else:
            seconds.append(after())
            firsts.append(before())
    by_cpu = statistics.median(a[1] / b[1] for a, b in zip(firsts, seconds, strict=True))
    by_wall = statistics.median(b[0] / a[0] for a, b in zip(firsts, seconds, strict=True))
    wall_a = statistics.median(a[0] for a in firsts)
    wall_b = statistics.median(b[0] for b in seconds)
    return f"{wall_a:,.0f} | {wall_b:,.0f} | **{by_cpu:.3f}** | {by_wall:.3f}"


HEADER = " tasks/s | CPU ratio | wall ratio |\n|---|---:|---:|---:|---:|"


def set_index(store: Store, present: bool) -> None:
    """Create or drop the index, then checkpoint, so that its own writes are not charged to the sample."""
    sqlite = store.engine.dialect.name == "sqlite"
    with store.engine.connect() as conn:
        conn.execute(text(CREATE_INDEX if present else "DROP INDEX IF EXISTS bench_running_names"))
        conn.commit()
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if sqlite else "CHECKPOINT")


def measure(dialect: str, url: str, runs: int, figures: set[str], plan_cache_mode: str = "auto") -> None:
    if dialect == "postgresql":
        parsed = make_url(url)
        options = f"{parsed.query.get('options', '')} -cplan_cache_mode={plan_cache_mode}".strip()
        query = {"application_name": APPLICATION_NAME, "options": options}
        url = parsed.update_query_dict(query).render_as_string(False)
    store = taskq.open_store(url)
    cpu = CpuClock(url)
    sizes = TASKS[dialect]

    def drained(name: str, batch: int, limits: ClaimLimits | None) -> Callable[[], Sample]:
        return lambda: drain(store, cpu, name, sizes[batch], batch, limits)

    def indexed(present: bool, batch: int) -> Callable[[], Sample]:
        def sample() -> Sample:
            set_index(store, present)
            return drained(UNCAPPED, batch, None)()

        return sample

    tables = {
        "configured": (
            "uncapped tasks | no caps, tasks/s | caps configured,",
            lambda batch: (drained(UNCAPPED, batch, None), drained(UNCAPPED, batch, CONFIGURED)),
        ),
        "index": (
            "no caps | no index on running names, tasks/s | with one,",
            lambda batch: (indexed(False, batch), indexed(True, batch)),
        ),
        "capped": (
            "reference: every task capped (a cap that never binds) | uncapped, no caps, tasks/s | capped,",
            lambda batch: (drained(UNCAPPED, batch, None), drained(CAPPED, batch, NEVER_BINDING)),
        ),
    }
    try:
        for limits in (CONFIGURED, None, NEVER_BINDING):  # connections open, statements compiled, caches warm
            drained(CAPPED if limits is NEVER_BINDING else UNCAPPED, 1, limits)()
        mode = f", plan_cache_mode={plan_cache_mode}" if dialect == "postgresql" else ""
        print(f"\n### {dialect}: worker loop (finish_and_claim), {runs} pairs, ABBA, medians{mode}")
        for figure, (header, pair) in tables.items():
            if figure not in figures:
                continue
            print(f"\n| {header}{HEADER}")
            for batch in BATCHES:
                log(f"{dialect}: {figure}, batch {batch}")
                print(f"| batch {batch} ({sizes[batch]:,} tasks) | {paired(runs, *pair(batch))} |", flush=True)
            set_index(store, False)
    finally:
        cpu.dispose()
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="pairs of samples per figure")
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--figures", default="configured,index,capped")
    parser.add_argument("--plan-cache-mode", default="force_custom_plan", help="PostgreSQL's, for these connections")
    options = parser.parse_args()
    wanted = options.only.split(",")
    figures = set(options.figures.split(","))
    if "sqlite" in wanted:
        with tempfile.TemporaryDirectory() as directory:
            _path, url = dbs.sqlite_taskq_db(Path(directory))
            measure("sqlite", url, options.runs, figures)
    if "postgres" in wanted:
        problem = dbs.postgres_available()
        if problem:
            log(f"postgres skipped: {problem}")
        else:
            with dbs.pg_schema("caps") as schema:
                measure("postgresql", schema.url, options.runs, figures, options.plan_cache_mode)


if __name__ == "__main__":
    main()
