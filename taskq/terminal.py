"""How the CLI shows things to people: tables that fit the terminal, human values, clipped large fields.

Scripts use `--json`; nothing here is parsed by machines. rich is imported inside the functions that
draw, so `--json` commands never pay for it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskq.json_limits import Undecodable
from taskq.model import Status, Task, TaskSummary, WorkerInfo

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from taskq.registry import TaskSpec

PIPE_WIDTH = 200  # piped output is read by people with `| less` or grep: do not fold it at 80 columns
INLINE_CHARS = 300  # args, kwargs and result longer than this are clipped in `taskq show` unless --full
ERROR_LINES = 25  # the last lines of a traceback shown (the end says what went wrong)
# `taskq list --json` gives their sizes (or the error's headline) unless --full: their size is the
# application's, up to megabytes each.
LARGE_FIELDS = ("args", "kwargs", "result", "error", "error_log")
Listed = Task | TaskSummary  # a row of `taskq list`: a summary, or a whole task


def console(*, stderr: bool = False) -> Console:
    """A terminal's own width; COLUMNS when set (also for pipes and tests), else PIPE_WIDTH for pipes."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return Console(file=stream, width=int(columns))
    terminal = Console(file=stream)
    return terminal if terminal.is_terminal else Console(file=stream, width=PIPE_WIDTH)


def width() -> int:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns if sys.stdout.isatty() else PIPE_WIDTH


def when(value: datetime | None) -> str:
    """To the second, UTC: microseconds and offsets are noise to a person reading a table."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def short_when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%m-%d %H:%M:%S")


def human(value: Any) -> str:
    """None, booleans and numbers as a person writes them; containers as compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value) + " UTC"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def clip(text: str, limit: int) -> tuple[str, bool]:
    """The first `limit` characters and whether anything was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def age(elapsed: timedelta) -> str:
    """1h05m, 3m20s, 12s: how long ago, at the precision a person needs."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def size(chars: int) -> str:
    for unit, scale in (("MB", 2**20), ("kB", 2**10)):
        if chars >= scale:
            return f"{chars / scale:.1f} {unit}"
    return f"{chars} characters"


# -- taskq list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Listed], str]
    keep: int  # lower is kept longer when the terminal is narrow; id, name and status are always shown
    justify: str = "left"


TASK_COLUMNS = (
    Column("id", lambda t: str(t.id), 0, "right"),
    Column("name", lambda t: t.name, 0),
    Column("status", lambda t: t.status.value + (" (cancelling)" if t.cancel_requested and t.is_active else ""), 0),
    Column("progress", lambda t: f"{t.progress:.0f}%", 1, "right"),
    Column("tries", lambda t: f"{t.attempts}/{t.max_retries + 1}", 2, "right"),
    Column("created (UTC)", lambda t: short_when(t.created_at), 3),
    Column("queue", lambda t: t.queue, 4),
    Column("prio", lambda t: str(t.priority), 5, "right"),
    Column("finished", lambda t: short_when(t.finished_at), 6),
)
NAME_MIN_CHARS = 24  # narrower than this, a low-value column goes before the name is cut further
COLUMN_GAP = 3  # rich's padding on both sides plus the separator


def _column_widths(columns: Sequence[Column], rows: Sequence[Listed]) -> list[int]:
    return [max([len(column.header), *(len(column.cell(task)) for task in rows)]) for column in columns]


def fit_columns(rows: Sequence[Listed], total: int) -> tuple[list[Column], list[int]]:
    """Drop the least useful columns until every row fits on one line with a readable name; the name
    gets what the others leave (and is cut with an ellipsis beyond that)."""
    columns = list(TASK_COLUMNS)
    while True:
        widths = _column_widths(columns, rows)
        name_at = columns.index(TASK_COLUMNS[1])
        others = sum(widths) - widths[name_at] + COLUMN_GAP * (len(columns) - 1)
        room = total - others
        if room >= min(NAME_MIN_CHARS, widths[name_at]) or max(column.keep for column in columns) == 0:
            widths[name_at] = max(1, min(widths[name_at], room))
            return columns, widths
        columns.remove(max(columns, key=lambda column: column.keep))


def tasks_table(rows: Sequence[Listed], total: int) -> Table:
    from rich.table import Table

    columns, widths = fit_columns(rows, total)
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column, column_width in zip(columns, widths, strict=True):
        # One line per task: anything too long ends in an ellipsis instead of folding into the next line.
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            width=column_width,
        )
    for task in rows:
        table.add_row(*(column.cell(task) for column in columns))
    return table


# -- taskq show ---------------------------------------------------------------------------------------

ALWAYS_SHOWN = frozenset({"started", "finished"})  # "-" here says "not yet", which is worth reading


def show_task(out: Console, task: Task, children: dict[str, int] | None, *, full: bool) -> None:
    """Scalar fields in a table; args, kwargs, result and the error clipped unless `full`."""
    from rich.table import Table

    table = Table(show_header=False, show_edge=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    status = task.status.value + (" (cancel requested)" if task.cancel_requested and task.is_active else "")
    progress = f"{task.progress:.0f}%" + (f" {task.progress_message}" if task.progress_message else "")
    rows: list[tuple[str, Any]] = [
        ("id", task.id),
        ("name", task.name),
        ("status", status),
        ("queue", task.queue),
        ("priority", task.priority),
        ("attempts", f"{task.attempts} of {task.max_retries + 1}"),
        ("progress", progress),
        ("created", task.created_at),
        ("run after", task.run_after),
        ("started", task.started_at),
        ("finished", task.finished_at),
        ("timeout", None if task.timeout is None else f"{task.timeout:g} s"),
        ("dedup key", task.dedup_key),
        ("parent", task.parent_id),
        ("then", task.continuation),
        ("worker", task.worker_id),
    ]
    if task.is_active and task.lease_until is not None:
        rows.append(("lease until", task.lease_until))
    if children:
        rows.append(("children", ", ".join(f"{status}: {n}" for status, n in children.items() if n)))
    clipped: list[str] = []
    whole: list[tuple[str, str]] = []  # --full: long values printed after the table, as plain text
    for key, value in (("args", task.args), ("kwargs", task.kwargs), ("result", task.result)):
        if key == "kwargs" and not value:
            continue
        if key == "result" and task.status.value != "completed" and value is None:
            continue
        # A placeholder for a value that cannot be read back is shown as the note it is, not as a JSON string.
        text = value if isinstance(value, Undecodable) else json.dumps(value, ensure_ascii=False, default=str)
        shown, cut = clip(text, INLINE_CHARS)
        if cut and full:
            whole.append((key, text))
            shown = f"({size(len(text))}, below)"
        elif cut:
            clipped.append(key)
            shown += f" … ({size(len(text))} in all)"
        rows.append((key, shown))
    for key, value in rows:
        if value is None and key not in ALWAYS_SHOWN:  # an unset option is noise, not information
            continue
        table.add_row(key, human(value))
    out.print(table, highlight=False, markup=False)
    for key, text in whole:
        # Straight to the stream: laying out megabytes in a rich table took tens of seconds.
        out.file.write(f"{key}:\n{text}\n")
    if task.error:
        lines = task.error.rstrip().splitlines()
        if not full and len(lines) > ERROR_LINES:
            clipped.append("error")
            out.print(f"error (last {ERROR_LINES} of {len(lines)} lines):", style="bold", highlight=False)
            lines = lines[-ERROR_LINES:]
        else:
            out.print("error:", style="bold", highlight=False)
        out.file.write("\n".join(lines) + "\n")
    if len(task.error_log) > 1:
        out.print(f"earlier errors: {len(task.error_log) - 1} (taskq show {task.id} --json)", highlight=False)
    if clipped:
        out.print(f"clipped: {', '.join(clipped)} (--full prints everything)", style="dim", highlight=False)


# -- taskq stats, queues, workers, tasks ------------------------------------------------------------------


def stats_table(counts: Mapping[str, int]) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("status")
    table.add_column("tasks", justify="right")
    for status, count in counts.items():
        table.add_row(status, str(count))
    return table


def queues_table(counts: Mapping[str, Mapping[str, int]]) -> Table:
    """One row per queue, a column per status, with "delayed" (pending, not due yet) beside pending."""
    from rich.table import Table

    # Every status in the enum's order, headed by its first word; `delayed` (queued, not due) after pending.
    headers = {s.value: s.value.split("_")[0] for s in Status} | {"delayed": "(delayed)"}
    keys = [key for s in Status for key in ((s.value, "delayed") if s is Status.PENDING else (s.value,))]
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("queue", no_wrap=True, overflow="ellipsis")
    for key in keys:
        table.add_column(headers[key], justify="right", no_wrap=True)
    for queue_name, row in counts.items():
        table.add_row(queue_name, *(str(row[key]) for key in keys))
    return table


def workers_table(found: Sequence[WorkerInfo], running: Mapping[int, Task | None], now: datetime) -> Table:
    """`running`: the task each worker last reported, by id (None once it is purged)."""
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column, justify in (
        ("worker", "left"),
        ("host", "left"),
        ("pid", "right"),
        ("queues", "left"),
        ("task", "left"),
        ("done", "right"),
        ("up", "right"),
        ("seen", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for info in found:
        current = running.get(info.current_task_id) if info.current_task_id is not None else None
        task = "-" if current is None else f"{current.id} {current.name}"
        table.add_row(
            info.name,
            info.hostname,
            str(info.pid),
            ",".join(info.queues) or "*",
            task,
            str(info.tasks_done),
            age(now - info.started_at),
            age(now - info.heartbeat_at) + " ago",
        )
    return table


def registered_table(specs: Sequence[TaskSpec[Any, Any]]) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in ("name", "arguments", "queue", "prio", "retries", "timeout", "max conc", "then"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "arguments")
    for spec in specs:
        table.add_row(
            spec.name,
            "?" if spec.signature is None else str(spec.signature),
            spec.queue,
            str(spec.priority),
            str(spec.max_retries),
            "-" if spec.timeout is None else f"{spec.timeout:g} s",
            "-" if spec.max_concurrency is None else str(spec.max_concurrency),
            spec.then or "-",
        )
    return table


# -- taskq wait ---------------------------------------------------------------------------------------


class WaitBar:
    """A transient rich progress bar on stderr: status, percent and the task's own progress message."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("task {task.fields[id]} {task.fields[status]}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[message]}"),
            console=console(stderr=True),
            transient=True,
        )
        self.console = self.progress.console
        self.row = self.progress.add_task("wait", total=100, id="", status="", message="")
        self.progress.start()

    def update(self, task: Task) -> None:
        message = task.progress_message or ""
        self.progress.update(
            self.row, completed=task.progress, id=task.id, status=task.status.value, message=message[:60]
        )

    def stop(self) -> None:
        self.progress.stop()
