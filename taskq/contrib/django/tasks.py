"""The backend's task class: Django's Task plus taskq's options, registered with taskq under its module path.

Each Django task is a taskq task of its own, named by `Task.module_path` ("myapp.tasks.send_mail"), so the
dashboard, `taskq list --name`, per-task retry policies and `max_concurrency` caps see real names (a single
runner task would put every Django task under one name and one cap). What the worker registers under that
name is a runner (`_runner`) around the function: it sends Django's signals, builds the TaskContext, closes
stale database connections and returns the value as Django normalises it. A worker therefore has to import
the module that declares the task, as for any taskq task (`taskq.contrib.django.autodiscover` imports every
installed app's `tasks` module).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from taskq import registry
from taskq.context import TaskCancelled
from taskq.context import TaskContext as TaskqContext
from taskq.contrib.django.framework import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from taskq.contrib.django.results import attempt_result, class_path
from taskq.lifecycle import DEFAULT_BACKOFF_SECONDS, Fail, FailureKind, RetryPolicy, traceback_text
from taskq.model import DEFAULT_MAX_RETRIES, MAX_BACKOFF_SECONDS


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskqTask(Task):
    """`@task(...)` passes these on to the backend's task class on Django >= 6.1 and the django-tasks backport
    (Django 6.0's @task passes nothing on: `options()` below)."""

    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float | None = None  # seconds; the attempt fails with TimeoutError past it
    retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None
    retry_backoff: float = DEFAULT_BACKOFF_SECONDS
    retry_backoff_max: float = MAX_BACKOFF_SECONDS
    retry_jitter: bool = False
    max_concurrency: int | None = None  # at most this many running at once, over every worker and host
    dedup_key: str | None = None  # per enqueue, through .using(dedup_key=...)

    def __post_init__(self) -> None:
        # Explicit base call: zero-argument super() fails in a slots dataclass (the class is rebuilt).
        Task.__post_init__(self)
        _register(self)

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | None = None,
        backend: str | None = None,
        dedup_key: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> TaskqTask:
        """Django's `using`, plus the taskq options that make sense per enqueue."""
        changed = Task.using(self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend)
        extra = {"dedup_key": dedup_key, "max_retries": max_retries, "timeout": timeout}
        extra = {key: value for key, value in extra.items() if value is not None}
        if not extra:
            return changed
        return replace(changed, **extra)

    @property
    def retry_policy(self) -> RetryPolicy:
        retry_on = self.retry_on
        return RetryPolicy(
            backoff=float(self.retry_backoff),
            backoff_max=float(self.retry_backoff_max),
            jitter=self.retry_jitter,
            retry_on=None if retry_on is None else (retry_on,) if isinstance(retry_on, type) else tuple(retry_on),
        )


def options(**taskq_options: Any) -> Callable[[TaskqTask], TaskqTask]:
    """taskq's options for a task on Django 6.0, whose @task passes no extra keyword to the task class:

        @options(max_retries=5, timeout=60)
        @task
        def send_mail(...): ...

    On Django >= 6.1 `@task(max_retries=5, timeout=60)` says the same."""

    def apply(task: TaskqTask) -> TaskqTask:
        changed = replace(task, **taskq_options)
        _register(changed, again=True)
        return changed

    return apply


def _register(task: TaskqTask, *, again: bool = False) -> None:
    """Register the runner once per function: `using()` copies share it (the enqueue passes priority,
    queue and per-call options explicitly; the copy's other options are the original's). `again`:
    options() changed the task's own options."""
    existing = registry.find(task.module_path)
    declared = getattr(existing.function, "django_task", None) if existing is not None else None
    if declared is not None and declared.func is task.func and not again:
        return
    runner = _runner(task)
    registry.task(
        name=task.module_path,
        max_retries=task.max_retries,
        timeout=task.timeout,
        priority=task.priority,
        queue=task.queue_name,
        retry_on=task.retry_on,
        retry_backoff=task.retry_backoff,
        retry_backoff_max=task.retry_backoff_max,
        retry_jitter=task.retry_jitter,
        max_concurrency=task.max_concurrency,
    )(runner)


class ReturnValueError(Fail, TypeError):
    """The task returned what Django cannot store as JSON: a TypeError, as Django's own backends report it,
    and a taskq.Fail, since running the same code again would return the same value."""


class _Attempt:
    """One run of a Django task in a worker: the TaskResult its signals carry, from start to end."""

    def __init__(self, task: TaskqTask, ctx: TaskqContext) -> None:
        self.task = task
        self.ctx = ctx
        self.result: TaskResult = attempt_result(ctx.task, task, task.backend, ctx.worker_id, ctx.started_at)
        self.sender = type(task.get_backend())

    def arguments(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (TaskContext(task_result=self.result), *args) if self.task.takes_context else args

    def started(self) -> None:
        task_started.send(sender=self.sender, task_result=self.result)

    def succeeded(self, value: Any) -> Any:
        if self.ctx.spawned:  # waiting for its children (RUNNING): it finishes with the last one, in no runner
            return value
        try:
            value = normalize_json(value)  # what Django's own backends store: tuples as lists, and so on
        except TypeError as error:
            failure = ReturnValueError(f"the task's return value cannot be stored: {error}")
            failure.__cause__ = error
            self.failed(failure)
            raise failure from error
        self._end(TaskResultStatus.SUCCESSFUL)
        object.__setattr__(self.result, "_return_value", value)
        task_finished.send(sender=self.sender, task_result=self.result)
        return value

    def failed(self, error: BaseException) -> None:
        """Sent from the except block, as Django's ImmediateBackend does (its log handler reads exc_info).
        READY when taskq will run the task again, FAILED when this was its last attempt."""
        if self.ctx.spawned:  # taskq keeps waiting for the children (the error is only logged)
            return
        text = traceback_text(error)
        self.result.errors.append(TaskError(exception_class_path=class_path(type(error)), traceback=text))
        self._end(TaskResultStatus.READY if self._retried(error) else TaskResultStatus.FAILED)
        task_finished.send(sender=self.sender, task_result=self.result)

    def _retried(self, error: BaseException) -> bool:
        if isinstance(error, TaskCancelled) or self.ctx.cancelled or self.ctx.attempt > self.ctx.task.max_retries:
            return False
        return self.task.retry_policy.classify(error) is not FailureKind.PERMANENT

    def _end(self, status: TaskResultStatus) -> None:
        object.__setattr__(self.result, "status", status)
        if status is not TaskResultStatus.READY:
            object.__setattr__(self.result, "finished_at", timezone.now())


def _runner(task: TaskqTask) -> Callable[..., Any]:
    """The taskq function for `task`: `ctx` first (taskq passes its context), then the task's arguments."""
    if inspect.iscoroutinefunction(task.func):

        async def run_async(ctx: TaskqContext, *args: Any, **kwargs: Any) -> Any:
            # No close_old_connections here: on an event loop the ORM runs in sync_to_async's thread,
            # whose connections Django manages there.
            attempt = _Attempt(task, ctx)
            attempt.started()
            try:
                value = await task.func(*attempt.arguments(args), **kwargs)
            except BaseException as error:
                attempt.failed(error)
                raise
            return attempt.succeeded(value)

        runner: Callable[..., Any] = run_async
    else:

        def run(ctx: TaskqContext, *args: Any, **kwargs: Any) -> Any:
            # As Django does around a request: a connection broken or past CONN_MAX_AGE since the last
            # task is not reused, and none is left open between tasks beyond what CONN_MAX_AGE allows.
            close_old_connections()
            try:
                attempt = _Attempt(task, ctx)
                attempt.started()
                try:
                    value = task.func(*attempt.arguments(args), **kwargs)
                except BaseException as error:
                    attempt.failed(error)
                    raise
                return attempt.succeeded(value)
            finally:
                close_old_connections()

        runner = run
    runner.django_task = task  # type: ignore[attr-defined]
    runner.__signature__ = _signature(task)  # type: ignore[attr-defined]
    runner.__module__ = task.func.__module__
    runner.__qualname__ = task.func.__qualname__
    runner.__doc__ = task.func.__doc__
    return runner


def _signature(task: TaskqTask) -> inspect.Signature:
    """taskq's `ctx`, then the function's parameters less Django's `context`: enqueue checks calls against it."""
    signature = inspect.signature(task.func)
    parameters = list(signature.parameters.values())
    if task.takes_context and parameters:
        parameters = parameters[1:]
    ctx = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[ctx, *parameters])

