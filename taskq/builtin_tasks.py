"""Tasks every taskq installation has: handy for smoke tests, demos and the dashboard."""

from __future__ import annotations

import time
from typing import Any

from taskq.registry import task


@task(name="taskq.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns its arguments."""
    return {"args": list(args), "kwargs": kwargs}


@task(name="taskq.sleep")
def sleep(ctx: Any, seconds: float = 1.0, steps: int | None = None) -> dict[str, float]:
    """Sleeps `seconds`, reporting progress as it goes and stopping early when cancelled."""
    seconds = float(seconds)
    steps = steps or max(1, min(100, int(seconds * 10)))
    for step in range(1, steps + 1):
        ctx.check_cancelled()
        time.sleep(seconds / steps)
        ctx.progress(100.0 * step / steps, f"slept {seconds * step / steps:.1f} of {seconds:g} s")
    return {"slept": seconds}
