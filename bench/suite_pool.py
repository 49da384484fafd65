"""taskq's worker pool end to end: drains, CPU-bound drains, latency, fan-out, progress, a big table, memory
(RSS, PSS), worker start and live rescale times, and idle CPU."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import ceilings, dbs, procs, startup
from bench.peers import DRAIN_WORKERS, measure_drain, measure_latency
from bench.peers.taskq_peer import SETTINGS, TaskqPeer
from bench.results import Results
from bench.sizes import Sizes
from bench.tasks import CPU_TASK_MS, calibrate_burn

WORKER_COUNTS = (1, 2, 4)
IDLE_WORKERS = 4
IDLE_SETTLE_SECONDS = 2.0  # after start-up, before the idle CPU window opens
CPU_WORKER_COUNTS = (1, 2)
CPU_TASK = "bench.tasks.cpu_bound"
SLEEP_TASK, SLEEP_TASK_MS = "bench.tasks.snooze", 2.0
SLEEP_WORKER_COUNTS = (1, 4)  # issue 21: 4 workers >= 3.5x 1 worker on tasks that wait
MEMORY_SETTLE_SECONDS = 1.0  # after a drain, before PSS is read: the pool is idle, not mid-commit
RESCALE_FROM, RESCALE_TO = 2, 4  # `workers:` in the settings file before and after the live edit
RESCALE_SETTLE_SECONDS = 0.5  # between the first workers' start and the edit: an idle pool is edited
SPAWNED = r"worker_spawned name=(\S+) pid=(\d+)"
STARTED = r"worker_started worker_id=(\S+)"
START_FIGURES = {  # what _start_and_rescale answers -> (figure key, label); all in ms
    "start_last": ("pool.start_last_ms", f"taskq pool start -> last of {RESCALE_FROM} worker_started"),
    "start_each": ("pool.start_each_ms", f"taskq worker_spawned -> worker_started, slowest of {RESCALE_FROM}"),
    "rescale_spawned": (
        "pool.rescale_spawned_ms",
        f"taskq rescale {RESCALE_FROM} -> {RESCALE_TO}: settings write -> last worker_spawned",
    ),
    "rescale_started": (
        "pool.rescale_started_ms",
        f"taskq rescale {RESCALE_FROM} -> {RESCALE_TO}: settings write -> last new worker_started",
    ),
}


def _record_memory(results: Results, tag: str) -> Callable[[list[subprocess.Popen]], None]:
    """Peak RSS of the supervisor and the largest worker, read as soon as the drain is done; then, once
    the pool has been idle MEMORY_SETTLE_SECONDS, the PSS of the whole tree (every descendant, at any
    depth, so workers forked from an intermediate process count)."""

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
        time.sleep(MEMORY_SETTLE_SECONDS)
        total, count = procs.tree_pss_mb(supervisor)
        results.add(
            f"pool.pss_total{tag}",
            f"taskq pool PSS, supervisor + {DRAIN_WORKERS} workers, idle after the drain{tag}",
            "MB",
            total,
            note=f"sum of Pss (smaps_rollup) over {count} processes: the supervisor and all its descendants",
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


def _worker_times(tail: procs.LogTail, count: int) -> dict[str, tuple[float, float]]:
    """{worker name: (when its worker_spawned line was seen, when its worker_started line was seen)}
    once `count` workers have logged both."""
    tail.wait_for(STARTED, count, timeout=60.0)
    spawned = {match[1]: seen for seen, match in tail.wait_for(SPAWNED, count, timeout=5.0)}
    started = {}
    for seen, match in tail.matching(STARTED):
        name = match[1].rsplit(":", 4)[2]  # worker ids are host:pid:name:boot:start
        started.setdefault(name, seen)
    return {name: (spawned[name], seen) for name, seen in started.items() if name in spawned}


def _start_and_rescale(peer: TaskqPeer, workdir: Path) -> dict[str, float]:
    """Worker start-up as a user sees it, in ms, timed by polling the pool's log every millisecond (its
    own timestamps may have second resolution). The pool runs without --workers, so `workers:` in its
    settings file decides; after RESCALE_FROM workers have started, the file is edited to RESCALE_TO and
    the clock starts the moment the write returns: watcher debounce, reload and spawn all count."""
    directory = workdir / "rescale"  # its own directory: the watcher sees no database file churn
    directory.mkdir(exist_ok=True)
    settings = directory / "settings.yaml"
    settings.write_text(f"{SETTINGS}workers: {RESCALE_FROM}\n")
    log_path = directory / "pool.log"
    log_path.unlink(missing_ok=True)
    tail = procs.LogTail(log_path)
    pool_started = time.monotonic()
    process = peer.start_pool(log_path, settings)
    try:
        first = _worker_times(tail, RESCALE_FROM)
        time.sleep(RESCALE_SETTLE_SECONDS)
        settings.write_text(f"{SETTINGS}workers: {RESCALE_TO}\n")
        edited = time.monotonic()
        added = {name: times for name, times in _worker_times(tail, RESCALE_TO).items() if name not in first}
    finally:
        procs.stop(process)
    if len(added) != RESCALE_TO - RESCALE_FROM:
        raise RuntimeError(f"expected {RESCALE_TO - RESCALE_FROM} new workers, saw {sorted(added)}")
    return {
        "start_last": 1000.0 * (max(started for _spawned, started in first.values()) - pool_started),
        "start_each": 1000.0 * max(started - spawned for spawned, started in first.values()),
        "rescale_spawned": 1000.0 * (max(spawned for spawned, _started in added.values()) - edited),
        "rescale_started": 1000.0 * (max(started for _spawned, started in added.values()) - edited),
    }


def _guarded(
    results: Results,
    peer: TaskqPeer,
    log: Callable[[str], None],
    figures: list[tuple[str, str]],
    measure: Callable[[], None],
) -> None:
    """One measurement of some (key, label) figures; a failure is recorded as their skip reason, not the
    suite's end."""
    try:
        measure()
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        log(f"{figures[0][0]}: FAILED, {reason}")
        for key, label in figures:
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

        _guarded(results, peer, log, [(key, label)], step)

    iterations = calibrate_burn()
    results.meta["cpu_task"] = {"milliseconds": CPU_TASK_MS, "iterations": iterations}
    results.meta["load_average_at_cpu_drains"] = []
    log(f"pool: a CPU-bound task is burn({iterations:,}), ~{CPU_TASK_MS:.0f} ms of CPU")

    for rep in range(sizes.runs):
        log(f"pool, run {rep + 1}/{sizes.runs}")
        for workers in WORKER_COUNTS:
            after = _record_memory(results, "") if workers == DRAIN_WORKERS else None
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
        for workers in CPU_WORKER_COUNTS:
            results.meta["load_average_at_cpu_drains"].append(os.getloadavg())
            label = f"taskq drain {sizes.cpu_tasks:,} CPU-bound tasks (~{CPU_TASK_MS:.0f} ms), {workers} worker(s)"
            figures = [(f"pool.cpu_{workers}", label), (f"pool.cpu_{workers}_up", f"{label}, workers up")]

            def cpu_drain(w: int = workers, figures: list[tuple[str, str]] = figures) -> None:
                peer.setup(workdir)
                rate = _drain_named(peer, CPU_TASK, sizes.cpu_tasks, [iterations], w, worker_log)
                results.add(*figures[0], "tasks/s", rate)
                results.add(*figures[1], "tasks/s", sizes.cpu_tasks / peer.work_span(CPU_TASK))

            _guarded(results, peer, log, figures, cpu_drain)
        for workers in SLEEP_WORKER_COUNTS:
            guarded(
                f"pool.sleep_{workers}",
                f"taskq drain {sizes.sleep_tasks:,} tasks sleeping {SLEEP_TASK_MS:g} ms, {workers} worker(s)",
                "tasks/s",
                lambda w=workers: _drain_named(peer, SLEEP_TASK, sizes.sleep_tasks, [SLEEP_TASK_MS], w, worker_log),
            )
        guarded(
            "pool.first_task_ms",
            f"taskq pool start -> first task completed, {startup.FIRST_TASK_WORKERS} workers",
            "ms",
            lambda: startup.first_task_ms(peer, workdir),
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

        _guarded(
            results,
            peer,
            log,
            [
                ("pool.latency_p50", "taskq idle pickup latency p50, 2 workers"),
                ("pool.latency_p95", "taskq idle pickup latency p95, 2 workers"),
            ],
            latency,
        )
        guarded(
            "pool.idle_cpu",
            f"taskq idle CPU, {IDLE_WORKERS}-worker pool over {sizes.idle_seconds:.0f} s",
            "% core",
            lambda: _idle_cpu_percent(peer, sizes.idle_seconds, worker_log),
        )

        def start_and_rescale() -> None:
            peer.setup(workdir)
            for name, value in _start_and_rescale(peer, workdir).items():
                results.add(*START_FIGURES[name], "ms", value)

        _guarded(results, peer, log, list(START_FIGURES.values()), start_and_rescale)

    if sizes.soak:
        log(f"pool: soak of {sizes.soak:,} no-ops for memory")
        tag = f" after {sizes.soak:,} tasks"
        guarded(
            f"pool.soak_{sizes.soak}",
            f"taskq drain {sizes.soak:,} no-ops, 2 workers (soak)",
            "tasks/s",
            lambda: measure_drain(peer, sizes.soak, DRAIN_WORKERS, worker_log, _record_memory(results, tag)),
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
    results.ratio(
        "pool.ratio.cpu_scale_2",
        "taskq CPU-bound drain 2 workers / 1 worker",
        "pool.cpu_2",
        "pool.cpu_1",
    )
    results.ratio(
        "pool.ratio.cpu_scale_2_up",
        "taskq CPU-bound drain 2 workers / 1 worker, workers up (first start -> last finish)",
        "pool.cpu_2_up",
        "pool.cpu_1_up",
    )
    results.ratio("pool.ratio.scale_4", "taskq drain 4 workers / 1 worker", "pool.drain_4", "pool.drain_1")
    results.ratio(
        "pool.ratio.sleep_scale_4",
        f"taskq drain of {SLEEP_TASK_MS:g} ms sleeps, 4 workers / 1 worker",
        "pool.sleep_4",
        "pool.sleep_1",
    )
    results.ratio(
        "pool.ratio.drain_vs_group_commit",
        "taskq drain 2 workers / sqlite3 group-commit limit (issue 21)",
        "pool.drain_2",
        "sqlite.raw.group_commit",
        if_measured=True,
    )
