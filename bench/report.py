"""`python -m bench.report RESULTS.json`: the machine and the figures of one run as Markdown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.results import Figure, Results, table


def load(path: Path) -> Results:
    data = json.loads(path.read_text())
    results = Results()
    results.meta = data["meta"]
    for item in data["figures"]:
        figure = Figure(item["key"], item["label"], item["unit"], item["samples"], item["note"], item["skipped"])
        results.figures[figure.key] = figure
    return results


def _load(values: list[float] | None) -> str:
    return ", ".join(f"{value:.1f}" for value in values) if values else "?"


def markdown(results: Results) -> str:
    machine = results.meta.get("machine", {})
    packages = ", ".join(f"{name} {version}" for name, version in machine.get("packages", {}).items() if version)
    lines = [
        f"Run: {results.meta.get('started_at')} ({results.meta.get('mode')} mode, "
        f"{results.meta.get('elapsed_seconds')} s), commit {machine.get('commit')}",
        "",
        f"- CPU: {machine.get('cpu')}, {machine.get('cpus')} cores ({machine.get('hypervisor') or 'bare metal'} guest);"
        f" memory {machine.get('memory_gib')} GiB; Linux {machine.get('kernel')}",
        f"- Python {machine.get('python')}, SQLite {machine.get('sqlite')}, PostgreSQL {machine.get('postgresql')}, "
        f"Redis {machine.get('redis')}",
        f"- Packages: {packages}",
        f"- Load average (1, 5, 15 min) at start: {_load(machine.get('load_average_at_start'))}, at end: "
        f"{_load(results.meta.get('load_average_at_end'))} (other sessions share these 2 cores)",
        f"- SQLite claim plan: `{results.meta.get('sqlite_claim_plan')}`",
        "",
        table(results, printer=lambda _text: None),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(load(Path(sys.argv[1]))))
