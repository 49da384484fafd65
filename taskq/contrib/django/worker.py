"""`python manage.py taskq_worker [options of taskq worker]`: taskq's pool with the project's settings.

The pool is `taskq worker` itself (the same options, settings.yaml and its live rescaling); this adds:
- the database of the TASKS backend (its DATABASE or DATABASE_ALIAS) unless --db or TASKQ_DATABASE_URL says;
- `taskq.contrib.django.autodiscover` first in the imports (django.setup(), then each app's tasks module);
- TASKQ_PRELOAD, so that the fork server runs django.setup() once before forking the workers.
DJANGO_SETTINGS_MODULE, set by manage.py, reaches every process of the pool through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from taskq.forkserver import PRELOAD_ENV

DJANGO_ONLY_OPTIONS = ("--settings", "--pythonpath")  # manage.py has applied them already


def taskq_arguments(argv: Sequence[str]) -> list[str]:
    """The command line for `taskq worker`: manage.py's own options dropped, the autodiscovery added."""
    out: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
            continue
        if argument in DJANGO_ONLY_OPTIONS:
            skip = True
            continue
        if argument.startswith(tuple(f"{option}=" for option in DJANGO_ONLY_OPTIONS)):
            continue
        out.append(argument)
    return ["worker", "--import", "taskq.contrib.django.autodiscover", *out]


def default_database(backend_alias: str = "default") -> str | None:
    """The URL of the taskq backend named `backend_alias` in TASKS, if it is one."""
    from django.core.exceptions import ImproperlyConfigured

    from taskq.contrib.django.backend import TaskqBackend
    from taskq.contrib.django.framework import task_backends

    try:
        backend = task_backends[backend_alias]
    except ImproperlyConfigured:  # no TASKS entry of that name (the framework's InvalidTaskBackend is one)
        return None
    return backend.url if isinstance(backend, TaskqBackend) else None


def run(argv: Sequence[str]) -> None:
    from taskq.cli import main

    url = default_database()
    if url is not None and "--db" not in argv and not os.environ.get("TASKQ_DATABASE_URL"):
        os.environ["TASKQ_DATABASE_URL"] = url
    preload = [m for m in os.environ.get(PRELOAD_ENV, "").split(",") if m]
    os.environ[PRELOAD_ENV] = ",".join(["taskq.contrib.django.boot", *preload])
    main(args=taskq_arguments(argv), prog_name="manage.py taskq_worker")
