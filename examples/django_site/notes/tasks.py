# notes/tasks.py
import time

from django.tasks import task

from notes.models import Note
from taskq.context import current


@task(max_retries=2, timeout=60)  # taskq's options go to @task (Django >= 6.1)
def publish(note_id: int) -> dict:
    ctx = current()  # taskq's context: progress, cancellation
    note = Note.objects.get(pk=note_id)
    for step in range(1, 5):
        ctx.check_cancelled()
        time.sleep(0.2)
        ctx.progress(25 * step, f"step {step} of 4")
    Note.objects.filter(pk=note_id).update(published=True)
    return {"note": note_id, "words": len(note.body.split())}
