"""Issue 11's and issue 21's targets, each judged on the median of its figure in one run: a table to paste as it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.results import Results, format_value


@dataclass(frozen=True)
class Target:
    what: str  # the target in the issue's words
    key: str  # the figure judged, on its median
    bound: float | None  # None: shown for context, no verdict
    at_most: bool = False  # True: met when median <= bound; False: when median >= bound
    parts: tuple[str, str] | None = None  # a ratio's numerator and denominator, shown next to it
    sizes: tuple[tuple[str, int], ...] = ()  # (Sizes field, what the issue asks): a run at other sizes says so


ISSUE_11 = (
    Target(
        "single enqueue >= 1.0x Huey's (SQLite, one at a time, same count, same process)",
        "compare.enqueue_vs_huey",
        1.0,
        parts=("peer.huey.taskq_enqueue_single", "peer.huey.enqueue_single"),
    ),
    Target(
        "drain 10,000 no-ops, 2 workers, from pool start >= 2x Huey's",
        "compare.drain_vs_huey",
        2.0,
        parts=("pool.drain_2", "peer.huey.drain_2"),
        sizes=(("drain", 10_000),),
    ),
    Target("idle pickup latency p50 <= 5 ms (SQLite, 2 workers)", "pool.latency_p50", 5.0, at_most=True),
    Target(
        "PostgreSQL drain, 2 workers >= 2.5x procrastinate's",
        "compare.pg_drain_vs_procrastinate",
        2.5,
        parts=("peer.taskq_pg.drain_2", "peer.procrastinate.drain_2"),
        sizes=(("drain", 10_000),),
    ),
    Target(
        "CPU-bound: 2,000 tasks of ~5 ms, 2 workers >= 1.8x 1 worker (2 cores)",
        "pool.ratio.cpu_scale_2",
        1.8,
        parts=("pool.cpu_2", "pool.cpu_1"),
        sizes=(("cpu_tasks", 2_000),),
    ),
    Target(
        "(context) the same, once workers are up: first task start -> last task finish",
        "pool.ratio.cpu_scale_2_up",
        None,
        parts=("pool.cpu_2_up", "pool.cpu_1_up"),
    ),
    Target("default pool (supervisor + 2 workers) <= 100 MB PSS, idle after a drain", "pool.pss_total", 100.0, True),
    Target("worker started <= 100 ms each: worker_spawned -> worker_started", "pool.start_each_ms", 100.0, True),
    Target(
        "worker rescaled <= 100 ms each: settings write -> new worker_started", "pool.rescale_started_ms", 100.0, True
    ),
    Target("(context) pool start -> last worker_started", "pool.start_last_ms", None),
    Target(
        "(context) settings write -> last worker_spawned (watcher debounce + reload)", "pool.rescale_spawned_ms", None
    ),
)

ISSUE_21 = (
    Target(
        "drain 10,000 no-ops, 2 workers, from pool start >= 2x Huey's with 2 workers",
        "compare.drain_vs_huey",
        2.0,
        parts=("pool.drain_2", "peer.huey.drain_2"),
        sizes=(("drain", 10_000),),
    ),
    Target(
        "single enqueue >= 1.2x Huey's (side by side, same count)",
        "compare.enqueue_vs_huey",
        1.2,
        parts=("peer.huey.taskq_enqueue_single", "peer.huey.enqueue_single"),
    ),
    Target(
        "enqueue_many of 10,000 >= 0.7x a raw sqlite3 executemany of the same rows",
        "sqlite.ratio.enqueue_many_once",
        0.7,
        parts=("sqlite.taskq.enqueue_many_once", "sqlite.raw.insert_many"),
        sizes=(("drain", 10_000),),
    ),
    Target(
        "4,000 tasks sleeping 2 ms, 4 workers >= 3.5x 1 worker",
        "pool.ratio.sleep_scale_4",
        3.5,
        parts=("pool.sleep_4", "pool.sleep_1"),
        sizes=(("sleep_tasks", 4_000),),
    ),
    Target(
        "2,000 tasks of ~5 ms pure Python, 2 workers >= 1.85x 1 worker (2 cores)",
        "pool.ratio.cpu_scale_2",
        1.85,
        parts=("pool.cpu_2", "pool.cpu_1"),
        sizes=(("cpu_tasks", 2_000),),
    ),
    Target("idle pickup latency p50 <= 3 ms (2 workers)", "pool.latency_p50", 3.0, at_most=True),
    Target(
        "PostgreSQL drain 10,000 no-ops, 2 workers, from pool start >= 4x procrastinate's with 2 workers",
        "compare.pg_drain_vs_procrastinate",
        4.0,
        parts=("peer.taskq_pg.drain_2", "peer.procrastinate.drain_2"),
        sizes=(("drain", 10_000),),
    ),
    Target("default pool (supervisor + 2 workers) <= 90 MB PSS, idle after a drain", "pool.pss_total", 90.0, True),
    Target("pool start -> first task completed <= 300 ms", "pool.first_task_ms", 300.0, at_most=True),
    Target("settings write -> new worker started <= 150 ms", "pool.rescale_started_ms", 150.0, at_most=True),
    Target(
        "(the limit) taskq drain, 2 workers, as a fraction of raw sqlite3 group commits of 32",
        "pool.ratio.drain_vs_group_commit",
        None,
        parts=("pool.drain_2", "sqlite.raw.group_commit"),
    ),
    Target(
        "(context) no-ops: 2 workers / 1 worker", "pool.ratio.scale_2", None, parts=("pool.drain_2", "pool.drain_1")
    ),
    Target("(context) pool start -> last worker_started", "pool.start_last_ms", None),
)

UNITS = {"tasks/s": "/s", "x": "x", "ms": " ms", "MB": " MB"}


def _number(value: float, unit: str) -> str:
    """As the figures table prints it, except MB and ms to 0.1: a 100.4 MB total must not read "100"."""
    return f"{value:,.1f}" if unit in ("MB", "ms") else format_value(value, unit)


def _value(results: Results, key: str) -> str:
    figure = results.figures[key]
    return f"{_number(figure.median, figure.unit)}{UNITS.get(figure.unit, ' ' + figure.unit)}"


def _measured(results: Results, target: Target) -> str:
    figure = results.figures[target.key]
    spread = f"{_number(min(figure.samples), figure.unit)}-{_number(max(figure.samples), figure.unit)}"
    text = f"{_value(results, target.key)} ({spread}, n={len(figure.samples)})"
    if target.parts and all(results.figures.get(key) and results.figures[key].samples for key in target.parts):
        text += f": {_value(results, target.parts[0])} vs {_value(results, target.parts[1])}"
    return text


def _verdict(results: Results, target: Target) -> str:
    if target.bound is None:
        return "-"
    median = results.figures[target.key].median
    met = median <= target.bound if target.at_most else median >= target.bound
    verdict = "met" if met else "**not met**"
    sizes = results.meta.get("sizes", {})
    other = [f"{field}={sizes[field]:,}" for field, wanted in target.sizes if field in sizes and sizes[field] != wanted]
    return verdict + (f" (at {', '.join(other)})" if other else "")


def targets_table(results: Results, targets: Sequence[Target] = ISSUE_11) -> str:
    """Markdown: each target, the measured median (min-max, n, and a ratio's two sides), met or not."""
    lines = ["| target | measured: median (min-max, n) | verdict |", "| --- | --- | --- |"]
    for target in targets:
        figure = results.figures.get(target.key)
        if figure is None or not figure.samples:
            why = figure.skipped if figure is not None and figure.skipped else "its group was not run"
            lines.append(f"| {target.what} | - | not measured: {why} |")
        else:
            lines.append(f"| {target.what} | {_measured(results, target)} | {_verdict(results, target)} |")
    return "\n".join(lines)
