"""MkDocs hook: the settings and log events references are generated from their one declaration in the code.

A page writes `<!-- settings-table -->` where the table goes; the hook replaces it at build time with one row
per `Setting` in `taskq.settings.SETTINGS` (key, default, flag, environment variable, how a running pool
takes a change, the help line). A new setting, a changed default or a renamed flag shows up on the next
build without anyone editing the page; an `Apply` value this hook cannot word fails the build, so a new
kind of reload is never rendered blank. `<!-- log-events-table -->` becomes `taskq.events.table()`, one row
per declared event, and `<!-- layers-table -->` becomes `taskq.layers.table()`, the layers the import test
enforces.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- settings-table -->"
EVENTS_MARKER = "<!-- log-events-table -->"
LAYERS_MARKER = "<!-- layers-table -->"

# How a running pool takes a change, by `Apply` member name: worded for readers, not for the code.
APPLY_WORDS = {
    "LIVE": "live: at once, nothing restarts",
    "RESTART_WORKERS": "restarts the workers gracefully",
    "RESTART_POOL": "read at start: restart the pool",
    "DASHBOARD": "read by `taskq dashboard` at start",
}


def _use_checkout() -> None:
    # The checkout being documented, not whichever taskq another install put first on the path.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _settings_module() -> Any:
    _use_checkout()
    from taskq import settings

    return settings


def log_events_table() -> str:
    _use_checkout()
    from taskq import events

    return str(events.table())


def layers_table() -> str:
    _use_checkout()
    from taskq import layers

    return layers.table()


def _is_duration(setting: Any) -> bool:
    """Whether the setting takes a duration (`30s`, `5m`, `7d`): its converter reads "1m" as 60 seconds."""
    try:
        return bool(setting.convert("1m") == 60.0)
    except (ValueError, TypeError):
        return False


def _default(setting: Any) -> str:
    text = setting.default_text()
    if text is None:
        return "—"
    if _is_duration(setting):
        seconds = float(text)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"`{seconds / size:g}{unit}`"
        return f"`{seconds:g}s`"
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    settings = _settings_module()
    missing = sorted(member.name for member in settings.Apply if member.name not in APPLY_WORDS)
    if missing:
        raise ValueError(f"docs/hooks.py: word the Apply value(s) {', '.join(missing)} in APPLY_WORDS")
    rows = [
        "| key | default | command line | environment | a change in a running pool | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for setting in settings.SETTINGS:
        key = f"`{setting.key}`" if setting.in_file else f"`{setting.key}` (command line only)"
        if setting.cli is None:
            flag = "—"
        else:
            flag = f"`{setting.cli} {setting.metavar or ''}`".replace(" `", "`")
            flag += ", every command" if setting.cli_everywhere else ", `taskq worker`"
            if setting.cli_extends:
                flag += " (adds to the file's)"
        env = f"`{setting.env}`" if setting.env else "—"
        rows.append(
            f"| {key} | {_default(setting)} | {_cell(flag)} | {env} | {APPLY_WORDS[setting.apply.name]} "
            f"| {_cell(setting.help)} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, settings_table())
    if EVENTS_MARKER in markdown:
        markdown = markdown.replace(EVENTS_MARKER, log_events_table())
    if LAYERS_MARKER in markdown:
        markdown = markdown.replace(LAYERS_MARKER, layers_table())
    return markdown
