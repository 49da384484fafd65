"""How taskq is installed: the PyPI distribution name differs from the import name and the command."""

from __future__ import annotations

from importlib import metadata

# `taskq` on PyPI is an unrelated 2014 project, so the distribution is published as taskq-sql;
# `import taskq` and the `taskq` command are unchanged (like `pip install PyYAML` / `import yaml`).
DISTRIBUTION = "taskq-sql"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs taskq with `extra`, for error messages."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"


def version() -> str:
    """The installed version; a checkout installed under its former name `taskq` still answers."""
    for name in (DISTRIBUTION, "taskq"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"
