"""The @task decorator and the name -> task lookup used by enqueue defaults and by workers."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, overload

from taskq.model import DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, TaskqError
from taskq.store import TaskDefaults


class UnknownTask(TaskqError):
    pass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    function: Callable[..., Any]
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float | None = None
    priority: int = 0
    queue: str = DEFAULT_QUEUE
    then: str | None = None  # continuation: enqueued with this task's id once it (and its children) completed
    takes_context: bool = False  # the function's first parameter is named `ctx`

    @property
    def defaults(self) -> TaskDefaults:
        return TaskDefaults(self.priority, self.max_retries, self.queue, self.timeout, self.then)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the task runs it here, synchronously (handy in tests); use .enqueue to queue it."""
        return self.function(*args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a run on the default store (TASKQ_DATABASE_URL or sqlite:///taskq.db)."""
        from taskq.api import default_store

        return default_store().enqueue(self.name, args, kwargs)


_registry: dict[str, TaskSpec] = {}


def _takes_context(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0] == "ctx"


@overload
def task(function: Callable[..., Any]) -> TaskSpec: ...
@overload
def task(
    function: None = None,
    *,
    name: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
    then: str | TaskSpec | None = None,
) -> Callable[[Callable[..., Any]], TaskSpec]: ...


def task(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
    then: str | TaskSpec | None = None,
) -> TaskSpec | Callable[[Callable[..., Any]], TaskSpec]:
    """Register a function as a task, by default under 'module.function'."""

    def register(target: Callable[..., Any]) -> TaskSpec:
        spec = TaskSpec(
            name=name or f"{target.__module__}.{target.__qualname__}",
            function=target,
            max_retries=max_retries,
            timeout=timeout,
            priority=priority,
            queue=queue,
            then=then.name if isinstance(then, TaskSpec) else then,
            takes_context=_takes_context(target),
        )
        _registry[spec.name] = spec
        return spec

    return register(function) if function is not None else register


def lookup(name: str) -> TaskSpec:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(registered_names()) or "none"
        raise UnknownTask(f"unknown task {name!r} (registered: {known})") from None


def find(name: str) -> TaskSpec | None:
    return _registry.get(name)


def defaults_for(name: str) -> TaskDefaults | None:
    spec = _registry.get(name)
    return None if spec is None else spec.defaults


def registered_names() -> list[str]:
    return sorted(_registry)


def import_task_modules(modules: Iterable[str]) -> None:
    """Import the modules that define tasks; a missing module is a clear error, not a traceback."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise TaskqError(f"cannot import task module {module!r}: {error}") from error
