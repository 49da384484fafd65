"""The dashboard in a real browser: Playwright drives the system Chromium against a real `taskq dashboard`
and a real `taskq worker` pool, both subprocesses on one SQLite file. Screenshots land in test-artifacts/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVED_QUEUES = "default"  # the pool leaves other queues alone, so a test can hold tasks where it wants them
STARTUP_SECONDS = 30.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (the [test] extra)")
pytest.importorskip("starlette", reason="needs the web extra")

import taskq  # noqa: E402
from taskq.model import TaskRequest  # noqa: E402
from taskq.store import Store  # noqa: E402

expect = sync_api.expect
expect.set_options(timeout=15_000)  # a busy 2-core CI machine; every wait still ends at a deadline


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], what: str, timeout: float = STARTUP_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def spawn(url: str, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    log = (cwd / f"{args[0]}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "taskq", "--db", url, *args],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TASKQ_DATABASE_URL": ""},
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Dashboard:
    def __init__(self, base: str, store: Store) -> None:
        self.base = base
        self.store = store

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json", "X-Taskq": "1"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def enqueue(self, **body: Any) -> int:
        return int(self.api("POST", "/api/tasks", body)["id"])


def _serving(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/stats", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    directory = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{directory / 'taskq.db'}"
    store = taskq.open_store(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = spawn(url, directory, "dashboard", "--port", str(port))
    pool = spawn(url, directory, "worker", "--workers", "2", "--queues", SERVED_QUEUES)
    try:
        wait_until(lambda: server.poll() is None and _serving(base), "the dashboard to serve")
        wait_until(lambda: pool.poll() is None and len(store.list_workers()) == 2, "two live workers")
        yield Dashboard(base, store)
    finally:
        stop(server)
        stop(pool)
        store.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; it fails the test on any script error or console error (a CSP violation is one)."""
    opened = browser.new_page(viewport={"width": 1280, "height": 860})
    opened.set_default_timeout(15_000)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    try:
        yield opened
        assert problems == []
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        opened.close()


def row(page: Any, task_id: int, within: str = "#task-list") -> Any:
    return page.locator(f'{within} tr[data-task-id="{task_id}"]')


def test_a_task_enqueued_through_the_api_appears_and_completes_live(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.base + "/")
    expect(page.locator("#live")).to_contain_text("live")
    page.evaluate("window.notReloaded = true")
    task_id = dashboard.enqueue(name="taskq.echo", args=["hello"])
    expect(row(page, task_id).locator(".name")).to_have_text("taskq.echo")
    expect(row(page, task_id).locator(".status")).to_have_text("completed")
    expect(page.locator('#counts .count[data-status="completed"] .n')).not_to_have_text("0")
    expect(page.locator("#workers h2 .n")).to_have_text("(2 live)")
    assert page.evaluate("window.notReloaded") is True


def test_progress_bar_advances_and_the_cancel_button_stops_the_task(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.base + "/?name=taskq.sleep")
    expect(page.locator('#filters select[name="status"]')).to_have_value("")
    expect(page.locator('#filters input[name="name"]')).to_have_value("taskq.sleep")
    page.evaluate("window.notReloaded = true")
    task_id = dashboard.enqueue(name="taskq.sleep", kwargs={"seconds": 60, "steps": 600})
    line = row(page, task_id)
    expect(line.locator(".status")).to_have_text("running")
    bar = line.locator(".bar")
    read = 'bar => Number(bar.getAttribute("aria-valuenow"))'
    page.wait_for_function(
        "id => Number(document.querySelector(`tr[data-task-id='${id}'] .bar`).getAttribute('aria-valuenow')) > 0",
        arg=task_id,
    )
    first = bar.evaluate(read)
    # Two further visible advances prove the page keeps polling, not a single late refresh.
    for _ in range(2):
        page.wait_for_function(
            "([id, seen]) => Number(document.querySelector(`tr[data-task-id='${id}'] .bar`)"
            ".getAttribute('aria-valuenow')) > seen",
            arg=[task_id, bar.evaluate(read)],
        )
    advanced = bar.evaluate(read)
    assert 0 < first < advanced < 100
    line.locator("button.cancel").click()
    expect(line.locator(".status")).to_have_text("cancelled")
    expect(line.locator("button.retry")).to_be_visible()
    assert dashboard.store.require(task_id).status is taskq.Status.CANCELLED
    assert bar.evaluate(read) < 100
    assert page.evaluate("window.notReloaded") is True


def test_task_data_renders_as_text_never_as_markup(page: Any, dashboard: Dashboard) -> None:
    script = "<script>window.pwned = true</script>"
    image = "<img src=/nowhere onerror=window.pwned=true>"  # no quotes: JSON shows it unchanged
    # float("<script>...") fails, so the payload also reaches the error log through a real traceback.
    failing = dashboard.enqueue(name="taskq.sleep", args=[script], max_retries=0)
    echoed = dashboard.enqueue(name="taskq.echo", args=[image], kwargs={"html": script})
    held = dashboard.enqueue(name="taskq.echo", queue=image)  # a queue no worker serves: it stays pending

    page.goto(dashboard.base + "/")
    expect(row(page, held).locator(".queue")).to_have_text(image)
    expect(row(page, echoed).locator(".status")).to_have_text("completed")

    page.goto(f"{dashboard.base}/tasks/{echoed}")
    expect(page.locator("#task pre.args")).to_contain_text(image)
    expect(page.locator("#task pre.kwargs")).to_contain_text(script)
    expect(page.locator("#task pre.result")).to_contain_text(image)
    assert page.locator("main script, main img").count() == 0

    page.goto(f"{dashboard.base}/tasks/{failing}")
    expect(page.locator("#task h2 .status")).to_have_text("failed")
    expect(page.locator("#task pre.args")).to_contain_text(script)
    expect(page.locator("#task .error-log li details")).to_have_count(1)
    expect(page.locator("#task .error-log")).to_contain_text("could not convert string to float")
    expect(page.locator("#task .error-log")).to_contain_text(script)
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.pwned") is None

    page.locator("#task > .actions button.retry").click()
    expect(page.locator("#task .error-log li details")).to_have_count(2)  # it ran again and failed again
    expect(page.locator("#task h2 .status")).to_have_text("failed")
    assert page.evaluate("window.pwned") is None


def test_task_values_show_big_integers_and_floats_exactly(page: Any, dashboard: Dashboard) -> None:
    # JSON.parse would show 2**64 + 1 as 18446744073709552000, 2**53 + 1 as 9007199254740992 and 1.0 as 1.
    values = [2**64 + 1, 2**53 + 1, -(2**63) - 1, 1.0, 1e16]
    echoed = dashboard.enqueue(name="taskq.echo", args=values, kwargs={"big": 2**64 + 1})
    wait_until(lambda: dashboard.store.require(echoed).status.value == "completed", "the echo to complete")

    page.goto(f"{dashboard.base}/tasks/{echoed}")
    expected = json.dumps(values, indent=2)
    expect(page.locator("#task pre.args")).to_have_text(expected)
    expect(page.locator("#task pre.kwargs")).to_have_text(json.dumps({"big": 2**64 + 1}, indent=2))
    expect(page.locator("#task pre.result")).to_contain_text("18446744073709551617")
    assert page.locator("#task pre.result").text_content() == json.dumps(
        {"args": values, "kwargs": {"big": 2**64 + 1}}, indent=2
    )


def test_task_view_lists_children_and_cancels_one(page: Any, dashboard: Dashboard) -> None:
    store = dashboard.store
    parent = store.enqueue("taskq.echo", ["parent"], queue="held").id
    claimed = store.claim("test-harness", queues=["held"])
    assert claimed is not None and claimed.id == parent
    children = store.wait_for_children(parent, [TaskRequest("taskq.echo", [n], queue="held") for n in range(3)])
    assert children is not None

    page.goto(f"{dashboard.base}/tasks/{parent}")
    expect(page.locator("#task h2 .status")).to_have_text("waiting for children")
    expect(page.locator("#children tbody tr")).to_have_count(3)
    expect(page.locator("#task .children-counts")).to_have_text("(pending: 3)")
    row(page, children[0].id, within="#children").locator("button.cancel").click()
    expect(row(page, children[0].id, within="#children").locator(".status")).to_have_text("cancelled")
    expect(page.locator("#task .children-counts")).to_have_text("(pending: 2, cancelled: 1)")

    page.locator("#task > .actions button.cancel").click()
    expect(page.locator("#task h2 .status")).to_have_text("cancelled")
    expect(page.locator("#task .children-counts")).to_have_text("(cancelled: 3)")
