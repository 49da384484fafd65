"""The task behind the Streamlit example: research a company, one source at a time, reporting progress.

The worker imports this module (`python -m taskq --import examples.streamlit_tasks worker`).
"""

from __future__ import annotations

import time

import taskq
from taskq.context import TaskContext

SECONDS_PER_SOURCE = 0.5  # stands in for fetching and summarising one web page


@taskq.task(name="research.company", max_retries=2, timeout=600)
def research_company(ctx: TaskContext, company: str, sources: int = 3) -> dict[str, object]:
    notes = []
    for done in range(1, sources + 1):
        ctx.check_cancelled()
        time.sleep(SECONDS_PER_SOURCE)
        notes.append(f"source {done}: {company} is hiring")
        ctx.progress(100.0 * done / sources, f"read {done} of {sources} sources")
    return {"company": company, "summary": f"{company}: {sources} sources read, all say it is hiring.", "notes": notes}
