"""What the numbers were measured on: CPU, memory, versions, commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("taskq", "sqlalchemy", "psycopg", "huey", "celery", "kombu", "procrastinate", "rq", "redis", "psutil")


def _run(*command: str) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def describe(repo: Path) -> dict[str, Any]:
    lscpu = dict(line.split(":", 1) for line in _run("lscpu").splitlines() if ":" in line)
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": lscpu.get("Model name", platform.processor()).strip(),
        "cpus": os.cpu_count(),
        "hypervisor": lscpu.get("Hypervisor vendor", "").strip() or None,
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _run("psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version", "test") or None,
        "redis": (
            _run("redis-cli", "-h", "127.0.0.1", "INFO", "server").split("redis_version:")[-1].split()[0:1] or [None]
        )[0],
        "packages": versions,
        "commit": _run("git", "-C", str(repo), "rev-parse", "--short", "HEAD") or None,
        "load_average_at_start": os.getloadavg(),
    }
