"""The task behind the Flask example: write a cover letter for one job, reporting progress as it goes.

The worker imports this module (`python -m taskq --import examples.flask_gunicorn.tasks worker`); the web
app imports it too, so enqueue picks up the options declared here (retries, timeout).
"""

from __future__ import annotations

import time

import taskq
from taskq.context import TaskContext

STEPS = ("reading the job ad", "matching it with your CV", "drafting", "polishing")


# An explicit name keeps the task findable however the module is imported (gunicorn app:app from
# another directory would otherwise register it under a different module path).
@taskq.task(name="cover_letters.write", max_retries=2, timeout=300)
def write_cover_letter(ctx: TaskContext, job_id: str, applicant: str, step_seconds: float = 1.0) -> dict[str, str]:
    for done, step in enumerate(STEPS):
        ctx.check_cancelled()
        ctx.progress(100.0 * done / len(STEPS), step)
        time.sleep(step_seconds)  # stands in for a slow language-model call
    ctx.progress(100.0, "done")
    return {"job_id": job_id, "letter": f"Dear hiring team of job {job_id}, I am {applicant}, and I would love to..."}
