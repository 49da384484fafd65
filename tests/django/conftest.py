"""The Django layer: taskq as a backend of django.tasks, with `manage.py taskq_worker` pools. It needs
Django >= 6 (Python >= 3.12): elsewhere every test here skips, saying so. One Django project per session
(Django's settings are process-wide): a SQLite file, and a PostgreSQL schema when TASKQ_TEST_POSTGRES_URL
is set; one pool serves the `default` queue for the session, tests that need their own start one.
Each test module starts with `pytest.importorskip("taskq.contrib.django.framework", ...)` (Django >= 6, or
Django 5.2 with the django-tasks backport), so nothing here imports Django at collection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from databases import POSTGRES_URL, PrivateSchema
from django_pool import DjangoPool, project_env


@dataclass
class Site:
    directory: Path
    runlog: Path
    postgres: bool


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("django_site")
    schema = PrivateSchema() if POSTGRES_URL else None
    runlog = directory / "runs.log"
    os.environ.update(project_env(directory / "site.db", schema.url if schema else None, runlog))
    import django

    django.setup()
    try:
        yield Site(directory, runlog, schema is not None)
    finally:
        from django.db import connections

        connections.close_all()
        if schema is not None:
            schema.drop()


@pytest.fixture(scope="session")
def pool(site: Site) -> Iterator[DjangoPool]:
    """Two workers on the default queue, through `python -m django taskq_worker`."""
    started = DjangoPool(site.directory, "--workers", "2", "--queues", "default")
    try:
        started.wait_ready(2)
        yield started
    finally:
        started.stop()


@pytest.fixture
def postgres_site(site: Site) -> Site:
    if not site.postgres:
        pytest.skip("TASKQ_TEST_POSTGRES_URL is not set")
    return site
