from __future__ import annotations

from pathlib import Path

import pytest

from taskq.settings import SettingsError, load_settings, parse_settings


def test_shipped_settings_file_works_as_is() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "settings.yaml")
    assert settings.database == f"sqlite:///{root / 'taskq.db'}" and settings.workers >= 1  # next to the file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers: 2\nwokers: 3\n", "f.yaml:2: unknown key 'wokers'"),
        ("workers: [1,\n", "f.yaml:2: invalid YAML"),
        ("workers: -1\n", "f.yaml:1: key 'workers'"),
        ("retention: 7x\n", "invalid duration '7x'"),
        ("database: taskq.db\n", "expected a database URL"),
        ("- 1\n", "expected a mapping"),
        (
            "workers: 2\nqueues:\n  api:\n    max_concurrency: 0\n",
            "f.yaml:4: key 'queues.api.max_concurrency': expected a whole number >= 1",
        ),
        ("queues:\n  api: {max: 2}\n", "f.yaml:2: key 'queues.api.max': unknown key 'max'"),
        ("queues: {api: 3}\n", "f.yaml:1: key 'queues.api': expected the queue's options"),
    ],
)
def test_bad_settings_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[")):
        parse_settings(text, "f.yaml")


def test_database_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("database: sqlite:///from-file.db\nretention: forever\nqueues: a, b\n")
    monkeypatch.delenv("TASKQ_DATABASE_URL", raising=False)
    settings = load_settings(file)
    assert settings.database == f"sqlite:///{tmp_path / 'from-file.db'}"  # relative to the file's folder
    assert settings.retention_seconds is None and settings.queues == ("a", "b")
    monkeypatch.setenv("TASKQ_DATABASE_URL", "sqlite:///from-env.db")
    assert load_settings(file).database == "sqlite:///from-env.db"
    assert load_settings(file, database="sqlite:///from-cli.db").database == "sqlite:///from-cli.db"


def test_queues_as_a_mapping_serve_its_keys_and_cap_those_with_max_concurrency() -> None:
    settings = parse_settings("queues:\n  api: {max_concurrency: 2}\n  default: {}\n  batch:\n")
    assert settings.queues == ("api", "default", "batch") and settings.queue_limits == {"api": 2}
    assert parse_settings("queues: [a, b]\n").queue_limits == {}
