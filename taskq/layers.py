"""taskq's modules in layers, bottom first: the one statement of which module may import which.

A module imports only modules of its own layer or of a layer below it, and no two modules import each
other, even through others. `tests/unit/test_import_layers.py` checks every import in the package against
this table (top-level, inside functions and under TYPE_CHECKING, where circles hide), and every module must
be in it; the architecture page of the docs renders it (`docs/hooks.py`), so the picture is the rule.

An entry names a module of the package (`pool` for taskq/pool.py), a package with every module in it
(`store/`), or the package's own `__init__` and `__main__`.
"""

from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    name: str
    modules: tuple[str, ...]
    owns: str  # one line, for the docs' picture


LAYERS: tuple[Layer, ...] = (
    Layer(
        "foundation",
        ("json_limits", "events", "logformat", "distribution", "identity", "layers"),
        "stored JSON's limits, log events and lines, the version, worker ids, this table",
    ),
    Layer("vocabulary", ("clock", "model", "urls", "settings"), "UTC time, statuses and records, URLs, settings"),
    Layer(
        "rules",
        ("lifecycle", "requests", "filters", "schema", "tracing"),
        "transitions and retries, enqueue requests, the tables, spans",
    ),
    Layer("database", ("dialect", "engine"), "opening a database; where SQLite and PostgreSQL differ"),
    Layer("store", ("store/",), "every SQL statement"),
    Layer("tasks", ("context", "registry", "builtin_tasks", "api"), "@task and its lookup, ctx, open_store"),
    Layer(
        "worker contract",
        ("protocol", "worker_config", "supervision"),
        "what supervisor and worker share: messages, a worker's config, the ledger of what it runs",
    ),
    Layer("execution", ("executor",), "calling a task and recording what it did"),
    Layer("worker kernel", ("worker_kernel",), "a worker's state and the operations its loops share"),
    Layer(
        "worker loops",
        ("serial", "concurrent", "heartbeat"),
        "one task at a time, coroutines at once, the heartbeat's duties",
    ),
    Layer("worker process", ("worker",), "a worker process's life: start-up, signals, its loop, exit"),
    Layer(
        "supervisor parts",
        ("forkserver", "respawn", "orphans", "maintenance", "scheduler", "wakeup", "settings_watch", "systemd"),
        "forking workers, respawn back-off, the pool's duties, wake-ups, settings edits, sd_notify",
    ),
    Layer("supervisor", ("pool",), "keeps the workers at the wanted count, enforces deadlines, shuts down"),
    Layer("interfaces", ("cli", "terminal", "web/", "streamlit"), "the command line, the dashboard, Streamlit"),
    Layer(
        "entry points", ("launch", "__main__", "__init__", "contrib/"), "the `taskq` command, `import taskq`, Django"
    ),
)


def table() -> str:
    """The layers as the docs show them (markdown), top first: each row imports from itself and the rows below."""
    rows = ["| layer | modules | what it holds |", "| --- | --- | --- |"]
    for layer in reversed(LAYERS):
        modules = ", ".join(f"`{name}`" for name in layer.modules)
        rows.append(f"| {layer.name} | {modules} | {layer.owns} |")
    return "\n".join(rows)
