"""Peer queues measured with the same workloads as taskq: enqueue one at a time, drain no-ops, pickup latency.

Each peer is a `Peer`: it knows how to enqueue, start its own workers, and count its finished tasks
from its own store, so completions are counted the same way for every queue: polled from where the
peer records them, with the clock started just before the workers are.
"""

from __future__ import annotations

import importlib
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import procs
from bench.results import Results
from bench.sizes import Sizes

DRAIN_WORKERS = 2
LATENCY_GAP_SECONDS = (0.05, 0.15)  # idle time before each latency probe, randomised


class Peer:
    name = "peer"
    label = "peer"
    reference_only = False
    # Caps for a slow peer, so one run stays within minutes; figures name the size actually used.
    max_enqueue = 2_000
    max_drain: int | None = None
    max_latency_samples: int | None = None
    # The taskq dialect whose enqueue is measured next to this peer's, in the same repetition, the same
    # process, with the same count and the same function (issue 11 compares the two one to one).
    counterpart: str | None = None

    def missing(self) -> str | None:
        """None when the peer can run here, else why not (a missing package or service)."""
        raise NotImplementedError

    def setup(self, workdir: Path) -> None:
        """Fresh, empty store for one measurement."""
        raise NotImplementedError

    def teardown(self) -> None:
        """After one measurement."""

    def storage_settings(self) -> dict[str, object]:
        """Settings of the peer's store that bear on speed (e.g. SQLite pragmas), read back from it."""
        return {}

    def close(self) -> None:
        """After the peer's last measurement of the run."""

    def enqueue_noops(self, count: int) -> None:
        """Enqueue `count` no-op tasks one at a time through the peer's normal API."""
        raise NotImplementedError

    def prefill_noops(self, count: int) -> None:
        """Enqueue `count` no-op tasks the fastest way the peer offers (not timed)."""
        self.enqueue_noops(count)

    def start_workers(self, workers: int, log: Path) -> list[subprocess.Popen]:
        raise NotImplementedError

    def finished(self) -> int:
        """Tasks the peer has recorded as successfully finished."""
        raise NotImplementedError

    def enqueue_stamp(self) -> object:
        """Enqueue a task that returns (or records) time.time() when it starts; a handle for `stamp_of`."""
        raise NotImplementedError

    def stamp_of(self, handle: object, timeout: float) -> float:
        """The start time recorded by that task, waiting for it up to `timeout`."""
        raise NotImplementedError


def _stop_all(workers: list[subprocess.Popen]) -> None:
    for process in workers:
        procs.stop(process)


def measure_enqueue(peer: Peer, count: int) -> float:
    """Tasks/s of `count` enqueues one at a time, in this process. One untimed enqueue first for every
    peer alike (connection open, statements prepared), as in an application that is already running."""
    peer.enqueue_noops(1)
    started = time.perf_counter()
    peer.enqueue_noops(count)
    return count / (time.perf_counter() - started)


def measure_drain(
    peer: Peer,
    count: int,
    workers: int,
    log: Path,
    after: Callable[[list[subprocess.Popen]], None] | None = None,
) -> float:
    """Tasks/s from worker start to the moment the peer's store shows all `count` tasks finished.
    `after` sees the still-running worker processes (e.g. to read their peak RSS)."""
    peer.prefill_noops(count)
    started = time.monotonic()
    processes = peer.start_workers(workers, log)
    try:
        finished = procs.wait_for(
            lambda: peer.finished() >= count,
            timeout=max(120.0, count / 20),
            what=f"{peer.name} to finish {count} tasks",
        )
        if after is not None:
            after(processes)
    finally:
        _stop_all(processes)
    return count / (finished - started)


def measure_latency(peer: Peer, samples: int, log: Path) -> tuple[float, float]:
    """(p50, p95) in ms of enqueue -> task start on an idle pool of DRAIN_WORKERS workers."""
    processes = peer.start_workers(DRAIN_WORKERS, log)
    try:
        peer.stamp_of(peer.enqueue_stamp(), timeout=60.0)  # workers up and warm
        latencies = []
        for _ in range(samples):
            time.sleep(random.uniform(*LATENCY_GAP_SECONDS))
            enqueued_at = time.time()
            handle = peer.enqueue_stamp()
            latencies.append(1000.0 * (peer.stamp_of(handle, timeout=30.0) - enqueued_at))
    finally:
        _stop_all(processes)
    latencies.sort()
    return statistics.median(latencies), latencies[max(0, round(0.95 * len(latencies)) - 1)]


def load(name: str) -> Peer:
    if name == "taskq_pg":
        from bench.peers.taskq_peer import TaskqPeer

        return TaskqPeer("postgresql")
    return importlib.import_module(f"bench.peers.{name}_peer").PEER


def run(name: str, results: Results, sizes: Sizes, workdir: Path, log: Callable[[str], None]) -> None:
    peer = load(name)
    suffix = " (reference only)" if peer.reference_only else ""
    enqueues = min(sizes.single, peer.max_enqueue)
    drain = min(sizes.drain, peer.max_drain or sizes.drain)
    samples = min(sizes.latency_samples, peer.max_latency_samples or sizes.latency_samples)
    keys = {
        "enqueue": (f"peer.{name}.enqueue_single", f"{peer.label} enqueue (one at a time){suffix}", "tasks/s"),
        "drain": (f"peer.{name}.drain_2", f"{peer.label} drain {drain:,} no-ops, 2 workers{suffix}", "tasks/s"),
        "p50": (f"peer.{name}.latency_p50", f"{peer.label} idle pickup latency p50 ({samples}){suffix}", "ms"),
        "p95": (f"peer.{name}.latency_p95", f"{peer.label} idle pickup latency p95 ({samples}){suffix}", "ms"),
    }
    counterpart = load("taskq" if peer.counterpart == "sqlite" else "taskq_pg") if peer.counterpart else None
    if counterpart is not None:
        keys["taskq_enqueue"] = (
            f"peer.{name}.taskq_enqueue_single",
            f"{counterpart.label} enqueue (one at a time), next to {peer.label}",
            "tasks/s",
        )
    missing = peer.missing()
    if missing:
        log(f"{name}: SKIPPED, {missing}")
        for key, label, _unit in keys.values():
            results.skip(key, label, missing)
        return
    worker_log = workdir / f"{name}-workers.log"
    try:
        for rep in range(sizes.runs):
            log(f"{name}, run {rep + 1}/{sizes.runs}")
            _enqueues(peer, counterpart, rep, results, keys, workdir, enqueues)
            _one_run(peer, results, keys, workdir, worker_log, drain, samples)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        log(f"{name}: FAILED, {reason} (worker log: {worker_log})")
        for key, label, _unit in keys.values():
            results.skip(key, label, f"failed: {reason}")
        results.meta.setdefault("peer_failures", {})[name] = reason
        if worker_log.exists():
            results.meta.setdefault("peer_worker_log_tail", {})[name] = worker_log.read_text()[-2000:]
    finally:
        peer.teardown()
        peer.close()
        if counterpart is not None:
            counterpart.teardown()


def _enqueues(
    peer: Peer, counterpart: Peer | None, rep: int, results: Results, keys: dict, workdir: Path, count: int
) -> None:
    """The peer's enqueue figure and, right next to it, its taskq counterpart's; who goes first alternates
    by repetition so that neither always gets the cooler machine."""
    order = [(peer, keys["enqueue"])]
    if counterpart is not None:
        order.append((counterpart, keys["taskq_enqueue"]))
    if rep % 2:
        order.reverse()
    for who, key in order:
        who.setup(workdir)
        if rep == 0:
            results.meta.setdefault("storage_settings", {})[who.name] = who.storage_settings()
        results.add(*key, measure_enqueue(who, count))
        who.teardown()


def _one_run(
    peer: Peer, results: Results, keys: dict, workdir: Path, worker_log: Path, drain: int, samples: int
) -> None:
    peer.setup(workdir)
    results.add(*keys["drain"], measure_drain(peer, drain, DRAIN_WORKERS, worker_log))
    peer.teardown()
    peer.setup(workdir)
    p50, p95 = measure_latency(peer, samples, worker_log)
    results.add(*keys["p50"], p50)
    results.add(*keys["p95"], p95)
    peer.teardown()
