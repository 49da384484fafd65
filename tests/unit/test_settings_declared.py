"""The settings table in taskq/settings.py and what follows from it: the Settings object, the precedence,
the errors (file:line, nested keys included), the `taskq worker` options and the pool's reload decision.
No processes, no database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner
from logevents import recorded

from taskq import cli
from taskq.pool import Pool
from taskq.scheduler import parse_schedules
from taskq.settings import (
    CONCURRENCY,
    DATABASE,
    IMPORTS,
    LEASE,
    PREFETCH,
    QUEUES,
    SETTINGS,
    WORKER_OPTIONS,
    WORKERS,
    Apply,
    Settings,
    SettingsError,
    changed_settings,
    environment_value,
    load_settings,
    parse_settings,
    reread_settings,
)
from taskq.store import DEFAULT_LEASE_SECONDS
from taskq.worker_config import WorkerConfig

NOT_SETTINGS = {"path", "sources"}
WORKER_ONLY = {"name", "wake_fd", "status_fd"}
# Live settings the supervisor enforces: a worker keeps the values it started with, for when it is orphaned.
SUPERVISOR_COPIES = {"shutdown_grace", "cancel_grace"}


@pytest.fixture(autouse=True)
def _no_database_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE.env or "", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "s.yaml"
    file.write_text(text)
    return file


# -- the table and the Settings object ----------------------------------------------------------------


def test_each_settings_attribute_is_declared_once_with_its_default() -> None:
    declared = [attr for setting in SETTINGS for attr in setting.fields]
    assert len(declared) == len(set(declared))
    attributes = {f.name for f in dataclasses.fields(Settings)} - NOT_SETTINGS
    assert attributes == set(declared)
    plain = Settings()
    for setting in SETTINGS:
        values = tuple(getattr(plain, attr) for attr in setting.fields)
        assert values == (setting.default if len(setting.fields) > 1 else (setting.default,)), setting.key


def test_other_modules_take_their_defaults_from_the_table() -> None:
    config = WorkerConfig(name="w", database="sqlite://")
    assert (config.lease_seconds, config.prefetch, config.concurrency) == (LEASE.default, PREFETCH.default, 1)
    assert config.queue_limits == {} and LEASE.default == DEFAULT_LEASE_SECONDS


def test_every_setting_a_worker_takes_restarts_workers_and_reaches_its_config() -> None:
    """The pool restarts workers for exactly the settings that end up in WorkerConfig (database aside:
    it takes a restart of the whole pool)."""
    config_fields = {f.name for f in dataclasses.fields(WorkerConfig)} - WORKER_ONLY - SUPERVISOR_COPIES - {"database"}
    live = {attr for s in SETTINGS if s.apply is Apply.LIVE for attr in s.fields}
    assert live >= SUPERVISOR_COPIES
    restarting = {attr for s in SETTINGS if s.apply is Apply.RESTART_WORKERS for attr in s.fields}
    assert config_fields == restarting
    changed = Settings(
        queues=("api",),
        queue_limits={"api": 2},
        concurrency=4,
        imports=("m",),
        lease_seconds=5.0,
        prefetch=3,
        max_tasks=9,
        max_memory_mb=100.0,
        log_level="DEBUG",
    )
    config = Pool.worker_config(SimpleNamespace(settings=changed), "worker-1")  # type: ignore[arg-type]
    for attr in config_fields:
        value = getattr(changed, attr)
        expected = list(value) if isinstance(value, tuple) else value
        assert getattr(config, attr) == expected, attr
    assert WorkerConfig(**json.loads(config.to_json())) == config  # how a worker receives it


# -- precedence -------------------------------------------------------------------------------------------


def test_precedence_is_flag_then_variable_then_file_then_default(tmp_path: Path, monkeypatch) -> None:
    file = write(tmp_path, "database: sqlite:///file.db\nworkers: 3\nimports: [a]\n")
    settings = load_settings(file)
    assert (settings.database, settings.workers, settings.concurrency) == (f"sqlite:///{tmp_path / 'file.db'}", 3, 1)
    monkeypatch.setenv("TASKQ_DATABASE_URL", "sqlite:///env.db")
    assert load_settings(file).database == "sqlite:///env.db"
    flags = {"database": "sqlite:///flag.db", "workers": "5", "imports": ("b", "a"), "concurrency": "2"}
    settings = load_settings(file, cli=flags)
    assert (settings.database, settings.workers, settings.concurrency) == ("sqlite:///flag.db", 5, 2)
    assert settings.imports == ("a", "b")  # --import adds to the file's modules
    assert environment_value(DATABASE) == "sqlite:///env.db"
    monkeypatch.setenv("TASKQ_DATABASE_URL", "not a url")
    assert load_settings(file, database="sqlite:///flag.db").database == "sqlite:///flag.db"  # never read


def test_environment_value_without_the_variable_is_the_default() -> None:
    assert environment_value(DATABASE, {}) == DATABASE.default
    with pytest.raises(SettingsError, match=r"^TASKQ_DATABASE_URL: expected a database URL"):
        environment_value(DATABASE, {"TASKQ_DATABASE_URL": "taskq.db"})


def test_queues_take_a_list_or_a_mapping_with_limits_and_the_flag_replaces_both(tmp_path: Path) -> None:
    assert parse_settings("queues: [api, default]\n").queues == ("api", "default")
    settings = parse_settings("queues: {api: {max_concurrency: 2}, default: {}, bulk:}\n")
    assert settings.queues == ("api", "default", "bulk") and settings.queue_limits == {"api": 2}
    file = write(tmp_path, "queues:\n  api: {max_concurrency: 2}\n")
    flagged = load_settings(file, cli={"queues": "x, y"})
    assert flagged.queues == ("x", "y") and flagged.queue_limits == {}


def test_a_file_edit_of_workers_replaces_the_flag_but_other_flags_stay(tmp_path: Path) -> None:
    file = write(tmp_path, "workers: 3\nqueues: [a]\n")
    start = load_settings(file, cli={"workers": "1", "queues": "b"})
    assert (start.workers, start.queues) == (1, ("b",))
    file.write_text("workers: 3\nqueues: [c]\nretention: 1d\n")
    same, dropped = reread_settings(start)
    assert (same.workers, same.queues, dropped) == (1, ("b",), [])
    file.write_text("workers: 4\nqueues: [c]\n")
    edited, dropped = reread_settings(same)
    assert (edited.workers, edited.queues, dropped) == (4, ("b",), [WORKERS])
    file.write_text("workers: 5\n")
    assert reread_settings(edited)[0].workers == 5  # the flag stays dropped


def test_changed_settings_name_what_a_reload_must_do() -> None:
    old = Settings()
    new = Settings(workers=5, queue_limits={"api": 1}, concurrency=2, database="sqlite:///other.db")
    changed = changed_settings(old, new)
    assert [s.key for s in changed] == ["database", "workers", "queues", "concurrency"]
    assert [s.apply for s in changed] == [Apply.RESTART_POOL, Apply.LIVE, Apply.RESTART_WORKERS, Apply.RESTART_WORKERS]


# -- errors name the file, the line and the (nested) key ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers: -1\n", "f.yaml:1: key 'workers': expected a whole number >= 0, got -1"),
        ("workers: true\n", "f.yaml:1: key 'workers': expected a whole number >= 0, got True"),
        ("log_level: INFO\nconcurrency: 0\n", "f.yaml:2: key 'concurrency': expected a whole number >= 1, got 0"),
        ("imports: [a, 3]\n", "f.yaml:1: key 'imports': expected a list of names, got ['a', 3]"),
        ("queues: 7\n", "f.yaml:1: key 'queues': expected a list of names, got 7"),
        ("retention: 7x\n", "f.yaml:1: key 'retention': invalid duration '7x'"),
        ("shutdown_grace: -1\n", "f.yaml:1: key 'shutdown_grace': duration must not be negative"),
        ("lease: soon\n", "f.yaml:1: key 'lease': invalid duration 'soon'"),
        ("log_level: loud\n", "f.yaml:1: key 'log_level': expected one of DEBUG, INFO, WARNING, ERROR, got 'loud'"),
        ("database: taskq.db\n", "f.yaml:1: key 'database': expected a database URL"),
        ("schedule: [1]\n", "f.yaml:1: key 'schedule': expected a mapping, got [1]"),
        ("dashboard: token\n", "f.yaml:1: key 'dashboard': expected a mapping, got 'token'"),
        ("prefetch: 8\n", "f.yaml:1: unknown key 'prefetch' (known keys: concurrency, dashboard, database,"),
    ],
)
def test_each_converter_error_names_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings(text, "f.yaml")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "workers: 1\nqueues:\n  api:\n    max_concurrency: 0\n",
            "f.yaml:4: key 'queues.api.max_concurrency': expected a whole number >= 1, got 0",
        ),
        (
            "queues:\n  api: {max_concurrency: 2}\n  bulk:\n    max_concurency: 2\n",
            "f.yaml:4: key 'queues.bulk.max_concurency': unknown key 'max_concurency' (known keys: max_concurrency)",
        ),
        ("queues:\n  api: 2\n", "f.yaml:2: key 'queues.api': expected the queue's options such as"),
        ("dashboard:\n  tokn: x\n", "f.yaml:2: key 'dashboard.tokn': unknown key 'tokn' (known keys: token)"),
        (
            "workers: 1\ndashboard:\n  token: short\n",
            "f.yaml:3: key 'dashboard.token': expected a string of at least 16 characters",
        ),
    ],
)
def test_nested_errors_point_at_the_nested_key(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings(text, "f.yaml")
    assert str(raised.value).startswith(message)


def test_flag_and_variable_errors_name_the_flag_and_the_variable(monkeypatch) -> None:
    with pytest.raises(SettingsError, match=r"^--concurrency: expected a whole number >= 1, got 'many'$"):
        load_settings(cli={"concurrency": "many"})
    monkeypatch.setenv("TASKQ_DATABASE_URL", "taskq.db")
    with pytest.raises(SettingsError, match=r"^TASKQ_DATABASE_URL: expected a database URL"):
        load_settings()


def test_schedule_entry_errors_name_the_line_of_the_bad_key() -> None:
    settings = parse_settings(
        "workers: 1\nschedule:\n  good: {task: taskq.echo, every: 1h}\n  bad:\n    task: taskq.echo\n"
        "    every: 10 parsecs\n  odd: {task: taskq.echo, every: 1h, colour: red}\n",
        "f.yaml",
    )
    valid, errors = parse_schedules(settings.schedule, locate=settings.where)
    assert [schedule.name for schedule in valid] == ["good"]
    assert errors[0].startswith("f.yaml:6: schedule 'bad': every: invalid duration '10 parsecs'")
    assert errors[1].startswith("f.yaml:7: schedule 'odd': unknown key(s) colour")
    assert parse_schedules(settings.schedule)[1][0].startswith("schedule 'bad': every:")  # no file: as before


# -- the `taskq worker` command ------------------------------------------------------------------------------


def _options(command: click.Command) -> dict[str, click.Option]:
    return {param.opts[0]: param for param in command.params if isinstance(param, click.Option)}


def test_the_worker_command_has_one_option_per_declared_flag() -> None:
    options = _options(cli.worker)
    common = {DATABASE.cli, IMPORTS.cli, "--settings", "--help"}
    assert set(options) - common == {setting.cli for setting in WORKER_OPTIONS}
    for setting in WORKER_OPTIONS:
        option = options[setting.cli or ""]
        assert option.name == setting.key and setting.help in (option.help or "")
    for setting, name in ((DATABASE, "db"), (IMPORTS, "imports")):
        assert _options(cli.worker)[setting.cli or ""].name == name
        assert _options(cli.main)[setting.cli or ""].name == name
    assert CONCURRENCY in WORKER_OPTIONS and QUEUES in WORKER_OPTIONS


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--workers", "-1", "expected a whole number >= 0, got -1"),
        ("--concurrency", "0", "expected a whole number >= 1, got 0"),
        ("--prefetch", "lots", "expected a whole number >= 1, got 'lots'"),
        ("--cancel-grace", "soon", "invalid duration 'soon'"),
        ("--max-memory-per-worker", "0.5", "expected a number >= 1, got 0.5"),
    ],
)
def test_a_bad_worker_flag_is_a_usage_error(flag: str, value: str, message: str) -> None:
    result = CliRunner().invoke(cli.main, ["worker", flag, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}': {message}" in result.output


def test_the_worker_command_passes_its_flags_to_the_pool(tmp_path: Path, monkeypatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("taskq.pool.run_pool", lambda settings: seen.setdefault("settings", settings) and 0)
    write(tmp_path, "queues: {api: {max_concurrency: 2}}\nworkers: 3\n")
    args = ["--settings", "s.yaml", "--db", f"sqlite:///{tmp_path / 't.db'}", "worker", "--concurrency", "4"]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    settings: Settings = seen["settings"]
    assert (settings.concurrency, settings.workers, settings.queue_limits) == (4, 3, {"api": 2})
    assert settings.sources.cli_text == {"concurrency": "4", "database": f"sqlite:///{tmp_path / 't.db'}"}


def _pool_on(settings: Settings) -> tuple[Pool, list[str]]:
    """A Pool with no processes and no database: enough for its reload decision."""
    pool = Pool.__new__(Pool)
    retired: list[str] = []
    pool.settings = settings
    pool.forkserver = None
    pool.retention = SimpleNamespace(retention_seconds=None)  # type: ignore[assignment]
    pool.scheduler = SimpleNamespace(update=lambda schedules: None)  # type: ignore[assignment]
    pool.live_handles = lambda: [SimpleNamespace(config=SimpleNamespace(name="worker-1"))]  # type: ignore[method-assign]
    pool.retire = lambda handle: retired.append(handle.config.name)  # type: ignore[method-assign]
    return pool, retired


def test_a_reload_restarts_workers_only_for_their_settings_and_keeps_the_database(tmp_path: Path, caplog) -> None:
    file = write(tmp_path, "database: sqlite:///a.db\nretention: 1d\n")
    pool, retired = _pool_on(load_settings(file))
    file.write_text("database: sqlite:///b.db\nretention: 2d\n")
    pool.reload_settings()
    kept = f"sqlite:///{tmp_path / 'a.db'}"
    assert pool.settings.database == kept and pool.settings.retention_seconds == 2 * 86400.0
    assert retired == []
    assert [fields["key"] for fields in recorded(caplog.records, "setting_needs_pool_restart")] == ["database"]
    file.write_text("database: sqlite:///a.db\nretention: 2d\nqueues: {api: {max_concurrency: 2}}\nconcurrency: 3\n")
    pool.reload_settings()
    assert (pool.settings.concurrency, pool.settings.queue_limits) == (3, {"api": 2})
    assert retired == ["worker-1"]
    assert recorded(caplog.records, "workers_restarting") == [{"settings": ["queues", "concurrency"]}]
