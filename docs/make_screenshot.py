"""Regenerate the dashboard screenshots in docs/ (task list, charts, phone): a real dashboard and worker
pool on a scratch database, tasks in different states (one running with progress, scheduled, retrying,
failed), photographed by Playwright with the system Chromium.

    PYTHONPATH=. python docs/make_screenshot.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
OUTPUT = DOCS / "dashboard.png"
CHARTS = DOCS / "dashboard-charts.png"
PHONE = DOCS / "dashboard-phone.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/taskq.db"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TASKQ_DATABASE_URL": ""}
        taskq = [sys.executable, "-m", "taskq", "--db", url]
        server = subprocess.Popen([*taskq, "dashboard", "--port", str(port)], cwd=scratch, env=env)
        pool = subprocess.Popen([*taskq, "worker", "--workers", "2"], cwd=scratch, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/api/stats", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the dashboard did not start"
                    time.sleep(0.1)

            def enqueue(**body: Any) -> int:
                request = urllib.request.Request(
                    base + "/api/tasks", json.dumps(body).encode(), {"Content-Type": "application/json", "X-Taskq": "1"}
                )
                return int(json.load(urllib.request.urlopen(request))["id"])

            def task(task_id: int) -> dict[str, Any]:
                return json.load(urllib.request.urlopen(f"{base}/api/tasks/{task_id}"))

            for n in range(12):
                enqueue(name="taskq.echo", args=[f"thumbnail-{n}.png"])
            for n in range(3):
                enqueue(name="taskq.echo", args=[f"report-{n}.pdf"], kwargs={"pages": 10 + n})
            enqueue(name="taskq.sleep", args=["not a number"], max_retries=0)
            enqueue(name="taskq.sleep", args=["still not a number"], max_retries=3)  # fails, then waits to retry
            cancelled = enqueue(name="taskq.echo", args=["newsletter"], delay="1h")
            urllib.request.urlopen(
                urllib.request.Request(f"{base}/api/tasks/{cancelled}/cancel", b"{}", {"X-Taskq": "1"}, method="POST")
            )
            enqueue(name="taskq.echo", args=["nightly-backup"], delay="6h", queue="maintenance")
            running = [enqueue(name="taskq.sleep", kwargs={"seconds": seconds}) for seconds in (40, 25)]
            deadline = time.monotonic() + 60
            while task(running[0])["progress"] < 30:
                assert time.monotonic() < deadline, "the sleep task made no progress"
                time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 720})
                page.goto(base + "/")
                page.wait_for_selector(f'tr[data-task-id="{running[0]}"]')
                time.sleep(1.5)  # let a poll or two settle the counts and bars
                page.screenshot(path=str(OUTPUT))
                page.set_viewport_size({"width": 1200, "height": 640})
                page.goto(base + "/charts")
                page.wait_for_selector("#throughput-chart svg rect")
                time.sleep(1.0)
                page.screenshot(path=str(CHARTS))
                phone = browser.new_page(viewport={"width": 390, "height": 780}, is_mobile=True)
                phone.goto(base + "/")
                phone.wait_for_selector(f'tr[data-task-id="{running[0]}"]')
                time.sleep(1.5)
                phone.screenshot(path=str(PHONE))
                browser.close()
            print(f"wrote {OUTPUT}, {CHARTS}, {PHONE}")
        finally:
            for process in (server, pool):
                process.send_signal(signal.SIGTERM)
            for process in (server, pool):
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
