"""Every setting of taskq, declared once, and the loading of settings.yaml.

A `Setting` names its key in settings.yaml, its converter, its default, its command-line flag and its
environment variable (if any), and how a running pool takes a change (`Apply`). From that one table follow
the `Settings` object, the options of `taskq worker` (cli.py generates them), the precedence (`resolve`:
command line > environment > file > default) and the pool's reload decision (`changed_settings`).

Errors name the file, the line and the key, nested keys included:
`settings.yaml:14: key 'queues.api.max_concurrency': expected a whole number >= 1, got 0`.

This module imports only clock, logformat, model and urls, so the engine, the store and the worker take their defaults
from here instead of repeating them.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskq import urls
from taskq.clock import parse_duration
from taskq.logformat import LOG_FORMATS
from taskq.model import TaskqError

DEFAULT_SETTINGS_FILE = "settings.yaml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_TOKEN_LENGTH = 16  # dashboard.token guards writes over the network: refuse short, guessable ones
QUEUE_OPTIONS = ("max_concurrency",)


class SettingsError(TaskqError):
    pass


class SettingValueError(ValueError):
    """A bad value; `path` names the nested key inside the setting where the problem is, e.g.
    ('api', 'max_concurrency') under `queues`, so that the error can point at its line."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class Apply(str, enum.Enum):
    """How a running pool takes a changed value (an edit of settings.yaml, or SIGHUP)."""

    LIVE = "live"  # at once, nothing restarts
    RESTART_WORKERS = "restart_workers"  # each worker finishes its task and is replaced (graceful)
    RESTART_POOL = "restart_pool"  # read once at start: the pool keeps the old value until it is restarted
    DASHBOARD = "dashboard"  # read by `taskq dashboard` when it starts; the pool does not use it


# -- converters: the raw value (YAML, or the text of a flag or variable) -> the value, or ValueError ------


def _whole(minimum: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"expected a whole number >= {minimum}, got {value!r}")
        return value

    return convert


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _number(minimum: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ValueError(f"expected a number >= {minimum:g}, got {value!r}")
        return float(value)

    return convert


def _int_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text  # the converter names the bad value


def _float_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _duration_seconds(value: Any) -> float:
    return parse_duration(value).total_seconds()


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _mapping(value: Any) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {value!r}")
    return dict(value)


def _database(value: Any) -> str:
    # The value is never quoted back: a URL mistyped without its scheme may still hold a password.
    if not isinstance(value, str) or "://" not in value or urls.parse(value) is None:
        shown = urls.UNPARSABLE if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValueError(f"expected a database URL such as sqlite:///taskq.db, got {shown}")
    return urls.normalize(value)


def _retention(value: Any) -> float | None:
    if value in (None, False, "forever", "never"):
        return None
    return _duration_seconds(value)


def _log_level(value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def _log_format(value: Any) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return str(value)


def _queues(value: Any) -> tuple[tuple[str, ...], dict[str, int]]:
    """A list (`[api, default]`, or `api, default` as text), or a mapping of queue -> options
    (`{api: {max_concurrency: 2}, default: {}}`) -> (served queue names, max_concurrency per queue)."""
    if not isinstance(value, Mapping):
        return _names(value), {}
    limits: dict[str, int] = {}
    for name, options in value.items():
        if not isinstance(name, str) or not name.strip():
            raise SettingValueError(f"expected a queue name, got {name!r}", (str(name),))
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise SettingValueError(
                f"expected the queue's options such as {{max_concurrency: 2}}, got {options!r}", (name,)
            )
        unknown = sorted(str(key) for key in options if key not in QUEUE_OPTIONS)
        if unknown:
            known = ", ".join(QUEUE_OPTIONS)
            raise SettingValueError(f"unknown key {unknown[0]!r} (known keys: {known})", (name, unknown[0]))
        if "max_concurrency" in options:
            try:
                limits[name] = _whole(1)(options["max_concurrency"])
            except ValueError as error:
                raise SettingValueError(str(error), (name, "max_concurrency")) from None
    return tuple(value), limits


def dashboard_section(value: Any) -> dict[str, Any]:
    """The `dashboard:` section: only `token`, a string of at least MIN_TOKEN_LENGTH characters."""
    section = _mapping(value)
    unknown = sorted(str(key) for key in section if key != "token")
    if unknown:
        raise SettingValueError(f"unknown key {unknown[0]!r} (known keys: token)", (unknown[0],))
    token = section.get("token")
    if token is not None and (not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_LENGTH):
        raise SettingValueError(f"expected a string of at least {MIN_TOKEN_LENGTH} characters", ("token",))
    return section


# -- the declarations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str  # in settings.yaml; the flag and the variable below set the same setting
    convert: Callable[[Any], Any]  # raw value -> value; ValueError (SettingValueError for a nested key)
    default: Any  # a tuple with one item per attribute when `attrs` has several
    apply: Apply
    help: str  # one line; the flag's help text
    attrs: tuple[str, ...] = ()  # the Settings attributes it fills; default (key,)
    cli: str | None = None  # command-line flag
    cli_everywhere: bool = False  # accepted by every command (cli.common_options); else by `taskq worker` only
    cli_extends: bool = False  # the flag's values are added to the file's instead of replacing them
    env: str | None = None  # environment variable
    in_file: bool = True  # False: a command-line option only (settings.yaml refuses the key)
    from_text: Callable[[str], Any] = str  # the text of a flag or a variable -> what `convert` takes
    metavar: str | None = None
    show: Callable[[Any], str] = str  # a value as messages and logs show it (the database URL's password masked)
    file_edit_wins: bool = False  # a later edit of the key in the file replaces the flag's value (a reload)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.attrs or (self.key,)

    def parse(self, raw: Any, *, text: bool = False) -> Any:
        """The value from a raw one (from the file, or `text` from a flag or a variable); ValueError."""
        if text:
            raw = tuple(self.from_text(item) for item in raw) if isinstance(raw, tuple) else self.from_text(raw)
        return self.convert(raw)

    def default_text(self) -> str | None:
        value = self.default[0] if len(self.fields) > 1 else self.default
        if value is None or value == () or value == {}:
            return None
        return f"{value:g}" if isinstance(value, float) else str(value)


DATABASE = Setting(
    "database",
    _database,
    "sqlite:///taskq.db",
    Apply.RESTART_POOL,
    "Database URL (overrides settings and TASKQ_DATABASE_URL).",
    cli="--db",
    cli_everywhere=True,
    env="TASKQ_DATABASE_URL",
    metavar="URL",
    show=urls.mask,
)
WORKERS = Setting(
    "workers",
    _whole(0),
    2,
    Apply.LIVE,
    "Worker processes to start with (overrides settings.yaml; a later edit of `workers:` rescales).",
    cli="--workers",
    from_text=_int_text,
    metavar="INTEGER",
    file_edit_wins=True,  # --workers sets the count the pool starts with; an edit is the newer intent
)
IMPORTS = Setting(
    "imports",
    _names,
    (),
    Apply.RESTART_WORKERS,
    "Import task definitions.",
    cli="--import",
    cli_everywhere=True,
    cli_extends=True,
    metavar="MODULE",
)
QUEUES = Setting(
    "queues",
    _queues,
    ((), {}),  # every queue, no per-queue limit
    Apply.RESTART_WORKERS,
    "Comma-separated queues to serve (overrides settings.yaml; default: every queue).",
    attrs=("queues", "queue_limits"),
    cli="--queues",
    metavar="TEXT",
)
CONCURRENCY = Setting(
    "concurrency",
    _whole(1),
    1,
    Apply.RESTART_WORKERS,
    "Tasks each worker runs at once; above 1, async tasks share its event loop (overrides settings.yaml).",
    cli="--concurrency",
    from_text=_int_text,
    metavar="N",
)
RETENTION = Setting(
    "retention",
    _retention,
    7 * 86400.0,  # finished tasks older than this are purged; None keeps them all
    Apply.LIVE,
    "Finished tasks older than this are purged.",
    attrs=("retention_seconds",),
)
SCHEDULE = Setting(
    "schedule",
    _mapping,  # each entry is checked by taskq.scheduler.parse_schedules: a bad one is left out, not fatal
    {},
    Apply.LIVE,
    "Periodic tasks.",
)
SHUTDOWN_GRACE = Setting(
    "shutdown_grace",
    _duration_seconds,
    30.0,
    Apply.LIVE,
    "How long running tasks may finish after SIGTERM, a worker restart or a supervisor's death, then are released.",
)
LEASE = Setting(
    "lease",
    _duration_seconds,
    30.0,  # renewed every third of it
    Apply.RESTART_WORKERS,
    "Lease of a running task; a crashed worker's task is retried after it expires.",
    attrs=("lease_seconds",),
)
LOG_LEVEL = Setting("log_level", _log_level, "INFO", Apply.RESTART_WORKERS, "Log level of the pool and its workers.")
LOG_FORMAT = Setting(
    "log_format",
    _log_format,
    "text",
    Apply.RESTART_WORKERS,  # the supervisor switches at once; each worker formats as it was started
    "Log lines as text (for people) or json (one object a line, for log pipelines).",
    cli="--log-format",
    metavar="text|json",
)
DASHBOARD = Setting("dashboard", dashboard_section, {}, Apply.DASHBOARD, "Dashboard options (token).")
PREFETCH = Setting(
    "prefetch",
    _whole(1),
    # A 10,000-no-op drain with 2 workers: 4.3-4.7k/s at 8, 4.9-5.3k/s at 32, 5.2k/s at 64 (same run). Exact
    # accounting makes a big batch safe: a dead worker's unstarted tasks go straight back, uncounted.
    32,
    Apply.RESTART_WORKERS,
    "Most tasks a worker claims per round trip; the batch grows only while tasks are quick.",
    cli="--prefetch",
    in_file=False,
    from_text=_int_text,
    metavar="INTEGER",
)
MAX_TASKS = Setting(
    "max_tasks_per_worker",
    _optional(_whole(1)),
    None,
    Apply.RESTART_WORKERS,
    "Restart a worker cleanly after this many tasks.",
    attrs=("max_tasks",),
    cli="--max-tasks-per-worker",
    in_file=False,
    from_text=_int_text,
    metavar="INTEGER",
)
MAX_MEMORY = Setting(
    "max_memory_per_worker",
    _optional(_number(1)),
    None,
    Apply.RESTART_WORKERS,
    "Restart a worker cleanly once its resident memory exceeds this.",
    attrs=("max_memory_mb",),
    cli="--max-memory-per-worker",
    in_file=False,
    from_text=_float_text,
    metavar="MB",
)
CANCEL_GRACE = Setting(
    "cancel_grace",
    _duration_seconds,
    10.0,
    Apply.LIVE,
    "Kill a task this long after it was cancelled if it has not stopped.",
    cli="--cancel-grace",
    in_file=False,
    metavar="SECONDS",
)

SETTINGS: tuple[Setting, ...] = (
    DATABASE,
    WORKERS,
    IMPORTS,
    QUEUES,
    CONCURRENCY,
    RETENTION,
    SCHEDULE,
    SHUTDOWN_GRACE,
    LEASE,
    LOG_LEVEL,
    LOG_FORMAT,
    DASHBOARD,
    PREFETCH,
    MAX_TASKS,
    MAX_MEMORY,
    CANCEL_GRACE,
)
BY_KEY: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}
FILE_KEYS: tuple[str, ...] = tuple(setting.key for setting in SETTINGS if setting.in_file)
WORKER_OPTIONS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.cli is not None and not s.cli_everywhere)


def _field(setting: Setting, index: int = 0) -> Any:
    value = setting.default[index] if len(setting.fields) > 1 else setting.default
    if isinstance(value, Mapping):
        return field(default_factory=lambda: dict(value))
    return field(default=value)


@dataclass(frozen=True)
class Sources:
    """What each layer gave, by setting key, already converted; `resolve` combines them."""

    file: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    cli: Mapping[str, Any] = field(default_factory=dict)
    cli_text: Mapping[str, Any] = field(default_factory=dict)  # the flags as typed: a reload applies them again
    path: Path | None = None
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)  # (key, nested key...) -> line


@dataclass(frozen=True)
class Settings:
    """The settings in force. Each attribute's default comes from its declaration above."""

    database: str = _field(DATABASE)
    workers: int = _field(WORKERS)
    imports: tuple[str, ...] = _field(IMPORTS)
    queues: tuple[str, ...] = _field(QUEUES, 0)  # empty: every queue
    queue_limits: Mapping[str, int] = _field(QUEUES, 1)  # queue -> most of its tasks a worker runs at once
    concurrency: int = _field(CONCURRENCY)
    retention_seconds: float | None = _field(RETENTION)
    schedule: Mapping[str, Mapping[str, Any]] = _field(SCHEDULE)  # entries checked by the scheduler
    shutdown_grace: float = _field(SHUTDOWN_GRACE)
    lease_seconds: float = _field(LEASE)
    log_level: str = _field(LOG_LEVEL)
    log_format: str = _field(LOG_FORMAT)
    dashboard: Mapping[str, Any] = _field(DASHBOARD)
    prefetch: int = _field(PREFETCH)
    max_tasks: int | None = _field(MAX_TASKS)
    max_memory_mb: float | None = _field(MAX_MEMORY)
    cancel_grace: float = _field(CANCEL_GRACE)
    path: Path | None = None
    sources: Sources = field(default_factory=Sources, compare=False, repr=False)

    def where(self, *keys: str) -> str:
        """'file:line' of the deepest of these nested keys the file has ('file' if none, '' without a file)."""
        return _where(self.path, self.sources.lines, tuple(str(key) for key in keys))

    def error_text(self, keys: tuple[str, ...], message: str) -> str:
        """A problem with a (nested) key, worded as the load errors are."""
        where = self.where(*keys)
        return f"{where + ': ' if where else ''}key {'.'.join(keys)!r}: {message}"


# -- reading the layers and combining them -----------------------------------------------------------


def _where(path: Path | str | None, lines: Mapping[tuple[str, ...], int], keys: tuple[str, ...]) -> str:
    if path is None:
        return ""
    for depth in range(len(keys), 0, -1):
        if keys[:depth] in lines:
            return f"{path}:{lines[keys[:depth]]}"
    return str(path)


def _key_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Line (1-based) of every mapping key, nested ones included, for error messages."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                path = (*prefix, key.value)
                lines[path] = key.start_mark.line + 1
                lines.update(_key_lines(value, path))
    return lines


def _read_file(text: str, path: Path | str) -> Sources:
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively: the file, not this process, is at fault
        raise SettingsError(f"{path}: invalid YAML: nested too deeply to read") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}:1: expected a mapping of settings, got {type(data).__name__}")
    lines = _key_lines(node) if node is not None else {}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        setting = BY_KEY.get(key) if isinstance(key, str) else None
        if setting is None or not setting.in_file:
            where = _where(path, lines, (str(key),))
            raise SettingsError(f"{where}: unknown key {key!r} (known keys: {', '.join(sorted(FILE_KEYS))})")
        try:
            values[key] = setting.parse(raw)
        except ValueError as error:
            keys = (key, *getattr(error, "path", ()))
            raise SettingsError(f"{_where(path, lines, keys)}: key {'.'.join(keys)!r}: {error}") from None
    if DATABASE.key in values:
        # A relative SQLite path in the file names a file next to it, wherever the command runs from.
        values[DATABASE.key] = urls.anchored(values[DATABASE.key], Path(path).absolute().parent)
    return Sources(file=values, path=Path(path), lines=lines)


def _read_text_layer(given: Mapping[str, Any], name: Callable[[Setting], str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, text in given.items():
        setting = BY_KEY[key]
        try:
            values[key] = setting.parse(text, text=True)
        except ValueError as error:
            raise SettingsError(f"{name(setting)}: {error}") from None
    return values


def _read_environment(environ: Mapping[str, str] | None, overridden: Collection[str] = ()) -> dict[str, Any]:
    """The variables set (those of `overridden` settings are not even checked: a flag replaces them)."""
    environ = os.environ if environ is None else environ
    given = {s.key: environ[s.env] for s in SETTINGS if s.env and environ.get(s.env) and s.key not in overridden}
    return _read_text_layer(given, lambda setting: setting.env)


def read_sources(
    path: str | Path | None = None, *, cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Sources:
    """Read the file (default ./settings.yaml when present), the variables and the flags given as text
    (setting key -> text, a tuple of texts for a repeated flag; None or empty = not given)."""
    if path is None:
        candidate = Path(DEFAULT_SETTINGS_FILE)
        file = _read_file(candidate.read_text(), candidate) if candidate.is_file() else Sources()
    else:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise SettingsError(f"{path}: cannot read settings: {error.strerror}") from None
        file = _read_file(text, path)
    cli_text = {key: value for key, value in (cli or {}).items() if value is not None and value != ()}
    return Sources(
        file=file.file,
        env=_read_environment(environ, overridden=cli_text),
        cli=_read_text_layer(cli_text, lambda setting: setting.cli),
        cli_text=cli_text,
        path=file.path,
        lines=file.lines,
    )


def _pick(setting: Setting, sources: Sources) -> Any:
    """The one precedence rule: command line > environment > file > default."""
    base = sources.env.get(setting.key, sources.file.get(setting.key, setting.default))
    if setting.key not in sources.cli:
        return base
    if setting.cli_extends:
        return (*base, *(item for item in sources.cli[setting.key] if item not in base))
    return sources.cli[setting.key]


def resolve(sources: Sources) -> Settings:
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = _pick(setting, sources)
        given = (sources.cli, sources.env, sources.file)
        if setting is DATABASE and sources.path is not None and not any(setting.key in layer for layer in given):
            # The default taskq.db belongs to the project too: next to its settings file, as a path in it would.
            value = urls.anchored(value, sources.path.absolute().parent)
        if len(setting.fields) > 1:
            values.update(zip(setting.fields, value, strict=True))
        else:
            values[setting.fields[0]] = value
    return Settings(**values, path=sources.path, sources=sources)


def environment_value(setting: Setting, environ: Mapping[str, str] | None = None) -> Any:
    """The value without a settings file or a command line (library use): the variable, else the default."""
    return _pick(setting, Sources(env=_read_environment(environ)))


def parse_settings(text: str, path: Path | str = DEFAULT_SETTINGS_FILE) -> Settings:
    """The settings in `text` alone (no variables, no flags)."""
    return resolve(_read_file(text, path))


def load_settings(
    path: str | Path | None = None, *, database: str | None = None, cli: Mapping[str, Any] | None = None
) -> Settings:
    """Read `path` (default ./settings.yaml when present), then apply the variables and the flags
    (`cli`: setting key -> text as typed; `database` is --db)."""
    given = {**(cli or {}), **({"database": database} if database else {})}
    return resolve(read_sources(path, cli=given))


def reread_settings(current: Settings) -> tuple[Settings, list[Setting]]:
    """Read the file of `current` again with the same flags. A changed `file_edit_wins` setting drops its
    flag; returns the new settings and the settings whose flag was dropped."""
    cli_text = dict(current.sources.cli_text)
    new = load_settings(current.path, cli=cli_text)
    dropped = [
        setting
        for setting in SETTINGS
        if setting.file_edit_wins
        and setting.key in cli_text
        and _pick(setting, _without_cli(new.sources)) != _pick(setting, _without_cli(current.sources))
    ]
    if dropped:
        for setting in dropped:
            del cli_text[setting.key]
        new = load_settings(current.path, cli=cli_text)
    return new, dropped


def _without_cli(sources: Sources) -> Sources:
    return Sources(file=sources.file, env=sources.env, path=sources.path, lines=sources.lines)


def changed_settings(old: Settings, new: Settings) -> list[Setting]:
    return [setting for setting in SETTINGS if any(getattr(old, a) != getattr(new, a) for a in setting.fields)]
