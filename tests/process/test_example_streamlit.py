"""examples/streamlit_app.py and taskq.streamlit under Streamlit's AppTest, with a real worker pool on
a real SQLite file: submit, navigate away, come back to the result; a new session finds the job too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from example_processes import REPO, start_worker, wait_until

import taskq

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

APP = REPO / "examples" / "streamlit_app.py"
RUN_SECONDS = 30.0  # a cold first run imports pandas and friends


@pytest.fixture
def research_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'research.db'}"
    monkeypatch.setenv("TASKQ_DATABASE_URL", url)
    monkeypatch.syspath_prepend(str(REPO))  # the app imports examples.streamlit_tasks, as `python -m streamlit` does
    yield url


def new_session() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=RUN_SECONDS)
    app.run()
    assert not app.exception, app.exception
    return app


def sidebar_text(app: AppTest) -> str:
    return " ".join([c.value for c in app.sidebar.caption] + [p.proto.text for p in app.sidebar.get("progress")])


def test_submit_navigate_away_come_back_and_a_new_session_finds_it(tmp_path: Path, research_db: str) -> None:
    app = new_session()
    assert "Nothing running." in sidebar_text(app)
    app.text_input(key="company").input("ACME").run()
    app.slider(key="sources").set_value(2).run()
    app.button(key="research").click().run()
    assert not app.exception, app.exception
    task_id = app.session_state["taskq_tasks"]["ACME"]
    assert "1 active" in sidebar_text(app) and "Updating live" in sidebar_text(app)
    assert app.button(key="research").disabled  # one research per company at a time
    assert [bar.proto.text for bar in app.main.get("progress")] == ["ACME: queued"]

    app.sidebar.radio(key="page").set_value("Notes").run()
    assert [h.value for h in app.header] == ["Notes"]
    assert "ACME: queued" in sidebar_text(app)  # the sidebar keeps showing it on every page

    store = taskq.open_store(research_db)
    worker = start_worker(tmp_path, research_db, "examples.streamlit_tasks", workers=1)
    try:
        wait_until(lambda: not store.require(task_id).is_active, timeout=30, what="research done", services=(worker,))
    finally:
        worker.stop()
        store.dispose()

    app.sidebar.radio(key="page").set_value("Research").run()
    assert not app.exception, app.exception
    assert app.text_input(key="company").value == "ACME"
    assert [s.value for s in app.success] == ["ACME: 2 sources read, all say it is hiring."]
    assert "Nothing running." in sidebar_text(app) and "Updating live" not in sidebar_text(app)
    assert not app.button(key="research").disabled

    # A new session (reload, another browser) has an empty session_state; the database still knows.
    other = new_session()
    assert not other.success
    other.text_input(key="company").input("acme").run()
    assert other.session_state["taskq_tasks"] == {"acme": task_id}
    assert [s.value for s in other.success] == ["ACME: 2 sources read, all say it is hiring."]


def test_the_cancel_button_cancels_a_queued_task(research_db: str) -> None:
    app = new_session()
    app.text_input(key="company").input("Initech").run()
    app.button(key="research").click().run()
    task_id = app.session_state["taskq_tasks"]["Initech"]
    app.button(key=f"taskq_cancel_{task_id}").click().run()
    assert not app.exception, app.exception
    store = taskq.open_store(research_db)
    try:
        assert store.require(task_id).status is taskq.Status.CANCELLED
    finally:
        store.dispose()
    assert [i.value for i in app.info] == ["Initech was cancelled"]
    assert "Nothing running." in sidebar_text(app)


def test_sidebar_and_page_describe_a_running_task_alike(research_db: str) -> None:
    from taskq.streamlit import _describe

    store = taskq.open_store(research_db)
    try:
        task_id = store.enqueue("taskq.echo").id
        claimed = store.claim("w")
        assert claimed is not None and claimed.id == task_id
        store.set_progress(task_id, 20.0, "read 2 of 10")
        assert _describe(store.require(task_id)) == "20% · read 2 of 10"
        store.set_progress(task_id, 0.0)
        assert _describe(store.require(task_id)) == "0%"
    finally:
        store.dispose()
