"""Load and validate settings.yaml. Errors name the file, the line and the key.

Precedence for the database URL: --db on the command line, then TASKQ_DATABASE_URL, then the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from taskq.clock import parse_duration
from taskq.engine import DEFAULT_DATABASE_URL
from taskq.model import TaskqError

DEFAULT_SETTINGS_FILE = "settings.yaml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(TaskqError):
    pass


class _NestedValueError(ValueError):
    """A bad value below a top-level key; `where` is its dotted path, for the error's line number."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True)
class Settings:
    database: str = DEFAULT_DATABASE_URL
    workers: int = 2
    imports: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()  # empty: every queue
    queue_limits: Mapping[str, int] = field(default_factory=dict)  # queue -> max_concurrency (mapping form)
    retention_seconds: float | None = 7 * 86400.0  # finished tasks older than this are purged; None keeps all
    schedule: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # validated by the scheduler
    shutdown_grace: float = 30.0
    lease_seconds: float = 30.0
    log_level: str = "INFO"
    dashboard: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _duration_seconds(value: Any) -> float:
    return parse_duration(value).total_seconds()


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(value)


def _queues(value: Any) -> tuple[tuple[str, ...], Mapping[str, int]]:
    """The served queues, as a list (`[api, default]`, `api, default`) or as a mapping whose keys are the
    served queues and whose values may cap them: `{api: {max_concurrency: 2}, default: {}}`."""
    if not isinstance(value, dict):
        return _names(value), {}
    limits: dict[str, int] = {}
    for queue, options in value.items():
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"expected queue names as keys, got {queue!r}")
        options = {} if options is None else options
        if not isinstance(options, dict) or set(options) - {"max_concurrency"}:
            raise _NestedValueError(
                f"queue {queue!r}: expected {{max_concurrency: N}} or nothing, got {options!r}", f"queues.{queue}"
            )
        cap = options.get("max_concurrency")
        if cap is not None:
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise _NestedValueError(
                    f"queue {queue!r}: max_concurrency must be a whole number >= 1, got {cap!r}",
                    f"queues.{queue}.max_concurrency",
                )
            limits[queue] = cap
    return tuple(value), limits


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {value!r}")
    return value


def _database(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError(f"expected a database URL such as sqlite:///taskq.db, got {value!r}")
    return value


def _retention(value: Any) -> float | None:
    if value in (None, False, "forever", "never"):
        return None
    return _duration_seconds(value)


def _log_level(value: Any) -> str:
    level = str(value).upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


# key in the file -> (field name, converter); a tuple of names takes a converter's tuple of values
_FIELDS: dict[str, tuple[str | tuple[str, ...], Any]] = {
    "database": ("database", _database),
    "workers": ("workers", _positive_int),
    "imports": ("imports", _names),
    "queues": (("queues", "queue_limits"), _queues),
    "retention": ("retention_seconds", _retention),
    "schedule": ("schedule", _mapping),
    "shutdown_grace": ("shutdown_grace", _duration_seconds),
    "lease": ("lease_seconds", _duration_seconds),
    "log_level": ("log_level", _log_level),
    "dashboard": ("dashboard", _mapping),
}


def _key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of each key, top-level ones by name and nested ones by dotted path, for errors."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines[prefix + key.value] = key.start_mark.line + 1
                    walk(value, f"{prefix}{key.value}.")

    walk(yaml.compose(text), "")
    return lines


def parse_settings(text: str, path: Path | str = DEFAULT_SETTINGS_FILE) -> Settings:
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}:1: expected a mapping of settings, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        line = lines.get(str(key), 1)
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise SettingsError(f"{path}:{line}: unknown key {key!r} (known keys: {known})")
        field_name, convert = _FIELDS[key]
        try:
            converted = convert(raw)
        except ValueError as error:
            if isinstance(error, _NestedValueError):
                line = lines.get(error.where, line)
            raise SettingsError(f"{path}:{line}: key {key!r}: {error}") from None
        if isinstance(field_name, tuple):
            values.update(zip(field_name, converted, strict=True))
        else:
            values[field_name] = converted
    return Settings(**values, path=Path(path))


def load_settings(path: str | Path | None = None, *, database: str | None = None) -> Settings:
    """Read `path` (default ./settings.yaml when present), then apply TASKQ_DATABASE_URL and `database`."""
    if path is None:
        candidate = Path(DEFAULT_SETTINGS_FILE)
        settings = parse_settings(candidate.read_text(), candidate) if candidate.is_file() else Settings()
    else:
        file = Path(path)
        try:
            text = file.read_text()
        except OSError as error:
            raise SettingsError(f"{file}: cannot read settings: {error.strerror}") from None
        settings = parse_settings(text, file)
    for source, override in (("--db", database), ("TASKQ_DATABASE_URL", os.environ.get("TASKQ_DATABASE_URL"))):
        if override:
            try:
                return replace(settings, database=_database(override))
            except ValueError as error:
                raise SettingsError(f"{source}: {error}") from None
    return settings
