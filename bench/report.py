"""`python -m bench.report RESULTS.json [--targets]`: one run as Markdown: the machine, issue 11's targets
met or not, and every figure (`--targets`: the targets table alone, e.g. for the docs' Performance page)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import Figure, Results, table
from bench.targets import ISSUE_11, ISSUE_21, targets_table


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


def _context(results: Results) -> list[str]:
    """What the targets table needs to be read right: the sizes, the CPU task, each store's pragmas."""
    lines = []
    sizes = results.meta.get("sizes", {})
    if sizes:
        lines.append(
            f"- Sizes: {sizes.get('drain', 0):,}-task drains, {sizes.get('single', 0):,} single enqueues, "
            f"{sizes.get('cpu_tasks', 0):,} CPU-bound tasks, {sizes.get('runs')} runs"
        )
    cpu = results.meta.get("cpu_task")
    if cpu:
        loads = results.meta.get("load_average_at_cpu_drains") or []
        during = f"; 1-min load average before each CPU drain: {', '.join(f'{load[0]:.1f}' for load in loads)}"
        lines.append(
            f"- CPU-bound task: `burn({cpu['iterations']:,})`, calibrated in this run to {cpu['milliseconds']:.0f} ms "
            f"of CPU{during if loads else ''}"
        )
    for name, pragmas in (results.meta.get("storage_settings") or {}).items():
        if pragmas:
            described = ", ".join(f"{key}={value}" for key, value in pragmas.items())
            lines.append(f"- {name} storage, read back from its connection: {described} (synchronous 1 = NORMAL)")
    return lines


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
        *_context(results),
        "",
        "## Targets of issue 21",
        "",
        targets_table(results, ISSUE_21),
        "",
        "## Targets of issue 11",
        "",
        targets_table(results, ISSUE_11),
        "",
        "## Every figure",
        "",
        table(results, printer=lambda _text: None),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("results", type=Path, help="a JSON file written by `python -m bench`")
    parser.add_argument("--targets", action="store_true", help="only a table of targets (--issue)")
    parser.add_argument("--issue", type=int, choices=(11, 21), default=21, help="whose targets (default 21)")
    options = parser.parse_args(argv)
    results = load(options.results)
    chosen = ISSUE_21 if options.issue == 21 else ISSUE_11
    sys.stdout.write((targets_table(results, chosen) if options.targets else markdown(results)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
