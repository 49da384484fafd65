"""The functions RQ's workers run (RQ imports them by dotted path)."""

from __future__ import annotations

import time


def noop() -> int:
    return 1


def stamp() -> float:
    return time.time()
