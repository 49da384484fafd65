"""Streamlit widgets for taskq: a sidebar indicator of active tasks and an inline status for one task.

Long jobs started from a Streamlit script die with the script run: navigating away, a reload or a
second click loses them. Enqueued through taskq they run in a worker, and these widgets show them:

    from taskq.streamlit import active_tasks_sidebar, find, submit, task_status

    enqueued = submit(store, "research.company", ["ACME"], dedup_key="research:acme", label="ACME")
    task_status(store, enqueued.id)          # progress while it runs, the result once it is done
    active_tasks_sidebar(store)              # "2 tasks running", each with its progress

Task ids are kept in `st.session_state` (they survive reruns and page switches) and can be found again
in the database by dedup key (`find`), so a new session, a reload or another browser sees the same job.
Each widget re-reads the database every `run_every` seconds through `st.fragment(run_every=...)` while
something it shows is active, and stops polling once nothing is.

Streamlit is an optional extra (`pip install 'taskq-sql[streamlit]'`); no other taskq module imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import streamlit as st

from taskq.model import Enqueued, InvalidTransition, Status, Task, TaskNotFound
from taskq.store import Store

T = TypeVar("T")

REFRESH_SECONDS = 1.0  # how often a widget re-reads its tasks while one of them is active
SESSION_KEY = "taskq_tasks"  # st.session_state[SESSION_KEY]: {label: task id} of this session's tasks
LIVE_CAPTION = "Updating live"


def tracked() -> dict[str, int]:
    """This session's tasks as {label: task id}, oldest first."""
    return st.session_state.setdefault(SESSION_KEY, {})


def submit(
    store: Store,
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    dedup_key: str,
    label: str | None = None,
    **options: Any,
) -> Enqueued:
    """Enqueue a task (or join the active one holding `dedup_key`) and remember it under `label`
    (default: the dedup key). `options` go to `store.enqueue` (priority, queue, timeout, ...)."""
    enqueued = store.enqueue(name, args, kwargs, dedup_key=dedup_key, **options)
    tracked()[label or dedup_key] = enqueued.id
    return enqueued


def find(store: Store, dedup_key: str, *, label: str | None = None) -> Task | None:
    """The task this session remembers under `label` (default: the dedup key), else the newest task
    enqueued with `dedup_key`, which is then remembered: a new session finds an earlier session's job."""
    label = label or dedup_key
    task_id = tracked().get(label)
    task = None if task_id is None else store.get(task_id)
    if task is None:
        task = store.latest_by_dedup_key(dedup_key)
        if task is not None:
            tracked()[label] = task.id
    return task


def _live(load: Callable[[], T], draw: Callable[[T], None], is_active: Callable[[T], bool], run_every: float) -> None:
    """Draw `load()` in a fragment that re-runs itself every `run_every` s while `is_active` holds.
    run_every is fixed when a fragment is declared, so once the value turns inactive the fragment asks
    for one full rerun, which declares it again without a timer: an idle page costs no queries."""
    polling = is_active(load())

    def view() -> None:
        value = load()
        draw(value)
        if polling and not is_active(value):
            st.rerun()

    st.fragment(view, run_every=run_every if polling else None)()


def _describe(task: Task) -> str:
    """The one text every widget shows for an active task, so the sidebar and the page never disagree
    in form (both give the percentage, and the task's message when it has one)."""
    if task.cancel_requested:
        return f"{task.progress:.0f}% · cancelling"
    if task.status is Status.PENDING:
        return "queued"
    if task.status is Status.WAITING_FOR_CHILDREN:
        finished = task.children_completed + task.children_failed + task.children_cancelled
        return f"waiting for subtasks ({finished} of {task.children_total} done)"
    return f"{task.progress:.0f}% · {task.progress_message}" if task.progress_message else f"{task.progress:.0f}%"


def _draw_progress(task: Task, label: str) -> None:
    st.progress(min(max(task.progress, 0.0), 100.0) / 100.0, text=f"{label}: {_describe(task)}")


def _cancel(store: Store, task_id: int) -> None:
    # Pending: cancelled at once; running: the worker is asked to stop. A task that finished meanwhile
    # raises, and the rerun this click causes shows how it ended instead.
    with contextlib.suppress(InvalidTransition, TaskNotFound):
        store.cancel(task_id)


def task_status(
    store: Store,
    task_id: int,
    *,
    label: str | None = None,
    show_result: Callable[[Any], None] | None = None,
    run_every: float = REFRESH_SECONDS,
) -> Task | None:
    """Inline status of one task: a progress bar and a Cancel button while it is queued or running, then
    its result (`show_result(result)`, default st.json), its error, or that it was cancelled. Returns the
    task as first read (None if it no longer exists, e.g. purged)."""
    text = label or f"Task {task_id}"
    task = store.get(task_id)

    def draw(current: Task | None) -> None:
        if current is None:
            st.warning(f"{text}: no such task (finished tasks are purged after the retention period)")
        elif current.is_active:
            _draw_progress(current, text)
            if not current.cancel_requested:
                st.button("Cancel", key=f"taskq_cancel_{task_id}", on_click=_cancel, args=(store, task_id))
        elif current.status is Status.COMPLETED:
            (show_result or st.json)(current.result)
        elif current.status is Status.FAILED:
            st.error(f"{text} failed after {current.attempts} attempt(s)")
            with st.expander("Error"):
                st.code(current.error or "", language="text")
        else:
            st.info(f"{text} was cancelled")

    _live(lambda: store.get(task_id), draw, lambda current: current is not None and current.is_active, run_every)
    return task


def active_tasks_sidebar(
    store: Store,
    *,
    names: Sequence[str] | None = None,
    mine_only: bool = False,
    title: str = "Background tasks",
    run_every: float = REFRESH_SECONDS,
) -> None:
    """In the sidebar: how many tasks are queued or running, each with its progress. Shows every active
    task (of `names`, if given) so a new session sees jobs started elsewhere; `mine_only` limits it to
    this session's tasks (for apps shared by several people)."""

    def load() -> list[Task]:
        active = store.active(names=names)
        if mine_only:
            mine = set(tracked().values())
            active = [task for task in active if task.id in mine]
        return active

    def draw(active: list[Task]) -> None:
        st.markdown(f"**{title}**")
        if not active:
            st.caption("Nothing running.")
            return
        st.caption(f"{len(active)} active · {LIVE_CAPTION}")
        labels = {task_id: label for label, task_id in tracked().items()}
        for task in active:
            _draw_progress(task, labels.get(task.id, f"{task.name} #{task.id}"))

    with st.sidebar:
        _live(load, draw, bool, run_every)
