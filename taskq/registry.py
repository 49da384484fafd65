"""The @task decorator and the name -> task lookup used by enqueue defaults and by workers."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from taskq.lifecycle import DEFAULT_BACKOFF_SECONDS, DEFAULT_POLICY, RetryPolicy
from taskq.model import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    MAX_BACKOFF_SECONDS,
    ClaimLimits,
    Enqueued,
    InvalidTaskArguments,
    TaskqError,
)
from taskq.requests import check_options
from taskq.store import Store, TaskCatalog, TaskDefaults

if TYPE_CHECKING:  # checkers only need its name; the context takes the registry's lookups from its store
    from taskq.context import TaskContext

# What callers pass to .enqueue (a leading `ctx: TaskContext` left out: the worker passes it) and what the
# function returns (awaited, for an `async def`), so users' type checkers check enqueue calls and results.
Params = ParamSpec("Params")
Returns = TypeVar("Returns")


MAX_BOUND_SHAPES = 64  # call shapes remembered per task as binding its signature


class UnknownTask(TaskqError):
    pass


@dataclass(frozen=True)
class TaskSpec(Generic[Params, Returns]):
    name: str
    function: Callable[..., Any]
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float | None = None
    priority: int = 0
    queue: str = DEFAULT_QUEUE
    then: str | None = None  # continuation: enqueued with this task's id once it (and its children) completed
    takes_context: bool = False  # the function's first parameter is named `ctx`
    is_async: bool = False  # an `async def`: a worker awaits it on its event loop
    retry: RetryPolicy = DEFAULT_POLICY  # retry_on, retry_backoff, retry_backoff_max, retry_jitter
    max_concurrency: int | None = None  # at most this many running at once, across every worker and host
    # What callers pass (without `ctx`), worked out once at registration: enqueue checks every call against it.
    signature: inspect.Signature | None = field(default=None, compare=False, repr=False)
    _bound_shapes: set[tuple[int, tuple[str, ...]]] = field(default_factory=set, init=False, compare=False, repr=False)

    @functools.cached_property
    def defaults(self) -> TaskDefaults:
        return TaskDefaults(self.priority, self.max_retries, self.queue, self.timeout, self.then, self.retry)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the task runs it here (an `async def` task returns its coroutine, to await); use
        .enqueue to queue it."""
        return self.function(*args, **kwargs)

    def enqueue(self, *args: Params.args, **kwargs: Params.kwargs) -> Enqueued[Returns]:
        """Queue a run on the default store (TASKQ_DATABASE_URL or sqlite:///taskq.db); the returned
        handle waits for it (`.wait()`, `.result()`), reads `.status()` and can `.cancel()` it."""
        if _default_store is None:  # taskq.api installs it; any name taken from `taskq` imports taskq.api
            raise TaskqError("no default store: import taskq (or taskq.api) before enqueueing")
        return _default_store().enqueue(self.name, args, kwargs)

    async def enqueue_async(self, *args: Params.args, **kwargs: Params.kwargs) -> Enqueued[Returns]:
        """`enqueue` from a coroutine: the default store's first opening and the INSERT run in a thread."""
        return await asyncio.to_thread(self.enqueue, *args, **kwargs)

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise InvalidTaskArguments naming the argument when the function cannot take these, so a typo
        fails at enqueue, in front of whoever made it, instead of later in a worker's log."""
        # Whether a call binds depends only on how many positional arguments it passes and which keyword
        # names: a shape that bound once binds again, without inspect's work on every enqueue.
        shape = (len(args), tuple(kwargs))
        if shape in self._bound_shapes:
            return
        signature = self.signature if self.signature is not None else _call_signature(self.function)
        if signature is None:
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise InvalidTaskArguments(f"task {self.name!r}: {error} (it takes {signature})") from None
        if len(self._bound_shapes) < MAX_BOUND_SHAPES:
            self._bound_shapes.add(shape)


class _Decorator(Protocol):
    """What `@task(...)` with options returns: the decorator, typed as `task` itself is."""

    @overload
    def __call__(
        self, function: Callable[Concatenate[TaskContext, Params], Coroutine[Any, Any, Returns]]
    ) -> TaskSpec[Params, Returns]: ...
    @overload
    def __call__(self, function: Callable[Concatenate[TaskContext, Params], Returns]) -> TaskSpec[Params, Returns]: ...
    @overload
    def __call__(self, function: Callable[Params, Coroutine[Any, Any, Returns]]) -> TaskSpec[Params, Returns]: ...
    @overload
    def __call__(self, function: Callable[Params, Returns]) -> TaskSpec[Params, Returns]: ...


_registry: dict[str, TaskSpec[..., Any]] = {}

# The store `TaskSpec.enqueue` uses, installed by taskq.api (which builds stores from this registry's
# defaults), so that the registry needs no import of the layer above it.
_default_store: Callable[[], Store] | None = None


def use_default_store(provider: Callable[[], Store]) -> None:
    global _default_store
    _default_store = provider


def _takes_context(function: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0] == "ctx"


def _call_signature(function: Callable[..., Any]) -> inspect.Signature | None:
    """The parameters a caller supplies: the function's, less a leading `ctx` (the worker passes it)."""
    try:
        try:  # evaluated annotations read `width: int`, not `width: 'int'`, in error messages
            signature = inspect.signature(function, eval_str=True)
        except Exception:  # an annotation naming something not importable at run time
            signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins and C functions have none: accept anything
        return None
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name == "ctx":
        parameters = parameters[1:]
    return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


# The overloads tell type checkers what .enqueue takes and what .result() returns. A first parameter
# annotated `ctx: TaskContext` is left out of what callers pass (at run time the name `ctx` decides);
# an unannotated function matches every overload, so checkers treat it as Any, as they treat it anyway.
@overload
def task(
    function: Callable[Concatenate[TaskContext, Params], Coroutine[Any, Any, Returns]],
) -> TaskSpec[Params, Returns]: ...
@overload
def task(function: Callable[Concatenate[TaskContext, Params], Returns]) -> TaskSpec[Params, Returns]: ...
@overload
def task(function: Callable[Params, Coroutine[Any, Any, Returns]]) -> TaskSpec[Params, Returns]: ...
@overload
def task(function: Callable[Params, Returns]) -> TaskSpec[Params, Returns]: ...
@overload
def task(
    function: None = None,
    *,
    name: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
    then: str | TaskSpec[..., Any] | None = None,
    retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None,
    retry_backoff: float = DEFAULT_BACKOFF_SECONDS,
    retry_backoff_max: float = MAX_BACKOFF_SECONDS,
    retry_jitter: bool = False,
    max_concurrency: int | None = None,
) -> _Decorator: ...


def task(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
    then: str | TaskSpec[..., Any] | None = None,
    retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None,
    retry_backoff: float = DEFAULT_BACKOFF_SECONDS,
    retry_backoff_max: float = MAX_BACKOFF_SECONDS,
    retry_jitter: bool = False,
    max_concurrency: int | None = None,
) -> Any:
    """Register a function as a task, by default under 'module.function'.

    A failed attempt is retried up to `max_retries` times, the first after `retry_backoff` seconds and
    each next one after twice the previous, capped at `retry_backoff_max` (`retry_jitter`: a random
    delay in the upper half of that). With `retry_on`, only those exceptions are retried; any other one
    fails the task at once. The task itself may `raise taskq.Retry(delay=...)` or `raise taskq.Fail(...)`.

    `max_concurrency`: never more than this many runs of the task at once, counted over every worker
    and host (a task claimed by a worker counts from its claim on); None means no cap.
    """
    check_options(priority=priority, max_retries=max_retries, queue=queue, timeout=timeout)
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1
    ):
        raise TaskqError(f"max_concurrency must be an int >= 1 or None, got {max_concurrency!r}")
    policy = RetryPolicy(
        backoff=float(retry_backoff),
        backoff_max=float(retry_backoff_max),
        jitter=bool(retry_jitter),
        # One class or several, as `except` takes them.
        retry_on=None if retry_on is None else (retry_on,) if isinstance(retry_on, type) else tuple(retry_on),
    )

    def register(target: Callable[..., Any]) -> TaskSpec[..., Any]:
        spec: TaskSpec[..., Any] = TaskSpec(
            name=name or f"{target.__module__}.{target.__qualname__}",
            function=target,
            max_retries=max_retries,
            timeout=timeout,
            priority=priority,
            queue=queue,
            then=then.name if isinstance(then, TaskSpec) else then,
            takes_context=_takes_context(target),
            is_async=inspect.iscoroutinefunction(target),
            retry=policy,
            max_concurrency=max_concurrency,
            signature=_call_signature(target),
        )
        _registry[spec.name] = spec
        return spec

    return register(function) if function is not None else register


def lookup(name: str) -> TaskSpec[..., Any]:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(registered_names()) or "none"
        raise UnknownTask(f"unknown task {name!r} (registered: {known})") from None


def find(name: str) -> TaskSpec[..., Any] | None:
    return _registry.get(name)


def defaults_for(name: str) -> TaskDefaults | None:
    spec = _registry.get(name)
    return None if spec is None else spec.defaults


def claim_limits(queue_limits: Mapping[str, int] | None = None) -> ClaimLimits | None:
    """The caps a worker passes to every claim: its registered tasks' max_concurrency and the queues'
    (settings.yaml). None when there is none, so its claims stay exactly the uncapped ones."""
    limits = ClaimLimits(
        {spec.name: spec.max_concurrency for spec in _registry.values() if spec.max_concurrency is not None},
        dict(queue_limits or {}),
    )
    return limits or None


def registered_names() -> list[str]:
    return sorted(_registry)


def registered() -> list[TaskSpec[..., Any]]:
    return [_registry[name] for name in sorted(_registry)]


def check_arguments(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Check a call against a registered task's signature; tasks this process has not imported pass
    (the worker that imports them still reports a mismatch as the task's error)."""
    spec = _registry.get(name)
    if spec is not None:
        spec.check_arguments(args, kwargs)


# What a Store knows of this registry (taskq.open_store hands it over): defaults and signature checks.
CATALOG = TaskCatalog(defaults_for, check_arguments)


def add_import_paths(paths: Iterable[str | Path]) -> None:
    """Put app directories first on the import path, here and in every process started from here.

    celery, rq and huey_consumer import app modules from the working directory; a console script does
    not (its sys.path[0] is the venv's bin directory), so `taskq --import myapp.tasks` would fail from the
    folder that holds myapp/. PYTHONPATH carries the same directories to the worker processes, which the
    supervisor starts with `python -m taskq.worker`, without a protocol change between the two.
    """
    wanted: list[str] = []
    for path in paths:
        resolved = str(Path(path).resolve())
        if resolved not in wanted:
            wanted.append(resolved)
    for resolved in reversed(wanted):
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    os.environ["PYTHONPATH"] = os.pathsep.join([*wanted, *(entry for entry in inherited if entry not in wanted)])


class TaskModuleError(TaskqError):
    """A task module that does not import: missing, a syntax error, or an exception while it loads."""


def import_task_module(module: str) -> None:
    """Import one module that defines tasks; any failure is a TaskModuleError naming it, not a traceback."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        hint = ""
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == module.split(".")[0]:
            hint = f" (looked in {Path.cwd()}, the settings file's folder and PYTHONPATH)"
        raise TaskModuleError(f"cannot import task module {module!r}: {error}{hint}") from error
    except Exception as error:  # a SyntaxError, or whatever the module's own top level raised
        raise TaskModuleError(f"cannot import task module {module!r}: {type(error).__name__}: {error}") from error


def import_task_modules(modules: Iterable[str]) -> None:
    """Import the modules that define tasks; the first that fails is a TaskModuleError."""
    for module in modules:
        import_task_module(module)


def import_task_modules_tolerantly(modules: Iterable[str]) -> list[TaskModuleError]:
    """Import every module that imports and return the failures: for callers that only read tasks'
    rows (`taskq list`, `stats`, `cancel`...), a broken module must not lock the operator out."""
    failures = []
    for module in modules:
        try:
            import_task_module(module)
        except TaskModuleError as error:
            failures.append(error)
    return failures
