"""Figures: repeated samples summarised as median / min / max, ratios taken run by run, a table and JSON."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    key: str  # stable machine name, e.g. "sqlite.raw.insert_single"
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""  # why this figure has no samples

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "samples": self.samples,
            "note": self.note,
            "skipped": self.skipped,
        }


class Results:
    """Every figure of one run, in the order first recorded."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.meta: dict[str, Any] = {}

    def figure(self, key: str, label: str, unit: str) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, label, unit)
        return self.figures[key]

    def add(self, key: str, label: str, unit: str, value: float, note: str = "") -> float:
        figure = self.figure(key, label, unit)
        figure.samples.append(value)
        if note:
            figure.note = note
        return value

    def skip(self, key: str, label: str, reason: str) -> None:
        figure = self.figure(key, label, "")
        if not figure.samples:
            figure.skipped = reason

    def ratio(self, key: str, label: str, numerator: str, denominator: str, *, if_measured: bool = False) -> None:
        """numerator / denominator sample by sample: sample i of each was taken in the same repetition,
        minutes apart at most, so machine drift over the whole run cancels out."""
        top, bottom = self.figures.get(numerator), self.figures.get(denominator)
        if if_measured and (top is None or bottom is None):
            return  # a group that was not selected: no row at all
        if top is None or bottom is None or not top.samples or not bottom.samples:
            self.skip(key, label, f"needs {numerator} and {denominator}")
            return
        figure = self.figure(key, label, "x")
        figure.samples = [a / b for a, b in zip(top.samples, bottom.samples, strict=False) if b]
        figure.note = f"{numerator} / {denominator}, pair by pair"

    def as_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "figures": [figure.as_json() for figure in self.figures.values()]}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


def format_value(value: float | None, unit: str) -> str:
    """A figure's value as the tables print it: ratios to 2 decimals, others by size (12,345 / 123 / 12.3 / 1.23)."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: Results, printer: Callable[[str], None] = print) -> str:
    """A fixed-width table (also valid Markdown) of every figure."""
    header = ("figure", "unit", "median", "min", "max", "n", "note")
    rows = [header]
    for figure in results.figures.values():
        if figure.samples:
            rows.append(
                (
                    figure.label,
                    figure.unit,
                    format_value(figure.median, figure.unit),
                    format_value(min(figure.samples), figure.unit),
                    format_value(max(figure.samples), figure.unit),
                    str(len(figure.samples)),
                    figure.note,
                )
            )
        else:
            rows.append((figure.label, figure.unit, "-", "-", "-", "0", "SKIPPED: " + figure.skipped))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|" + "-" * 6 + "|")
    text = "\n".join(lines)
    printer(text)
    return text
