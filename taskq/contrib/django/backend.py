"""TaskqBackend: taskq as a backend of Django's Tasks framework (django.tasks, Django >= 6.0).

    TASKS = {"default": {"BACKEND": "taskq.contrib.django.TaskqBackend",
                         "QUEUES": ["default", "emails"],
                         "OPTIONS": {"DATABASE_ALIAS": "default"}}}

OPTIONS:
- DATABASE_ALIAS: a Django database alias (SQLite or PostgreSQL) whose database holds taskq's tables.
  An enqueue inside `transaction.atomic()` on that alias then writes through Django's connection and
  commits or rolls back with the view's writes; the taskq URL defaults to that database.
- DATABASE: taskq's SQLAlchemy URL (default: from DATABASE_ALIAS, else TASKQ_DATABASE_URL, else
  sqlite:///taskq.db). Without DATABASE_ALIAS, enqueue commits on its own: use transaction.on_commit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import connections
from django.utils import timezone
from django.utils.module_loading import import_string
from sqlalchemy.engine import URL, make_url

from taskq.api import open_store
from taskq.clock import utc_now
from taskq.contrib.django import transaction
from taskq.contrib.django.framework import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from taskq.contrib.django.results import local, to_result
from taskq.contrib.django.tasks import TaskqTask
from taskq.model import InvalidTaskArguments
from taskq.store import Store

DEFAULT_URL = "sqlite:///taskq.db"
KNOWN_OPTIONS = {"DATABASE", "DATABASE_ALIAS"}

# One store per URL for the whole process: Django makes a backend object per thread.
_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def store_for(url: str) -> Store:
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = open_store(url)  # upgrades the schema through Alembic if needed
        return store


def url_of_alias(alias: str) -> str:
    """taskq's SQLAlchemy URL for the database Django reaches as `alias`."""
    database = settings.DATABASES[alias]
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return f"sqlite:///{Path(str(database['NAME'])).resolve()}"
    if vendor == "postgresql":
        return URL.create(
            "postgresql+psycopg",
            username=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=int(database["PORT"]) if database.get("PORT") else None,
            database=database.get("NAME") or None,
            # libpq's `options` (e.g. "-c search_path=app"): taskq's tables must be where Django's connection looks.
            query={"options": options} if (options := database.get("OPTIONS", {}).get("options")) else {},
        ).render_as_string(hide_password=False)
    raise ValueError(f"database alias {alias!r} is {vendor}: taskq runs on SQLite or PostgreSQL")


class TaskqBackend(BaseTaskBackend):
    task_class = TaskqTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True  # taskq claims the highest priority first, as Django means it

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.database_alias: str | None = self.options.get("DATABASE_ALIAS")

    @property
    def url(self) -> str:
        explicit = self.options.get("DATABASE")
        if explicit:
            return str(explicit)
        if self.database_alias is not None:
            return url_of_alias(self.database_alias)
        return os.environ.get("TASKQ_DATABASE_URL") or DEFAULT_URL

    @property
    def store(self) -> Store:
        return store_for(self.url)

    # -- enqueue ------------------------------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if not isinstance(task, TaskqTask):
            raise InvalidTask(f"{self.alias!r} runs tasks made by its @task (task_class TaskqTask), not {type(task)}")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        assert isinstance(task, TaskqTask)
        now = utc_now()
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):  # USE_TZ = False: local time
            run_after = timezone.make_aware(run_after)
        options: dict[str, Any] = {
            "priority": task.priority,
            "queue": task.queue_name,
            "run_after": run_after,
            "dedup_key": task.dedup_key,
            "max_retries": task.max_retries,
            "timeout": task.timeout,
            "now": now,
        }
        try:
            if self.database_alias is not None and transaction.in_transaction(self.database_alias):
                with transaction.joined(self.database_alias) as connection:
                    enqueued = self.store.enqueue(task.module_path, args, kwargs, connection=connection, **options)
            else:
                enqueued = self.store.enqueue(task.module_path, args, kwargs, **options)
        except InvalidTaskArguments as error:
            raise InvalidTask(str(error)) from error
        result: TaskResult | None = None
        if enqueued.deduplicated:
            # The active task holding the key, as committed; one enqueued earlier in this same atomic()
            # block is not visible to taskq's own connection yet, and is then described as this call's.
            with contextlib.suppress(TaskResultDoesNotExist):
                result = self.get_result(str(enqueued.id))
        if result is None:
            result = TaskResult(
                task=task,
                id=str(enqueued.id),
                status=TaskResultStatus.READY,
                enqueued_at=local(now),
                started_at=None,
                last_attempted_at=None,
                finished_at=None,
                args=list(args),
                kwargs=dict(kwargs),
                backend=self.alias,
                errors=[],
                worker_ids=[],
            )
        task_enqueued.send(type(self), task_result=result)
        return result

    # -- results ------------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        try:
            task_id = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        row = self.store.get(task_id)
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = import_string(row.name)
        except ImportError:
            task = None
        if not isinstance(task, Task):  # a plain taskq task, or one whose module is gone
            raise TaskResultDoesNotExist(result_id)
        return to_result(row, task, self.alias)

    def progress(self, result_id: str) -> tuple[float, str | None]:
        """What the task last reported through taskq's `ctx.progress(percent, message)` (0-100)."""
        try:
            row = self.store.get(int(result_id))
        except (TypeError, ValueError):
            row = None
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        return row.progress, row.progress_message

    # -- system checks --------------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = []
        unknown = set(self.options) - KNOWN_OPTIONS
        if unknown:
            messages.append(
                checks.Error(
                    f"unknown OPTIONS {sorted(unknown)} for taskq backend {self.alias!r}",
                    hint=f"known: {sorted(KNOWN_OPTIONS)}",
                    id="taskq.E001",
                )
            )
        alias = self.database_alias
        if alias is None:
            return messages
        if alias not in settings.DATABASES:
            messages.append(checks.Error(f"DATABASE_ALIAS {alias!r} is not in DATABASES", id="taskq.E002"))
            return messages
        vendor = connections[alias].vendor
        if vendor not in transaction.DIALECTS:
            messages.append(
                checks.Error(
                    f"DATABASE_ALIAS {alias!r} is {vendor}: taskq runs on SQLite or PostgreSQL", id="taskq.E003"
                )
            )
            return messages
        explicit = self.options.get("DATABASE")
        if explicit and not _same_database(make_url(str(explicit)), make_url(url_of_alias(alias))):
            messages.append(
                checks.Error(
                    f"DATABASE {explicit!r} is not the database of DATABASE_ALIAS {alias!r}",
                    hint="an enqueue in atomic() writes through the alias: drop DATABASE or DATABASE_ALIAS",
                    id="taskq.E004",
                )
            )
        mode = settings.DATABASES[alias].get("OPTIONS", {}).get("transaction_mode")
        if vendor == "sqlite" and str(mode).upper() != "IMMEDIATE":
            messages.append(
                checks.Warning(
                    f"DATABASES[{alias!r}] (SQLite) begins atomic() blocks DEFERRED",
                    hint='set OPTIONS {"transaction_mode": "IMMEDIATE"}: a deferred transaction that reads and then '
                    "writes fails with 'database is locked' when a worker writes meanwhile",
                    id="taskq.W001",
                )
            )
        return messages


def _same_database(a: URL, b: URL) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return Path(a.database or "").resolve() == Path(b.database or "").resolve()
    return (a.host or "localhost", a.port or 5432, a.database) == (b.host or "localhost", b.port or 5432, b.database)

