"""The store's SQL as a reviewer reads it: every statement the store names (module-level statements of
taskq/store/ and taskq/dialect.py, and the statement builders below with the arguments that give each
shape), compiled for SQLite and for PostgreSQL (psycopg) into one file, tests/sql/statements.sql.
tests/unit/test_sql_snapshot.py fails with a diff when the compiled SQL and the file differ, so a change
to the SQL shows up in review as a change to that file.

Refresh it after a deliberate change (from the checkout):

    python tests/support/sql_snapshot.py --write

Compiled against the dialects only (no server). Constants (statuses, 100.0, false, LIMIT 500) are shown
as literals; `:name` is a value bound per call, `__[POSTCOMPILE_name]` a list bound per call. The SQLite
driver path's statements (taskq/store/hot.py) are shown as the exact text given to sqlite3, `?` binds.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import pkgutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import CompoundSelect, Delete, Insert, Select, TextClause, Update, create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Dialect

SNAPSHOT = Path(__file__).resolve().parents[1] / "sql" / "statements.sql"
REFRESH = "python tests/support/sql_snapshot.py --write"
STATEMENT_TYPES = (Select, CompoundSelect, Insert, Update, Delete, TextClause)
_CONSTANT_TYPES = (str, int, float, bool, type(None))
WIDTH = 120  # longer lines are folded at a space, the rest indented: a change then shows as the line it is on
# Modules whose statements run on one dialect only.
_ONLY_ON = {"hot": ("sqlite",)}
_WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)  # any fixed time: a builder's argument, never shown


def _readable(base: type[Any]) -> Dialect:
    """`base` whose compiler writes a bind that holds a plain constant (not one given per call) as a literal."""

    class Compiler(base.statement_compiler):  # type: ignore[name-defined,misc]
        def visit_bindparam(self, bindparam: Any, **kw: Any) -> str:
            constant = not bindparam.required and bindparam.callable is None and not bindparam.expanding
            if constant and type(bindparam.value) in _CONSTANT_TYPES:
                kw["literal_binds"] = True
            return str(super().visit_bindparam(bindparam, **kw))

    class Readable(base):  # type: ignore[misc,valid-type]
        statement_compiler = Compiler

    return Readable(paramstyle="named")  # type: ignore[no-any-return]


DIALECTS: dict[str, Dialect] = {"sqlite": _readable(sqlite.dialect), "postgresql": _readable(psycopg.dialect)}


def _builders() -> Iterator[tuple[str, Callable[[], Any], tuple[str, ...]]]:
    """(name, build, dialects) of each statement a function builds: one entry per shape it can take."""
    from taskq import dialect
    from taskq.model import ClaimLimits, Status
    from taskq.schema import schedules, tasks
    from taskq.store import claim, metrics, outcomes, workflow

    both = ("sqlite", "postgresql")
    capped = claim._capped(ClaimLimits(by_name={"app.slow": 2}, by_queue={"api": 3}), None)
    for by_queue in (False, True):
        for caps, shown in ((None, "None"), (capped, "names and queues")):
            for avoiding in (False, True):
                yield (
                    f"claim._claim_statement(by_queue={by_queue}, capped={shown}, avoiding={avoiding})",
                    lambda b=by_queue, c=caps, a=avoiding: claim._claim_statement(b, c, a),
                    both,
                )
    yield (
        "claim._capped_candidates(queues=None, full_names={}, full_queues={}, avoiding=False)",
        lambda: claim._capped_candidates(None, set(), set(), False),
        both,
    )
    yield (
        "claim._capped_candidates(queues=[api, default], full_names={app.slow}, full_queues={api}, avoiding=True)",
        lambda: claim._capped_candidates(["api", "default"], {"app.slow"}, {"api"}, True),
        both,
    )
    for builder in (outcomes._complete_statement, outcomes._cancelled_statement, outcomes._failing_row_statement):
        for owner in ((False, False), (True, False), (False, True), (True, True)):
            label = f"outcomes.{builder.__name__}(check_worker={owner[0]}, check_attempt={owner[1]})"
            yield label, lambda b=builder, o=owner: b(o), both
    for status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
        yield (
            f"workflow._count_children_statement({status.value})",
            lambda s=status: workflow._count_children_statement(s),
            both,
        )
    yield (
        "metrics._finished_rows_query(after=None, until=None, limit=None)",
        lambda: metrics._finished_rows_query(None, None, None),
        both,
    )
    yield (
        "metrics._finished_rows_query(after=T, until=T, limit=20000)",
        lambda: metrics._finished_rows_query(_WHEN, _WHEN, 20_000),
        both,
    )
    yield "metrics._counts_query(watermark=T)", lambda: metrics._counts_query(_WHEN), both
    for kind, shown in ((dialect.SqliteDialect, "sqlite"), (dialect.PostgresDialect, "postgresql")):
        yield (
            f"dialect.{kind.__name__}.insert_unless_active(tasks)",
            lambda k=kind: k().insert_unless_active(tasks),
            (shown,),
        )
        yield (
            f"dialect.{kind.__name__}.insert_if_absent(schedules)",
            lambda k=kind: k().insert_if_absent(schedules),
            (shown,),
        )


# The functions above build statements; test_sql_snapshot.py checks that every builder in taskq/store/ is one.
BUILDER_NAMES = frozenset(
    {
        "claim._claim_statement",
        "claim._capped_candidates",
        "outcomes._complete_statement",
        "outcomes._cancelled_statement",
        "outcomes._failing_row_statement",
        "workflow._count_children_statement",
        "metrics._finished_rows_query",
        "metrics._counts_query",
    }
)


def _modules() -> list[str]:
    import taskq.store

    names = sorted(f"taskq.store.{module.name}" for module in pkgutil.iter_modules(taskq.store.__path__))
    return [*names, "taskq.dialect"]


def named_statements() -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    """(module.NAME, statement, dialects) for each statement a module of the store assigns to a name of its own (not
    one it imports), in the order of the source."""
    for module_name in _modules():
        module = importlib.import_module(module_name)
        tree = ast.parse(Path(module.__file__ or "").read_text())
        short = module_name.removeprefix("taskq.").removeprefix("store.")
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(getattr(module, target.id, None), STATEMENT_TYPES):
                    yield f"{short}.{target.id}", getattr(module, target.id), _ONLY_ON.get(short, tuple(DIALECTS))


def statement_builders() -> set[str]:
    """module.function of each function in taskq/store/ that builds a statement: cached (functools.cache),
    named *_statement or *_query, or annotated to return one."""
    found = set()
    for module_name in _modules():
        module = importlib.import_module(module_name)
        short = module_name.removeprefix("taskq.").removeprefix("store.")
        for node in ast.parse(Path(module.__file__ or "").read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            cached = any("cache" in ast.unparse(decorator) for decorator in node.decorator_list)
            returns = ast.unparse(node.returns) if node.returns is not None else ""
            typed = returns.startswith(("Select", "Insert", "Update", "Delete", "Executable"))
            if cached or typed or node.name.endswith(("_statement", "_query")):
                found.add(f"{short}.{node.name}")
    return found


def _fold(text: str, prefix: str = "") -> str:
    """Lines of `text` longer than WIDTH folded at spaces; `prefix` starts every line (a comment's "-- ")."""
    folded = []
    for line in text.strip().splitlines():
        folded += textwrap.wrap(
            line.rstrip(),
            WIDTH,
            initial_indent=prefix,
            subsequent_indent=prefix + "    ",
            break_long_words=False,
            break_on_hyphens=False,
        ) or [prefix.rstrip()]
    return "\n".join(folded)


def _compile(statement: Any, dialect: str) -> str:
    return _fold(str(statement.compile(dialect=DIALECTS[dialect])))


def _block(name: str, statement: Any, dialects: tuple[str, ...]) -> list[str]:
    compiled = {dialect: _compile(statement, dialect) for dialect in dialects}
    lines = [f"-- ==== {name}"]
    if len(set(compiled.values())) == 1:
        lines += [f"-- {' and '.join(dialects)}", f"{compiled[dialects[0]]};"]
    else:
        for dialect, text in compiled.items():
            lines += [f"-- {dialect}", f"{text};"]
    return [*lines, ""]


def _driver_blocks() -> list[str]:
    """The SQLite driver path's statements as the text sqlite3 runs (taskq/store/hot.py)."""
    from taskq.store.claim import ClaimPlans
    from taskq.store.hot import _OPTIONAL_COLUMNS, SqliteHotPath

    hot = SqliteHotPath(create_engine("sqlite://"))
    # The plain INSERT's column lists at their two ends: no optional column (nearly every enqueue), all of them.
    prepared: dict[str, Any] = {
        f"hot.PlainInsert columns {optional!r}": hot.plain_insert._plan(optional)
        for optional in ((), _OPTIONAL_COLUMNS)
    }
    prepared |= {
        f"claim.ClaimPlans.hot_statements()[{key!r}]": value for key, value in ClaimPlans(hot).hot_statements().items()
    }
    lines = []
    for name, compiled in prepared.items():
        binds = _fold(f"sqlite driver, ? binds in order: {', '.join(compiled.order)}", "-- ")
        lines += [f"-- ==== {name}", binds, f"{_fold(compiled.sql)};", ""]
    return lines


def render() -> str:
    header = [line.rstrip() for line in __doc__.strip().splitlines()] if __doc__ else []
    lines = [*(f"-- {line}".rstrip() for line in header), ""]
    lines += ["-- ======== Statements named in the store's modules", ""]
    for name, statement, dialects in named_statements():
        lines += _block(name, statement, dialects)
    lines += ["-- ======== Statements the store's builders make, one per shape", ""]
    for name, build, dialects in _builders():
        lines += _block(name, build(), dialects)
    lines += ["-- ======== The SQLite driver path (taskq/store/hot.py)", ""]
    lines += _driver_blocks()
    return "\n".join(lines).rstrip() + "\n"


def difference(expected: str, actual: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(SNAPSHOT), "compiled now"
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare or rewrite tests/sql/statements.sql.")
    parser.add_argument("--write", action="store_true", help="write the SQL compiled now to the file")
    args = parser.parse_args(argv)
    actual = render()
    if args.write:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual)
        print(f"wrote {SNAPSHOT}")
        return 0
    diff = difference(SNAPSHOT.read_text() if SNAPSHOT.exists() else "", actual)
    sys.stdout.write(diff or "the snapshot is current\n")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
