"""Receivers of the framework's worker-side signals: each writes a line to the pool's run log, so the test
process sees what the workers sent (`started <id> <status> <attempt>`, `finished <id> <status> <attempt>`)."""

import os

from django.dispatch import receiver

from taskq.contrib.django.framework import task_finished, task_started


def _record(kind: str, task_result) -> None:  # type: ignore[no-untyped-def]
    path = os.environ.get("TASKQ_TEST_RUNLOG")
    if path:
        with open(path, "a") as log:
            log.write(f"{kind} {task_result.id} {task_result.status} {task_result.attempts}\n")


@receiver(task_started)
def on_started(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
    _record("started", task_result)


@receiver(task_finished)
def on_finished(sender, task_result, **kwargs):  # type: ignore[no-untyped-def]
    _record("finished", task_result)
