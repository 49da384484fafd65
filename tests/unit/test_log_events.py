"""Log events (taskq/events.py) and the two log formats (taskq/logformat.py): what a record carries, the
text and JSON lines, and the one table of events, checked against the code (AST) and the docs page that shows it."""

from __future__ import annotations

import ast
import functools
import importlib.util
import io
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from logevents import recorded

from taskq import events
from taskq.events import EVENTS, FREE_TEXT, RESERVED, log_event
from taskq.logformat import JsonFormatter, formatter
from taskq.pool import Pool
from taskq.settings import LOG_FORMAT, WORKER_OPTIONS, SettingsError, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "taskq"
LOGGER_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}

log = logging.getLogger("taskq.test")


# -- a record carries the event; the text form is the line people read ---------------------------------


def test_a_record_carries_the_event_and_its_fields_and_the_text_line(caplog) -> None:
    caplog.set_level(logging.INFO, "taskq")
    log_event(log, logging.INFO, "task_completed", task_id=7, name="t.add", attempt=1, seconds=0.002)
    (record,) = caplog.records
    assert record.event == "task_completed"  # type: ignore[attr-defined]
    assert record.fields == {"task_id": 7, "name": "t.add", "attempt": 1, "seconds": 0.002}  # type: ignore[attr-defined]
    assert record.getMessage() == "task_completed task_id=7 name=t.add attempt=1 seconds=0.002"
    assert record.funcName == "test_a_record_carries_the_event_and_its_fields_and_the_text_line"  # the caller's


def test_free_text_comes_last_and_an_absent_one_is_left_out(caplog) -> None:
    caplog.set_level(logging.DEBUG, "taskq")
    log_event(log, logging.INFO, "task_failed", task_id=1, name="t", attempt=2, seconds=0.5, error="ValueError: x")
    log_event(log, logging.INFO, "task_completed", task_id=2, name="t", attempt=1, seconds=0.5, error=None)
    log_event(log, logging.DEBUG, "task_traceback", task_id=1, attempt=2, traceback="Traceback\n  line")
    log_event(log, logging.ERROR, "settings_invalid", error="s.yaml:3: bad", detail="keeping the last good settings")
    log_event(log, logging.INFO, "workers_restarting", settings=["queues", "lease"])
    assert [record.getMessage() for record in caplog.records] == [
        "task_failed task_id=1 name=t attempt=2 seconds=0.5: ValueError: x",
        "task_completed task_id=2 name=t attempt=1 seconds=0.5",
        "task_traceback task_id=1 attempt=2:\nTraceback\n  line",
        "settings_invalid s.yaml:3: bad; keeping the last good settings",
        "workers_restarting settings=queues,lease",
    ]
    assert "error" not in recorded(caplog.records, "task_completed")[0]


def test_a_disabled_level_renders_nothing(caplog) -> None:
    caplog.set_level(logging.INFO, "taskq")

    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("rendered although DEBUG is off")

    log_event(log, logging.DEBUG, "task_started", task_id=Exploding())
    assert caplog.records == []


# -- the JSON format ----------------------------------------------------------------------------------


def _line(record_logger: logging.Logger, emit) -> dict:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json", "worker-3"))
    record_logger.addHandler(handler)
    record_logger.setLevel(logging.DEBUG)
    record_logger.propagate = False
    try:
        emit()
    finally:
        record_logger.removeHandler(handler)
    (text,) = stream.getvalue().splitlines()  # one line, whatever the newlines in its fields
    return json.loads(text)


def test_a_json_line_has_time_level_logger_process_event_message_and_the_fields() -> None:
    logger = logging.getLogger("taskq.test.json")
    line = _line(logger, lambda: log_event(logger, logging.INFO, "worker_spawned", name="worker-1", pid=42))
    assert line.pop("time").endswith("Z")
    assert line == {
        "level": "INFO",
        "logger": "taskq.test.json",
        "process": {"name": "worker-3", "pid": os.getpid()},
        "event": "worker_spawned",
        "message": "worker_spawned name=worker-1 pid=42",
        "name": "worker-1",
        "pid": 42,  # a field: the emitting process's pid is under "process"
    }


def test_a_json_line_is_utc_iso_8601_and_carries_the_exception() -> None:
    logger = logging.getLogger("taskq.test.json")

    def emit() -> None:
        try:
            raise RuntimeError("the disk\nis full")
        except RuntimeError:
            log_event(logger, logging.ERROR, "heartbeat_error", exc_info=True, worker_id="w", duty="LeaseRenewal")

    line = _line(logger, emit)
    parsed = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs(parsed.timestamp() - datetime.now().timestamp()) < 60
    assert line["event"] == "heartbeat_error" and line["duty"] == "LeaseRenewal" and line["level"] == "ERROR"
    assert line["exception"].startswith("Traceback (most recent call last)")
    assert line["exception"].endswith("RuntimeError: the disk\nis full")


def test_a_record_from_other_code_is_a_json_line_without_an_event() -> None:
    logger = logging.getLogger("myapp.tasks")
    line = _line(logger, lambda: logger.warning("resized %d images", 3))
    assert (line["event"], line["message"], line["logger"]) == (None, "resized 3 images", "myapp.tasks")


def test_a_field_that_json_cannot_write_is_written_as_text() -> None:
    logger = logging.getLogger("taskq.test.json")
    when = datetime(2026, 12, 6, 8, 0)
    line = _line(logger, lambda: log_event(logger, logging.INFO, "schedule_created", name="n", run_after=when))
    assert line["run_after"] == str(when)


def test_the_text_format_keeps_the_process_prefix() -> None:
    record = logging.LogRecord("taskq.pool", logging.INFO, __file__, 1, "pool_ready workers=2", None, None)
    assert (
        formatter("text", "supervisor")
        .format(record)
        .endswith(f" INFO [supervisor pid {os.getpid()}] pool_ready workers=2")
    )
    assert isinstance(formatter("json", "supervisor"), JsonFormatter)


# -- the setting --------------------------------------------------------------------------------------


def test_log_format_is_a_setting_with_a_worker_flag_and_a_checked_value(tmp_path: Path) -> None:
    assert parse_settings("").log_format == "text"
    assert parse_settings("log_format: json\n").log_format == "json"
    with pytest.raises(SettingsError, match=r"settings.yaml:1: key 'log_format': expected one of text, json"):
        parse_settings("log_format: yaml\n")
    assert LOG_FORMAT in WORKER_OPTIONS and LOG_FORMAT.cli == "--log-format"
    file = tmp_path / "s.yaml"
    file.write_text("log_format: text\n")
    assert load_settings(file, cli={"log_format": "json"}).log_format == "json"  # the flag wins


def test_a_reload_switches_the_supervisors_format_and_restarts_the_workers(tmp_path: Path, monkeypatch) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("log_format: text\n")
    pool = Pool.__new__(Pool)  # no processes, no database: enough for its reload
    retired: list[str] = []
    pool.settings = load_settings(file)
    pool.forkserver = None
    pool.retention = SimpleNamespace(retention_seconds=None)  # type: ignore[assignment]
    pool.scheduler = SimpleNamespace(update=lambda schedules: None)  # type: ignore[assignment]
    pool.live_handles = lambda: [SimpleNamespace(config=SimpleNamespace(name="worker-1"))]  # type: ignore[method-assign]
    pool.retire = lambda handle: retired.append(handle.config.name)  # type: ignore[method-assign]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("text", "supervisor"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])  # the supervisor's own, as cli.worker sets it
    monkeypatch.setattr(logging.getLogger("taskq"), "level", logging.INFO)
    file.write_text("log_format: json\n")
    pool.reload_settings()
    assert retired == ["worker-1"] and pool.worker_config("worker-1").log_format == "json"
    last = json.loads(stream.getvalue().splitlines()[-1])
    assert (last["event"], last["process"]["name"]) == ("settings_reloaded", "supervisor")


# -- one table of events, checked against the code and the README ----------------------------------------


@functools.cache
def _package_nodes() -> tuple[tuple[Path, tuple[ast.AST, ...]], ...]:
    """Every node of every module of taskq, by file: parsed once for the tests below (a third of a second each)."""
    return tuple(
        (path, tuple(ast.walk(ast.parse(path.read_text(), str(path))))) for path in sorted(PACKAGE.rglob("*.py"))
    )


def _event_calls() -> list[tuple[str, ast.Call]]:
    found = []
    for path, nodes in _package_nodes():
        for node in nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "log_event":
                found.append((str(path.relative_to(REPO)), node))
    return found


def _names(node: ast.expr) -> list[str] | None:
    """The event names an argument can be: a literal, or either branch of `a if cond else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _names(node.body), _names(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def test_every_event_the_code_logs_is_declared_with_the_fields_it_passes() -> None:
    calls = _event_calls()
    assert len(calls) >= 50
    dynamic = []
    for where, call in calls:
        names = _names(call.args[2])
        if names is None:
            dynamic.append(where)
            continue
        passed = {keyword.arg for keyword in call.keywords if keyword.arg not in (None, "exc_info")}
        for name in names:
            assert name in EVENTS, f"{where}:{call.lineno}: {name!r} is not declared in taskq/events.py"
            assert passed <= set(EVENTS[name].fields), f"{where}:{call.lineno}: {name} passes {passed}"
    # The one computed name: a task's outcome event (executor.Outcome.event), declared like the others.
    assert dynamic == ["taskq/worker_kernel.py"]


def test_every_declared_event_is_used_somewhere_in_taskq() -> None:
    constants = set()
    for path, nodes in _package_nodes():
        if path.name != "events.py":
            constants |= {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert sorted(set(EVENTS) - constants) == []


def test_no_log_call_in_taskq_bypasses_log_event() -> None:
    direct = []
    for path, nodes in _package_nodes():
        for node in nodes:
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOGGER_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "log"
            ):
                direct.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert direct == []


def test_no_field_shadows_a_key_of_the_json_line() -> None:
    assert not {field for event in EVENTS.values() for field in event.fields} & set(RESERVED)
    assert set(FREE_TEXT) <= {field for event in EVENTS.values() for field in event.fields}


def test_the_docs_page_shows_the_declared_table() -> None:
    """docs/reference/log-events.md marks where the table goes; the docs hook fills it from EVENTS at build."""
    page = (REPO / "docs" / "reference" / "log-events.md").read_text()
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    built = hooks.on_page_markdown(page, None, None, None)
    assert "<!-- log-events-table -->" in page and events.table() in built
