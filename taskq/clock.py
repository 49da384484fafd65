"""UTC time helpers: every timestamp taskq stores or compares is timezone-aware UTC."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already (that is how taskq stores them on SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_duration(text: str | float | int) -> timedelta:
    """'90', '90s', '5m', '6h', '7d', '1h30m' -> timedelta. Raises ValueError naming the bad text."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return _seconds(text, float(text))
    raw = str(text).strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        if seconds < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return _seconds(text, seconds)
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(raw):
        if raw[position : match.start()].strip():
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if position == 0 or raw[position:].strip():
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 6h, 7d, 1h30m)")
    return _seconds(text, total)


def _seconds(text: str | float | int, seconds: float) -> timedelta:
    """float('nan') and '1e300' parse as numbers; a timedelta holds neither (ValueError, OverflowError)."""
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number: {text!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None


def parse_instant(text: str) -> datetime:
    """ISO 8601 -> aware UTC; a string without an offset is read as UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"invalid ISO 8601 time {text!r}") from error
    return as_utc(parsed)
