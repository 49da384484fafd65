"""taskq's worker pool end to end: drains, latency, fan-out, progress, a big table, memory and idle CPU."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import ceilings, dbs, procs
from bench.peers import DRAIN_WORKERS, measure_drain, measure_latency
from bench.peers.taskq_peer import TaskqPeer
from bench.results import Results
from bench.sizes import Sizes

WORKER_COUNTS = (1, 2, 4)
IDLE_WORKERS = 4
IDLE_SETTLE_SECONDS = 2.0  # after start-up, before the idle CPU window opens


def _record_rss(results: Results, tag: str) -> Callable[[list[subprocess.Popen]], None]:
    def after(processes: list[subprocess.Popen]) -> None:
        supervisor = processes[0].pid
        workers = [pid for pid in procs.descendants(supervisor) if pid != supervisor]
        results.add(f"pool.rss_supervisor{tag}", f"taskq supervisor peak RSS{tag}", "MB", procs.peak_rss_mb(supervisor))
        if workers:
            results.add(
                f"pool.rss_worker{tag}",
                f"taskq worker peak RSS, largest of {len(workers)}{tag}",
                "MB",
                max(procs.peak_rss_mb(pid) for pid in workers),
            )

    return after


def _drain_named(peer: TaskqPeer, name: str, count: int, args: list, workers: int, log: Path) -> float:
    peer.prefill(name, count, args)
    started = time.monotonic()
    processes = peer.start_workers(workers, log)
    try:
        finished = procs.wait_for(
            lambda: peer.count("completed", name) >= count, timeout=max(120.0, count / 20), what=f"{count} {name} tasks"
        )
    finally:
        for process in processes:
            procs.stop(process)
    return count / (finished - started)


def _fan_out_seconds(peer: TaskqPeer, children: int, log: Path) -> float:
    processes = peer.start_workers(DRAIN_WORKERS, log)
    try:
        peer.stamp_of(peer.enqueue_stamp(), timeout=60.0)  # pool up and idle
        started = time.monotonic()
        peer.store.enqueue("bench.tasks.fan_out", [children])
        finished = procs.wait_for(
            lambda: peer.count("completed", "bench.tasks.fan_in") >= 1,
            timeout=max(120.0, children / 20),
            what="the fan-out's continuation",
        )
    finally:
        for process in processes:
            procs.stop(process)
    return finished - started


def _idle_cpu_percent(peer: TaskqPeer, seconds: float, log: Path) -> float:
    processes = peer.start_workers(IDLE_WORKERS, log)
    try:
        peer.stamp_of(peer.enqueue_stamp(), timeout=60.0)
        procs.wait_for(
            lambda: len(procs.descendants(processes[0].pid)) >= IDLE_WORKERS + 1,
            timeout=30.0,
            what="all workers to start",
        )
        time.sleep(IDLE_SETTLE_SECONDS)
        return procs.tree_cpu_percent(processes[0].pid, seconds)
    finally:
        for process in processes:
            procs.stop(process)


def _guarded(
    results: Results, peer: TaskqPeer, log: Callable[[str], None], key: str, label: str, measure: Callable[[], None]
) -> None:
    """One figure's measurement; a failure is recorded as the figure's skip reason, not the suite's end."""
    try:
        measure()
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        log(f"{key}: FAILED, {reason}")
        results.skip(key, label, f"failed: {reason}")
    finally:
        peer.teardown()


def run(results: Results, sizes: Sizes, workdir: Path, log: Callable[[str], None]) -> None:
    peer = TaskqPeer("sqlite")
    worker_log = workdir / "taskq-workers.log"
    n = sizes.drain
    big_path, big_url = dbs.sqlite_taskq_db(workdir, "pool-finished-rows.db")
    log(f"pool: filling {sizes.finished_rows:,} finished rows")
    ceilings.sqlite_fill(big_path, sizes.finished_rows, status="completed")

    def guarded(key: str, label: str, unit: str, measure: Callable[[], float], url: str | None = None) -> None:
        def step() -> None:
            peer.setup(workdir, url)
            results.add(key, label, unit, measure())

        _guarded(results, peer, log, key, label, step)

    for rep in range(sizes.runs):
        log(f"pool, run {rep + 1}/{sizes.runs}")
        for workers in WORKER_COUNTS:
            after = _record_rss(results, "") if workers == DRAIN_WORKERS else None
            guarded(
                f"pool.drain_{workers}",
                f"taskq drain {n:,} no-ops, {workers} worker(s)",
                "tasks/s",
                lambda w=workers, a=after: measure_drain(peer, n, w, worker_log, a),
            )
        guarded(
            "pool.drain_2_finished",
            f"taskq drain {n:,} no-ops, 2 workers, {sizes.finished_rows:,} finished rows",
            "tasks/s",
            lambda: measure_drain(peer, n, DRAIN_WORKERS, worker_log),
            url=big_url,
        )
        guarded(
            "pool.progress_2",
            f"taskq drain {sizes.progress_tasks:,} tasks x 100 progress calls, 2 workers",
            "tasks/s",
            lambda: _drain_named(
                peer, "bench.tasks.progress_heavy", sizes.progress_tasks, [100], DRAIN_WORKERS, worker_log
            ),
        )
        guarded(
            "pool.fanout",
            f"taskq fan-out of {sizes.fanout:,} children to continuation, 2 workers",
            "s",
            lambda: _fan_out_seconds(peer, sizes.fanout, worker_log),
        )

        def latency() -> None:
            peer.setup(workdir)
            p50, p95 = measure_latency(peer, sizes.latency_samples, worker_log)
            results.add("pool.latency_p50", "taskq idle pickup latency p50, 2 workers", "ms", p50)
            results.add("pool.latency_p95", "taskq idle pickup latency p95, 2 workers", "ms", p95)

        _guarded(results, peer, log, "pool.latency_p50", "taskq idle pickup latency p50, 2 workers", latency)
        guarded(
            "pool.idle_cpu",
            f"taskq idle CPU, {IDLE_WORKERS}-worker pool over {sizes.idle_seconds:.0f} s",
            "% core",
            lambda: _idle_cpu_percent(peer, sizes.idle_seconds, worker_log),
        )

    if sizes.soak:
        log(f"pool: soak of {sizes.soak:,} no-ops for memory")
        tag = f" after {sizes.soak:,} tasks"
        guarded(
            f"pool.soak_{sizes.soak}",
            f"taskq drain {sizes.soak:,} no-ops, 2 workers (soak)",
            "tasks/s",
            lambda: measure_drain(peer, sizes.soak, DRAIN_WORKERS, worker_log, _record_rss(results, tag)),
        )
    results.meta["pool_worker_log_tail"] = worker_log.read_text()[-2000:] if worker_log.exists() else ""

    results.ratio(
        "pool.ratio.drain_vs_ceiling",
        "taskq drain 2 workers / sqlite3 claim+complete ceiling",
        "pool.drain_2",
        "sqlite.raw.claim_complete",
        if_measured=True,
    )
    results.ratio(
        "pool.ratio.drain_flat", "taskq drain: finished rows / empty table", "pool.drain_2_finished", "pool.drain_2"
    )
    results.ratio("pool.ratio.scale_2", "taskq drain 2 workers / 1 worker", "pool.drain_2", "pool.drain_1")
    results.ratio("pool.ratio.scale_4", "taskq drain 4 workers / 1 worker", "pool.drain_4", "pool.drain_1")
