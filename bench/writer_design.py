"""Issue 21 point 1, phase 1: what "one writer per host" can buy on SQLite, before touching the engine.

Drains 10,000 no-op tasks on taskq's migrated schema with 1, 2 and 4 worker processes in three shapes:

- `worker`: each worker process is its own writer (today's shape): `Store.finish_and_claim` records its
  last batch and claims the next (32 tasks) in one transaction, retried by the store's jittered backoff.
- `host`:   one writer (this process) claims batches for every worker and records every outcome in group
  commits (`Store.finish_and_claim_for_many`: one transaction for all the workers that reported since the
  last one); workers get Task objects and return Completions over multiprocessing pipes, two batches in
  flight each so a worker never waits for the writer's commit. Workers never open the database.
- `hostraw`: `host`, but the writer ships the claimed rows as the driver returned them and each worker
  decodes its own (JSON, times, Task objects): the one writer's CPU is the limit on no-ops.
- `flock`:  `worker`, with every transaction taken under a host-wide flock, so writers queue in the kernel
  instead of sleeping after "database is locked".
- `late`, `flocklate`: `worker` and `flock` with the claimed rows decoded after COMMIT (a one-round
  `finish_and_claim_for_many`), so the write lock is held for the statements only (not in the default run).

and `raw`: one process with bare sqlite3 running taskq's own compiled claim and complete statements in
the same batches (complete the last batch + claim the next, one transaction), no Task objects, no
processes: the ceiling of a drain on this schema.

Workers are forked and open what they need before the clock starts (a barrier), so the figure is the
steady-state drain, not pool start-up; the clock stops when every task is recorded (checked by count).
Task execution is a Python call of a no-op function: the engine's per-task bookkeeping (log lines,
progress, protocol reports) is the same in both designs and is left out on purpose.

Repetitions are ABBA-ordered (the order of the configurations reverses every other repetition) and each
figure is the median; ratios are taken pair by pair, then their median. The load average is printed with
the table because the machine is shared.

    PYTHONPATH=$PWD python -m bench.writer_design [--tasks 10000] [--runs 5] [--batch 32]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import multiprocessing as mp
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

import taskq
from bench.dbs import sqlite_taskq_db
from taskq.clock import utc_now
from taskq.model import Completion, Task
from taskq.store.claim import tasks_from_raw

NOOP = "bench.writer_design.noop"
FILL_BATCH = 1000
BARRIER_SECONDS = 600.0  # a worker that died (its database restarted under it) breaks the barrier instead
IN_FLIGHT = 2  # batches the host writer keeps queued per worker: one running, one waiting in the pipe
LEASE_SECONDS = 30.0


_work_loops = 0  # set by --work-us before any worker is forked: per-task CPU work, see main()


def noop() -> None:
    sum(range(_work_loops))


def _calibrate(micros: float) -> int:
    """Iterations of `sum(range(n))` that take about `micros` of CPU here (best of several tries)."""
    n = 100_000
    best = min(_cpu_of(lambda: sum(range(n))) for _ in range(20))
    return int(n * micros / 1e6 / best)


def _cpu_of(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def _cpu_seconds() -> tuple[float, float]:
    """CPU of this process (the host writer, or the raw loop) and of every process of the drain (workers
    are joined before this is read, so their CPU is in RUSAGE_CHILDREN)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime
    return mine, mine + children.ru_utime + children.ru_stime


def _fill(url: str, count: int) -> None:
    store = taskq.open_store(url)
    for start in range(0, count, FILL_BATCH):
        store.enqueue_many([taskq.TaskRequest(NOOP) for _ in range(min(FILL_BATCH, count - start))])
    store.dispose()


def _completed(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM tasks WHERE status = 'completed'").fetchone()[0])


def _run(task: Task) -> Completion:
    started = utc_now()
    noop()
    return Completion(task.id, task.attempts, None, utc_now(), has_follow_up=False, started_at=started)


# -- (a) and (c): each worker its own writer ------------------------------------------------------------

Step = Callable[[list[Completion], int], list[Task]]  # record these outcomes, claim up to n: the claimed Tasks
MakeStep = Callable[[taskq.Store, str], Step]  # a worker's Step, from its store and worker id


def _own_writer(*args: Any) -> None:
    """`_own_drain` in a forked worker; one that fails (its database restarted) breaks the barriers, so that
    the parent and the other workers stop waiting for it."""
    barrier, hold = args[3], args[7]
    try:
        _own_drain(*args)
    except BaseException:
        for waiting in (barrier, hold):
            if waiting is not None:
                waiting.abort()
        raise


def _own_drain(
    url: str,
    number: int,
    batch: int,
    barrier: Any,
    lock_path: str | None,
    serial: Any,
    late: bool,
    hold: Any,
    busy: Any,
    make_step: MakeStep | None,
) -> None:
    store = taskq.open_store(url, upgrade=False)
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT) if lock_path else None
    if hold is not None:  # connected before the parent reads their server backends' CPU, then the clock starts
        store.read(lambda _conn: None)
    step = make_step(store, f"w{number}") if make_step is not None else None
    if hold is not None:
        hold.wait()
        hold.wait()
    barrier.wait()
    cpu_started = time.process_time()
    finished: list[Completion] = []
    in_lock = _time_write_transactions(store) if store._hot is not None else [0.0]
    while True:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            if step is not None:
                claimed = step(finished, batch)
            elif late:  # one round of the group commit: the same statements, rows decoded after COMMIT
                [(_, claimed)] = store.finish_and_claim_for_many(
                    [(f"w{number}", finished, batch)], lease_seconds=LEASE_SECONDS
                )
            else:
                _, claimed = store.finish_and_claim(f"w{number}", finished, limit=batch, lease_seconds=LEASE_SECONDS)
        finally:
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
        if not claimed:
            break
        finished = [_run(task) for task in claimed]
    serial[number] = in_lock[0]
    busy[number] = time.process_time() - cpu_started
    if hold is not None:  # connections stay open until the parent has read their server backends' CPU
        hold.wait()
        hold.wait()
    store.dispose()


def _time_write_transactions(store: taskq.Store) -> list[float]:
    """Counts the CPU seconds this process spends inside the driver path's write transactions (BEGIN
    IMMEDIATE to COMMIT: what the write lock serialises) into the returned list's one item; the
    transactions themselves run unchanged."""
    hot = store._hot
    assert hot is not None, "SQLite only"
    spent = [0.0]
    write = hot.write

    def timed(work: Callable[[Any], Any]) -> Any:
        started = time.process_time()
        try:
            return write(work)
        finally:
            spent[0] += time.process_time() - started

    hot.write = timed  # type: ignore[method-assign]
    return spent


def drain_own_writers(
    path: Path | None,
    url: str,
    workers: int,
    batch: int,
    flock: bool,
    late: bool = False,
    while_connected: Callable[[], None] | None = None,
    make_step: MakeStep | None = None,
) -> tuple[float, float, float]:
    """(seconds, CPU seconds all workers spent inside their SQLite write transactions, CPU seconds of all
    workers from the clock's start to their last transaction). `while_connected` runs twice while every
    worker holds its connection (to read their server backends' CPU): once all have connected, before the
    clock starts, and once all are done, before any closes it. `make_step`: each worker's round (record
    its outcomes, claim up to `batch`) instead of `Store.finish_and_claim`."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1, timeout=BARRIER_SECONDS)
    hold = ctx.Barrier(workers + 1, timeout=BARRIER_SECONDS) if while_connected is not None else None
    serial, busy = ctx.Array("d", workers), ctx.Array("d", workers)
    lock_path = f"{path}.writer-lock" if flock else None
    procs = [
        ctx.Process(target=_own_writer, args=(url, i, batch, barrier, lock_path, serial, late, hold, busy, make_step))
        for i in range(workers)
    ]
    with _started(procs):
        if hold is not None and while_connected is not None:
            hold.wait()
            while_connected()
            hold.wait()
        barrier.wait()
        started = time.perf_counter()
        if hold is not None and while_connected is not None:
            hold.wait()
            elapsed = time.perf_counter() - started
            while_connected()
            hold.wait()
    if hold is None:
        elapsed = time.perf_counter() - started
    return elapsed, sum(serial[i] for i in range(workers)), sum(busy[i] for i in range(workers))


# -- (b): one writer per host, workers fed over pipes ----------------------------------------------------


Rounds = list[tuple[str, list[Completion], int]]  # (worker id, its outcomes to record, tasks to claim for it)
GroupCommit = Callable[[Rounds], list[tuple[list[int], list[Any]]]]  # (recorded ids, claimed) per round


def _fed_worker(conn: Connection, decode: Callable[[Any], list[Task]] | None) -> None:
    while True:
        tasks = conn.recv()
        if tasks is None:
            return
        if decode is not None:  # raw rows: the worker decodes them, not the writer
            tasks = decode(tasks)
        conn.send([_run(task) for task in tasks])


def drain_host_writer(url: str, workers: int, batch: int, decode: bool) -> float:
    store = taskq.open_store(url, upgrade=False)
    store.finish_and_claim_for_many([])  # connection opened and statements compiled before the clock
    decoder = None if decode else functools.partial(tasks_from_raw, store.claimed_columns())

    def group_commit(rounds: Rounds) -> list[tuple[list[int], list[Any]]]:
        return store.finish_and_claim_for_many(rounds, lease_seconds=LEASE_SECONDS, decode=decode)

    try:
        return feed_workers(group_commit, decoder, workers, batch)
    finally:
        store.dispose()


def feed_workers(
    group_commit: GroupCommit, decode: Callable[[Any], list[Task]] | None, workers: int, batch: int
) -> float:
    """Seconds to drain the queue with `workers` forked processes fed by this one, which records their
    outcomes and claims their next batches through `group_commit`; `decode`: how a worker turns the
    claimed rows it receives into Tasks (None: it receives Tasks)."""
    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(workers)]
    procs = [ctx.Process(target=_fed_worker, args=(child, decode)) for _, child in pipes]
    with _started(procs):
        return _feed(group_commit, [parent for parent, _ in pipes], batch)


def _feed(group_commit: GroupCommit, conns: list[Connection], batch: int) -> float:
    """The host writer's loop: seconds until every worker has been told the queue is empty."""
    ids = {conn: f"w{i}" for i, conn in enumerate(conns)}
    in_flight = {conn: 0 for conn in conns}
    outcomes: dict[Connection, list[Completion]] = {conn: [] for conn in conns}
    empty = False
    started = time.perf_counter()
    live = set(conns)
    while live:
        busy = [conn for conn in live if in_flight[conn]]
        for ready in wait(busy) if busy else []:
            conn = cast(Connection, ready)
            outcomes[conn] += conn.recv()
            in_flight[conn] -= 1
        asking = [conn for conn in live if outcomes[conn] or (not empty and in_flight[conn] < IN_FLIGHT)]
        rounds = [(ids[conn], outcomes[conn], 0 if empty else batch * (IN_FLIGHT - in_flight[conn])) for conn in asking]
        results = group_commit(rounds) if rounds else []
        for conn, (_, _, limit), (_, claimed) in zip(asking, rounds, results, strict=True):
            outcomes[conn] = []
            for start in range(0, len(claimed), batch):
                conn.send(claimed[start : start + batch])
                in_flight[conn] += 1
            if len(claimed) < limit:  # nothing is enqueued during the drain: a short claim means empty
                empty = True
        for conn in [conn for conn in live if empty and not in_flight[conn] and not outcomes[conn]]:
            conn.send(None)
            live.discard(conn)
    return time.perf_counter() - started


@contextlib.contextmanager
def _started(procs: list[Any]) -> Iterator[None]:
    """The processes started, and joined after the block; killed first if it raised (a database restarted
    under a drain must not leave workers waiting on a barrier or a pipe)."""
    for proc in procs:
        proc.start()
    try:
        yield
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    finally:
        for proc in procs:
            proc.join()


# -- the ceiling: bare sqlite3, taskq's statements, same batches ------------------------------------------


def drain_raw(url: str, batch: int) -> float:
    store = taskq.open_store(url, upgrade=False)
    statements = store._claims.hot_statements()  # taskq's SQL, compiled for SQLite once
    claim, complete = statements["claim"], statements["complete"]
    connection = store.engine.raw_connection().dbapi_connection
    assert connection is not None
    connection.isolation_level = None
    started = time.perf_counter()
    finished: list[tuple[int, int, Any]] = []
    while True:
        now = utc_now()
        connection.execute("BEGIN IMMEDIATE")
        rows = [
            {"owner_task_id": i, "owner_worker_id": "raw", "owner_attempt": a, "result": None, "now": now, "started": s}
            for i, a, s in finished
        ]
        connection.executemany(complete.sql, [complete.bind(row) for row in rows])
        lease = now + timedelta(seconds=LEASE_SECONDS)
        params = {"now": now, "limit": batch, "worker_id": "raw", "lease_until": lease}
        claimed = connection.execute(claim.sql, claim.bind(params)).fetchall()
        connection.execute("COMMIT")
        if not claimed:
            break
        finished = [(row[0], row[8], utc_now()) for row in claimed]
    elapsed = time.perf_counter() - started
    store.dispose()
    return elapsed


# -- the table ---------------------------------------------------------------------------------------------


def _measure(name: str, workers: int, args: argparse.Namespace, directory: Path) -> Sample:
    """(tasks/s, CPU µs per task over every process of the drain, CPU µs per task of the serial part: the
    one writer's (all it does is in one thread), or own writers' inside their write transactions)."""
    path, url = sqlite_taskq_db(directory, f"{name}-{workers}.db")
    _fill(url, args.tasks)
    mine, total = _cpu_seconds()
    if name == "raw":
        elapsed = drain_raw(url, args.batch)
    elif name in ("host", "hostraw"):
        elapsed = drain_host_writer(url, workers, args.batch, decode=name == "host")
    else:
        flock, late = name in ("flock", "flocklate"), name in ("late", "flocklate")
        elapsed, serial, _ = drain_own_writers(path, url, workers, args.batch, flock=flock, late=late)
    mine_after, total_after = _cpu_seconds()
    if name in ("raw", "host", "hostraw"):
        serial = mine_after - mine  # the one writer's CPU: everything it does is serial
    done = _completed(path)
    if done != args.tasks:
        raise RuntimeError(f"{name} x{workers}: {done} of {args.tasks} tasks completed")
    per_task = 1e6 / args.tasks
    return args.tasks / elapsed, (total_after - total) * per_task, serial * per_task, None


Config = tuple[str, int]  # (shape, workers)
# tasks/s, CPU µs per task in all, of it serial, of it the database server's (None: no server)
Sample = tuple[float, float, float, float | None]


def parser(description: str, shapes: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--shapes", default=shapes)
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU work per task in the worker (µs)")
    return parser


def set_work(micros: float) -> None:
    """Per-task CPU work of the workers (before any is forked)."""
    global _work_loops
    _work_loops = _calibrate(micros) if micros else 0


def configs_of(args: argparse.Namespace) -> list[Config]:
    counts = [int(n) for n in args.workers.split(",")]
    return [("raw", 1)] + [(shape, n) for shape in args.shapes.split(",") for n in counts]


@dataclass
class Runs:
    """Every sample of every configuration, and the load average before each run and after the last."""

    configs: list[Config]
    rates: dict[Config, list[float]] = field(default_factory=dict)
    cpu: dict[Config, list[float]] = field(default_factory=dict)
    serial: dict[Config, list[float]] = field(default_factory=dict)
    server: dict[Config, list[float]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)


def abba(configs: list[Config], runs: int, measure: Callable[[str, int], Sample]) -> Runs:
    """`runs` repetitions of every configuration, the order reversed every other repetition."""

    def empty() -> dict[Config, list[float]]:
        return {config: [] for config in configs}

    out = Runs(configs, rates=empty(), cpu=empty(), serial=empty(), server=empty())
    for run in range(runs):
        out.loads.append(os.getloadavg()[0])
        for name, workers in configs if run % 2 == 0 else configs[::-1]:
            rate, micros, serial_micros, server_micros = measure(name, workers)
            if server_micros is not None:
                out.server[(name, workers)].append(server_micros)
            out.rates[(name, workers)].append(rate)
            out.cpu[(name, workers)].append(micros)
            out.serial[(name, workers)].append(serial_micros)
            print(f"run {run + 1} {name} x{workers}: {rate:,.0f}/s {micros:.0f} µs CPU/task", file=sys.stderr)
    out.loads.append(os.getloadavg()[0])
    return out


def main(argv: list[str] | None = None) -> None:
    args = parser(__doc__.split("\n\n")[0], "worker,host,hostraw,flock").parse_args(argv)
    set_work(args.work_us)
    with tempfile.TemporaryDirectory(prefix="taskq-writer-") as tmp:
        runs = abba(configs_of(args), args.runs, lambda name, workers: _measure(name, workers, args, Path(tmp)))
    print_table(runs, args, "raw sqlite3", _processes)


def _processes(name: str, workers: int) -> int:
    """Processes that can be busy at once: the workers, and a host writer."""
    return workers + (1 if name.startswith("host") else 0)


def _paired(samples: dict[Config, list[float]], a: Config, b: Config) -> str:
    ratios = [x / y for x, y in zip(samples[a], samples[b], strict=True)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def print_table(runs: Runs, args: argparse.Namespace, raw: str, processes: Callable[[str, int], int]) -> None:
    def fmt(xs: list[float]) -> str:
        return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"

    print(
        f"\n{args.tasks:,} no-ops ({args.work_us:g} µs CPU each), batch {args.batch}, {args.runs} ABBA runs, "
        f"{os.cpu_count()} CPUs, "
        f"load average (1 min) {min(runs.loads):.1f}-{max(runs.loads):.1f} during the runs\n"
    )
    server = any(runs.server.values())
    print(
        f"| shape | workers | drain/s median (min-max) | vs worker x1 | vs {raw} "
        f"| CPU µs/task, all |{' of it server |' if server else ''} of it serial (writer / in store) "
        "| quiet-box ceiling/s |"
    )
    print("|---|---|---|---|---|---|---|---|" + ("---|" if server else ""))
    base = ("worker", 1)
    for config in runs.configs:
        name, workers = config
        versus_base = _paired(runs.rates, config, base) if base in runs.rates else "-"
        versus_raw = _paired(runs.rates, config, ("raw", 1))
        micros, serial_micros = statistics.median(runs.cpu[config]), statistics.median(runs.serial[config])
        ceiling = _ceiling(processes(name, workers), micros, serial_micros)
        in_server = f" {statistics.median(runs.server[config]):.0f} |" if server else ""
        print(
            f"| {name} | {workers} | {fmt(runs.rates[config])} | {versus_base} | {versus_raw} | {micros:.0f} "
            f"|{in_server} {serial_micros:.0f} | {ceiling} |"
        )


def _ceiling(processes: int, micros: float, serial_micros: float) -> str:
    """What CPU alone allows on a quiet box with os.cpu_count() cores: every process busy on a core of its
    own at most, and the serial part (the one writer's work, or what own writers do holding the write lock)
    one task at a time. Waiting for the lock and pipe latency are not in it."""
    cores = min(os.cpu_count() or 1, processes)
    limit = cores * 1e6 / micros
    if serial_micros > 0:
        limit = min(limit, 1e6 / serial_micros)
    return f"{limit:,.0f}"


if __name__ == "__main__":
    main()
