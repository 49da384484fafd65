"""The `taskq` command line: thin click commands over the store; tables for people, --json for scripts."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from taskq import distribution, registry, systemd, terminal, urls
from taskq.api import open_store
from taskq.clock import parse_duration, utc_now
from taskq.distribution import install_hint
from taskq.json_limits import JsonRefused, check_text
from taskq.lifecycle import CANCELLABLE, RETRYABLE
from taskq.logformat import formatter
from taskq.model import TERMINAL_STATUSES, Status, TaskFilter, TaskqError
from taskq.requests import MAX_TASK_ID, parse_request
from taskq.settings import DATABASE, IMPORTS, WORKER_OPTIONS, Setting, Settings, load_settings
from taskq.store import Store

if TYPE_CHECKING:  # rich is imported where a table is printed: scripts using --json do not pay for it
    from rich.console import Console

WAIT_POLL_SECONDS = 0.2
NO_WORKER_HINT_SECONDS = 2.0  # a task still pending this long into `taskq wait` may have no worker to run it
WORKER_ALIVE_SECONDS = 30.0  # workers write their heartbeat row every 10 s
# A task id as the database can hold it: past 2**63 - 1 the driver fails (an OverflowError on SQLite).
TASK_ID = click.IntRange(1, MAX_TASK_ID)
MAX_LIST_LIMIT = 1_000_000  # `taskq list --limit`: more rows than a terminal or a script wants at once


class TaskqGroup(click.Group):
    """Turns taskq and database errors into one readable line and a non-zero exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except TaskqError as error:
            raise click.ClickException(str(error)) from None
        except DBAPIError as error:
            raise click.ClickException(f"database error: {_first_line(error.orig)}") from None
        except SQLAlchemyError as error:
            raise click.ClickException(f"database error: {_first_line(error)}") from None
        except Exception as error:
            # A bug or an environment problem: one line by default, the traceback when asked for.
            if os.environ.get("TASKQ_TRACEBACK"):
                raise
            message = _first_line(error) or "(no message)"
            raise click.ClickException(f"{type(error).__name__}: {message} (TASKQ_TRACEBACK=1 shows where)") from None


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _merge_common(ctx: click.Context, db: str | None, settings_path: str | None, imports: tuple[str, ...]) -> None:
    obj = ctx.ensure_object(dict)
    if db:
        obj["db"] = db
    if settings_path:
        obj["settings"] = settings_path
    obj["imports"] = (*obj.get("imports", ()), *imports)


class SettingValue(click.ParamType):
    """Checks a flag's text with its setting's converter (a usage error, as click's own types give) and
    passes the text on: `load_settings` converts it, so a reload can apply the flags again."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.name = setting.metavar or setting.key

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            self.setting.parse(value, text=True)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


def setting_option(setting: Setting, dest: str | None = None, *, check: bool = True) -> Callable[..., Any]:
    """The click option of a declared setting: flag, metavar and help from taskq/settings.py."""
    assert setting.cli is not None
    shown = setting.default_text()
    default_note = "" if shown is None or setting.cli_everywhere else f" [default: {shown}]"
    return click.option(
        setting.cli,
        dest or setting.key,
        type=SettingValue(setting) if check else None,
        multiple=setting.cli_extends,
        metavar=setting.metavar,
        help=setting.help + default_note,
    )


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--db, --settings and --import, accepted both before and after the subcommand name."""

    @setting_option(DATABASE, "db", check=False)  # checked when the settings load: "--db: expected ..."
    @click.option("--settings", "settings_path", metavar="PATH", help="Settings file (default ./settings.yaml).")
    @setting_option(IMPORTS, "imports", check=False)
    @functools.wraps(command)
    def wrapper(*args: Any, db: str | None, settings_path: str | None, imports: tuple[str, ...], **kwargs: Any) -> Any:
        _merge_common(click.get_current_context(), db, settings_path, imports)
        return command(*args, **kwargs)

    return wrapper


def current_settings(*, tasks_required: bool = False) -> Settings:
    """The settings, with the task modules imported. Commands that run, enqueue or list tasks pass
    `tasks_required` and fail on a module that does not import; the others warn and go on, so that a
    syntax error in one module does not block `taskq list`, `stats` or `cancel`."""
    obj = click.get_current_context().ensure_object(dict)
    if "settings_loaded" not in obj:
        flags = {**obj.get("setting_flags", {}), DATABASE.key: obj.get("db"), IMPORTS.key: obj.get("imports", ())}
        settings = load_settings(obj.get("settings"), cli=flags)
        # App modules import from here and from next to settings.yaml, as with celery, rq and huey.
        registry.add_import_paths([Path.cwd(), *([settings.path.parent] if settings.path else [])])
        if tasks_required:
            registry.import_task_modules(settings.imports)
        else:
            for failure in registry.import_task_modules_tolerantly(settings.imports):
                click.echo(f"warning: {failure}; commands that enqueue or run its tasks will fail", err=True)
        obj["settings_loaded"] = settings
    return obj["settings_loaded"]


def current_store() -> Store:
    obj = click.get_current_context().ensure_object(dict)
    if "store" not in obj:
        obj["store"] = open_store(current_settings().database)
    return obj["store"]


def _json_arg(text: str | None, label: str) -> Any:
    """The JSON text of --args or --kwargs, decoded (its shape is checked with the rest of the request)."""
    if text is None:
        return None
    try:
        check_text(text)  # before decoding: a deeper text could exhaust the stack that decodes it
        return json.loads(text)
    except JsonRefused as refused:
        raise click.BadParameter(f"{label.lstrip('-')} {refused.reason}", param_hint=label) from None
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error.msg} at position {error.pos}", param_hint=label) from None


def _console(*, stderr: bool = False) -> Console:
    return terminal.console(stderr=stderr)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=None, sort_keys=True, default=str))


@click.group(cls=TaskqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@setting_option(DATABASE, "db", check=False)
@click.option("--settings", "settings_path", metavar="PATH", help="Settings file (default ./settings.yaml).")
@setting_option(IMPORTS, "imports", check=False)
@click.version_option(version=distribution.version(), prog_name="taskq")
@click.pass_context
def main(ctx: click.Context, db: str | None, settings_path: str | None, imports: tuple[str, ...]) -> None:
    """taskq: durable background tasks on SQLite or PostgreSQL."""
    _merge_common(ctx, db, settings_path, imports)


@main.command()
@click.argument("name")
@click.option("--args", "args_json", metavar="JSON_ARRAY", help="Positional arguments, e.g. '[1, \"a\"]'.")
@click.option("--kwargs", "kwargs_json", metavar="JSON_OBJECT", help="Keyword arguments, e.g. '{\"n\": 3}'.")
@click.option("--priority", type=int, help="Higher runs first (default: the task's, else 0).")
@click.option("--delay", type=str, metavar="DURATION", help="Run no earlier than this from now (90, 30s, 5m).")
@click.option("--run-after", "run_after", metavar="ISO8601", help="Run no earlier than this time (UTC if no offset).")
@click.option("--dedup-key", "dedup_key", help="At most one active task per key.")
@click.option("--max-retries", "max_retries", type=int)
@click.option("--queue")
@click.option("--timeout", metavar="DURATION", help="Longest a run may take (90, 30s, 5m).")
@click.option("--json", "as_json", is_flag=True, help='Print {"id": N, "deduplicated": bool}.')
@common_options
def enqueue(
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    priority: int | None,
    delay: str | None,
    run_after: str | None,
    dedup_key: str | None,
    max_retries: int | None,
    queue: str | None,
    timeout: str | None,
    as_json: bool,
) -> None:
    """Queue task NAME; prints its id."""
    fields = {
        "name": name,
        "args": _json_arg(args_json, "--args"),
        "kwargs": _json_arg(kwargs_json, "--kwargs"),
        "priority": priority,
        "delay": delay,
        "run_after": run_after,
        "dedup_key": dedup_key,
        "max_retries": max_retries,
        "queue": queue,
        "timeout": timeout,
    }
    request = parse_request({key: value for key, value in fields.items() if value is not None})
    current_settings(tasks_required=True)  # the arguments are checked against the task's signature
    registry.lookup(name)
    result = current_store().enqueue_many([request])[0]  # checked above; the store checks the call
    if as_json:
        _echo_json({"id": result.id, "deduplicated": result.deduplicated})
    else:
        click.echo(result.id)
        if result.deduplicated:
            click.echo(f"deduplicated: task {result.id} with key {dedup_key!r} is already active", err=True)


@main.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True, help="The whole task as JSON, nothing clipped.")
@click.option("--full", is_flag=True, help="Print large args, results and errors whole.")
@common_options
def show(task_id: int, as_json: bool, full: bool) -> None:
    """Show one task, with its children's counts by status."""
    store = current_store()
    task = store.require(task_id)
    children = store.children_counts(task_id) if task.children_total else None
    if as_json:
        data = task.to_dict()
        data["children_by_status"] = children or {}
        _echo_json(data)
        return
    terminal.show_task(_console(), task, children, full=full)


@main.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--name")
@click.option("--queue")
@click.option("--parent", "parent_id", type=TASK_ID, help="Only children of this task.")
@click.option("--limit", type=click.IntRange(1, MAX_LIST_LIMIT), default=50, show_default=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help=f"Sizes of args, kwargs and result and error_line instead of {', '.join(terminal.LARGE_FIELDS)}.",
)
@click.option("--full", is_flag=True, help="With --json: the large fields whole.")
@common_options
def list_tasks(
    status: str | None,
    name: str | None,
    queue: str | None,
    parent_id: int | None,
    limit: int,
    as_json: bool,
    full: bool,
) -> None:
    """List tasks, newest first, one line each."""
    _refuse_blank(name=name, queue=queue)
    store = current_store()
    where = TaskFilter(status=None if status is None else Status(status), name=name, queue=queue, parent_id=parent_id)
    if as_json and full:
        _echo_json([task.to_dict() for task in store.page(where, limit=limit).tasks])
        return
    # Summaries otherwise: the sizes of args, kwargs and result, not the values (one can be 50 MB).
    rows = store.summaries(where, limit=limit).tasks
    if as_json:
        _echo_json([task.to_dict() for task in rows])
    elif not rows:
        click.echo("no tasks" + (" match" if status or name or queue or parent_id else " yet"), err=True)
    else:
        _console().print(terminal.tasks_table(rows, terminal.width()), highlight=False, markup=False)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@common_options
def stats(as_json: bool) -> None:
    """Count tasks per status."""
    counts = current_store().stats()
    if as_json:
        _echo_json(counts)
        return
    _console().print(terminal.stats_table(counts))


def _bulk_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--all", "every", is_flag=True, help="Every task matching --status/--name/--queue."),
            click.option("--name", help="With --all: only tasks of this name."),
            click.option("--queue", help="With --all: only tasks in this queue."),
            click.option("--yes", "-y", is_flag=True, help="With --all: do not ask for confirmation."),
        ]
    ):
        command = option(command)
    return command


def _bulk_target(
    task_id: int | None,
    every: bool,
    statuses: tuple[str, ...],
    name: str | None,
    queue: str | None,
    *,
    default: str,
) -> list[TaskFilter] | None:
    """None for a single task; for --all, one filter per status. Filters without --all are a usage error."""
    if task_id is not None and every:
        raise click.UsageError("give a task ID or --all, not both")
    if task_id is None and not every:
        raise click.UsageError("give a task ID, or --all (with --status/--name/--queue filters)")
    if task_id is not None and (name or queue or statuses):
        raise click.UsageError("--status, --name and --queue filter --all; a task ID needs no filter")
    if not every:
        return None
    _refuse_blank(name=name, queue=queue)
    return [
        TaskFilter(status=Status(status), name=name, queue=queue) for status in dict.fromkeys(statuses or (default,))
    ]


def _refuse_blank(**options: str | None) -> None:
    """--name "" would otherwise read as "any name" somewhere along the way: refuse it, as the web API does."""
    for option, value in options.items():
        if value is not None and not value.strip():
            raise click.BadParameter("is blank: leave it out to match every task", param_hint=f"--{option}")


def _confirm_bulk(verb: str, count: int, which: list[TaskFilter], yes: bool) -> bool:
    """Ask on a terminal (as rq and celery purge do); scripts and --yes go ahead. False: nothing to do."""
    statuses = "/".join(f.status.value for f in which if f.status is not None)
    first = which[0]
    described = f"{count} {statuses} task{'s' if count != 1 else ''}"
    described += "".join(
        f" {label} {value!r}" for label, value in (("named", first.name), ("in queue", first.queue)) if value
    )
    if count == 0:
        click.echo(f"no {statuses} tasks match; nothing to {verb}")
        return False
    if not yes and _interactive():
        click.confirm(f"{verb.capitalize()} {described}?", abort=True)
    return True


def _run_bulk(
    verb: str,
    done: str,
    action: Callable[..., Any],
    store: Store,
    which: list[TaskFilter],
    yes: bool,
    *,
    skipped_means: str,
) -> None:
    """Count, confirm, then run `action` (store.bulk_retry / bulk_cancel) once per status filter."""
    if _confirm_bulk(verb, sum(store.count(f) for f in which), which, yes):
        results = [action(where=f) for f in which]
        changed, skipped = sum(r.changed for r in results), sum(r.skipped for r in results)
        click.echo(f"{done} {changed} tasks" + (f" ({skipped} {skipped_means})" if skipped else ""))


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@main.command()
@click.argument("task_id", type=TASK_ID, required=False)
@_bulk_filter_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in CANCELLABLE]),
    help="With --all: which active tasks (default pending; repeatable).",
)
@common_options
def cancel(
    task_id: int | None, every: bool, name: str | None, queue: str | None, yes: bool, statuses: tuple[str, ...]
) -> None:
    """Cancel a task (at once when pending, cooperatively when running), or --all matching tasks."""
    which = _bulk_target(task_id, every, statuses, name, queue, default=Status.PENDING.value)
    store = current_store()
    if which is None:
        assert task_id is not None
        status = store.cancel(task_id)
        if status is Status.CANCELLED:
            click.echo(f"task {task_id}: cancelled")
        else:
            click.echo(f"task {task_id}: cancellation requested (it is {status.value})")
        return
    _run_bulk("cancel", "cancelled", store.bulk_cancel, store, which, yes, skipped_means="finished meanwhile")


@main.command()
@click.argument("task_id", type=TASK_ID, required=False)
@_bulk_filter_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in RETRYABLE]),
    help="With --all: which finished tasks (default failed; repeatable).",
)
@common_options
def retry(
    task_id: int | None, every: bool, name: str | None, queue: str | None, yes: bool, statuses: tuple[str, ...]
) -> None:
    """Run a failed or cancelled task again, or --all matching tasks (like `rq requeue --all`)."""
    which = _bulk_target(task_id, every, statuses, name, queue, default=Status.FAILED.value)
    store = current_store()
    if which is None:
        assert task_id is not None
        store.retry(task_id)
        click.echo(f"task {task_id}: pending")
        return
    _run_bulk(
        "retry",
        "retried",
        store.bulk_retry,
        store,
        which,
        yes,
        skipped_means="skipped: changed meanwhile or dedup key held",
    )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@common_options
def queues(as_json: bool) -> None:
    """Count tasks per queue and status (delayed: pending tasks not due yet)."""
    counts = current_store().queue_counts()
    if as_json:
        _echo_json(counts)
        return
    if not counts:
        click.echo("no tasks yet", err=True)
        return
    _console().print(terminal.queues_table(counts), highlight=False, markup=False)


@main.command("workers")
@click.option("--alive-within", "alive_within", default="60s", show_default=True, metavar="DURATION")
@click.option("--json", "as_json", is_flag=True)
@common_options
def list_workers(alive_within: str, as_json: bool) -> None:
    """Live worker processes on every host: current task (as of its last heartbeat, every 10 s), tasks done."""
    try:
        within = parse_duration(alive_within).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--alive-within") from None
    store = current_store()
    found = store.list_workers(alive_within=within)
    if as_json:
        _echo_json([info.to_dict() for info in found])
        return
    if not found:
        click.echo(f"no live workers (none reported in the last {alive_within}); start them with `taskq worker`")
        return
    running = {i.current_task_id: store.get(i.current_task_id) for i in found if i.current_task_id is not None}
    table = terminal.workers_table(found, running, utc_now())
    _console().print(table, highlight=False, markup=False)


@main.command()
@click.option("--older-than", "older_than", required=True, metavar="DURATION", help="e.g. 7d, 12h.")
@common_options
def purge(older_than: str) -> None:
    """Delete finished tasks (and their children) finished longer ago than DURATION."""
    try:
        age = parse_duration(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    click.echo(f"purged {current_store().purge(age)} tasks")


@main.command()
@click.argument("task_id", type=TASK_ID)
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="Give up after this long.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no error text; only the exit code and status.")
@common_options
def wait(task_id: int, timeout: float | None, quiet: bool) -> None:
    """Wait for a task to finish (a worker must be running): exit 0 completed, 1 failed or cancelled, 2 timed out.

    On a terminal a progress bar follows the task; a failed task's error is printed to stderr."""
    store = current_store()
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    hinted = False
    bar = None if quiet or not sys.stderr.isatty() else terminal.WaitBar()
    try:
        while True:
            task = store.require(task_id)
            if bar is not None:
                bar.update(task)
            if task.status in TERMINAL_STATUSES:
                break
            if deadline is not None and time.monotonic() >= deadline:
                if bar is not None:
                    bar.stop()
                click.echo(f"timed out; task {task_id} is {task.status.value}", err=True)
                sys.exit(2)
            if not hinted and task.status is Status.PENDING and time.monotonic() - started > NO_WORKER_HINT_SECONDS:
                hinted = True
                if not store.list_workers(alive_within=WORKER_ALIVE_SECONDS):
                    message = "no live worker: start one with `taskq worker` (in another terminal) to run this task"
                    (bar.console.print if bar is not None else functools.partial(click.echo, err=True))(message)
            time.sleep(WAIT_POLL_SECONDS)
    finally:
        if bar is not None:
            bar.stop()
    click.echo(task.status.value)
    if task.status is not Status.COMPLETED and not quiet:
        reason = task.error.rstrip().splitlines()[-1] if task.error else "(no error recorded)"
        click.echo(f"task {task_id} {task.status.value}: {reason}", err=True)
    sys.exit(0 if task.status is Status.COMPLETED else 1)


@main.command("tasks")
@click.option("--json", "as_json", is_flag=True)
@common_options
def list_registered(as_json: bool) -> None:
    """List the registered tasks (built-ins and those of --import / imports:) with their options."""
    current_settings(tasks_required=True)
    specs = registry.registered()
    if as_json:
        _echo_json([_spec_dict(spec) for spec in specs])
        return
    _console().print(terminal.registered_table(specs))


def _spec_dict(spec: registry.TaskSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "signature": None if spec.signature is None else str(spec.signature),
        "queue": spec.queue,
        "priority": spec.priority,
        "max_retries": spec.max_retries,
        "timeout": spec.timeout,
        "max_concurrency": spec.max_concurrency,
        "then": spec.then,
        "takes_context": spec.takes_context,
    }


def worker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of `taskq worker`: one per declared setting with a flag (taskq/settings.py)."""
    for setting in reversed(WORKER_OPTIONS):
        command = setting_option(setting)(command)
    return command


@main.command()
@worker_options
@common_options
def worker(**flags: str | None) -> None:
    """Run the worker pool (supervisor + worker processes) until SIGTERM/SIGINT."""
    from taskq.pool import run_pool

    systemd.take_notify_environment()  # before any worker starts: they must not inherit NOTIFY_SOCKET
    click.get_current_context().ensure_object(dict)["setting_flags"] = flags
    settings = current_settings(tasks_required=True)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter(settings.log_format, "supervisor"))
    logging.basicConfig(level=settings.log_level, handlers=[stream])
    logging.getLogger("alembic").setLevel(logging.WARNING)
    open_store(settings.database).dispose()  # upgrade the schema, or fail here in one line if the database is unusable
    sys.exit(run_pool(settings))


@main.command("systemd-unit")
@click.option("--name", default="taskq", show_default=True, help="Unit name; also its StateDirectory /var/lib/NAME.")
@click.option("--user", help="User= (default: the user running this command; use a dedicated one).")
@click.option("--working-directory", "working_directory", type=click.Path(file_okay=False), help="Default: here.")
@common_options
def systemd_unit(name: str, user: str | None, working_directory: str | None) -> None:
    """Print a systemd unit that runs this install's worker pool (venv, working directory, user)."""
    settings = current_settings()
    unit = systemd.unit_for_this_install(
        name=name,
        user=user,
        working_directory=Path(working_directory or Path.cwd()),
        settings=settings.path,
        database=settings.database,
    )
    click.echo(systemd.render_unit(unit), nl=False)
    if unit.user == "root":
        click.echo("note: User=root; a dedicated user is safer (useradd --system ...; then --user NAME)", err=True)


@main.group()
def db() -> None:
    """Schema management."""


@db.command()
@common_options
def upgrade() -> None:
    """Create or upgrade the schema to the latest version (safe to run repeatedly)."""
    from taskq.engine import create_database_engine, head_revision, upgrade_schema

    settings = current_settings()
    engine = create_database_engine(settings.database)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    click.echo(f"{urls.describe(settings.database)} at revision {head_revision()} ({utc_now():%Y-%m-%d %H:%M:%S} UTC)")


@db.command("alembic-ini")
def alembic_ini_path() -> None:
    """Print the path of taskq's alembic.ini, for plain Alembic: alembic -c "$(taskq db alembic-ini)" ..."""
    from taskq.engine import alembic_ini

    click.echo(alembic_ini())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Beyond loopback only with dashboard.token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@common_options
def dashboard(host: str, port: int) -> None:
    """Serve the web dashboard and its JSON API."""
    from taskq.web.security import check_bind, dashboard_token

    settings = current_settings()
    check_bind(host, dashboard_token(settings))
    try:
        import uvicorn

        from taskq.web.app import create_app
    except ImportError as error:
        raise click.ClickException(f"the dashboard needs the web extra ({install_hint('web')}): {error}") from None
    app = create_app(current_store(), settings)
    shown = f"[{host}]" if ":" in host else host
    database = urls.describe(settings.database)
    click.echo(f"taskq dashboard on http://{shown}:{port}/ (Ctrl+C stops it), database {database}")
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)


if __name__ == "__main__":
    main()
