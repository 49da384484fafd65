"""Company research in Streamlit, run by a taskq worker: submit, go to another page (or close the tab),
come back, and the result is there.

Run it from the repository root, in two terminals (the same database for both):

    export TASKQ_DATABASE_URL=sqlite:///$PWD/research.db
    python -m streamlit run examples/streamlit_app.py
    python -m taskq --import examples.streamlit_tasks worker

The job's id is kept in st.session_state (page switches and reruns keep it) and the job is found again
in the database by its dedup key, so a new session (reload, another browser) that asks about the same
company sees the running job or its result instead of starting another.
"""

from __future__ import annotations

import streamlit as st

import taskq
from examples.streamlit_tasks import research_company
from taskq.settings import DATABASE, environment_value
from taskq.streamlit import active_tasks_sidebar, find, submit, task_status, tracked


@st.cache_resource
def open_store(url: str) -> taskq.Store:
    return taskq.open_store(url)  # one engine per database for the whole server, shared by all sessions


def research_key(company: str) -> str:
    return f"research:{company.strip().lower()}"


def show_research(result: dict[str, object]) -> None:
    st.success(str(result["summary"]))
    with st.expander("Notes"):
        for note in result.get("notes", []):
            st.write(note)


def start_research(store: taskq.Store) -> None:
    # A button callback runs before the rerun it triggers, so that whole run already sees the new task.
    company = st.session_state["company"].strip()
    submit(
        store,
        research_company.name,
        [company],
        {"sources": st.session_state["sources"]},
        dedup_key=research_key(company),
        label=company,
    )
    st.session_state["last_company"] = company


def research_page(store: taskq.Store) -> None:
    st.header("Company research")
    # A widget's state is dropped while its page is not shown, so the company typed last is kept apart.
    company = st.text_input("Company", value=st.session_state.get("last_company", ""), key="company").strip()
    st.slider("Sources to read", 1, 10, 3, key="sources")
    if company:
        known = find(store, research_key(company), label=company)  # this session's, or an earlier session's
        running = known is not None and known.is_active
        st.button("Research", key="research", disabled=running, on_click=start_research, args=(store,))
    for label, task_id in reversed(list(tracked().items())):
        st.subheader(label)
        task_status(store, task_id, label=label, show_result=show_research)


def notes_page() -> None:
    st.header("Notes")
    st.write("Research keeps running in the worker while you are here; the sidebar shows its progress.")


# The URL is the cache's key: TASKQ_DATABASE_URL, else sqlite:///taskq.db, as every taskq command reads it.
store = open_store(environment_value(DATABASE))
page = st.sidebar.radio("Page", ["Research", "Notes"], key="page")
if page == "Research":
    research_page(store)
else:
    notes_page()
active_tasks_sidebar(store, names=[research_company.name])  # last, so it already shows a task submitted above
