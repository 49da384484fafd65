"""The HTML pages: a static shell per view. Task data never enters the HTML; dashboard.js fetches it from
the API and writes it with textContent, and the Content-Security-Policy forbids inline scripts as a backstop."""

from __future__ import annotations

import json
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from taskq.lifecycle import CANCELLABLE, RETRYABLE
from taskq.model import ACTIVE_STATUSES, STATUS_CLASSES, Status, in_enum_order
from taskq.store.metrics import RUN_OUTCOMES

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# What dashboard.js knows of statuses, all from model.py and lifecycle.py: each status's class (which
# dashboard.css colours, so a new status has a colour), and which statuses are active (polled fast, a
# Cancel button), cancellable and retryable. JSON in an attribute of <body>, read once by the script (the
# CSP allows no inline script); the script itself names no status.
LIFECYCLE = json.dumps(
    {
        "classes": {status.value: STATUS_CLASSES[status].value for status in Status},
        "active": [status.value for status in in_enum_order(ACTIVE_STATUSES)],
        "cancellable": [status.value for status in CANCELLABLE],
        "retryable": [status.value for status in RETRYABLE],
    },
    separators=(",", ":"),
)


def _layout(title: str, view: str, body: str, *, task_id: int | None = None, status_code: int = 200) -> HTMLResponse:
    counts = "".join(
        f'<a class="count" data-status="{escape(s.value)}" href="/?status={escape(s.value)}">'
        f'<span class="n">-</span><span class="label">{escape(s.value.replace("_", " "))}</span></a>'
        for s in Status
    )
    task_attr = "" if task_id is None else f' data-task-id="{int(task_id)}"'
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · taskq</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
<body data-view="{escape(view)}"{task_attr} data-lifecycle="{escape(LIFECYCLE)}">
<header>
<h1><a href="/">taskq</a></h1>
<nav id="views" aria-label="views">{_views(view)}</nav>
<nav id="counts" aria-label="tasks by status">{counts}</nav>
<span id="live" role="status">connecting…</span>
</header>
<main>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


VIEWS = (("list", "/", "Tasks"), ("queues", "/queues", "Queues"), ("workers", "/workers", "Workers"),
         ("schedules", "/schedules", "Schedules"), ("charts", "/charts", "Charts"))  # fmt: skip


def _views(current: str) -> str:
    current_mark = ' aria-current="page"'
    return "".join(
        f'<a href="{href}"{current_mark if view == current else ""}>{label}</a>' for view, href, label in VIEWS
    )


def _status_options() -> str:
    return '<option value="">any status</option>' + "".join(
        f'<option value="{escape(s.value)}">{escape(s.value.replace("_", " "))}</option>' for s in Status
    )


TASK_TABLE = """<table class="tasks">
<thead><tr><th class="pick"><input type="checkbox" class="pick-page" aria-label="select every task on this page"></th>
<th>id</th><th>name</th><th>queue</th><th>status</th><th>progress</th><th>attempts</th>
<th>created (UTC)</th><th></th></tr></thead>
<tbody></tbody>
</table>
<p class="empty" hidden>No tasks.</p>"""

WORKERS_TABLE = """<table class="workers"><thead><tr><th>name</th><th>host</th><th>pid</th><th>queues</th>
<th>current task</th><th>done</th><th>heartbeat (UTC)</th></tr></thead><tbody></tbody></table>"""


async def index(_request: Request) -> HTMLResponse:
    body = f"""<form id="filters" autocomplete="off">
<label>status <select name="status">{_status_options()}</select></label>
<label>name <input name="name" type="search" placeholder="part of a name, e.g. email" list="known-names"></label>
<label>queue <select name="queue"><option value="">any queue</option></select></label>
<label>error <input name="error" type="search" placeholder="text in the error"></label>
<label>arguments <input name="args" type="search" placeholder="text in args or kwargs"></label>
<label class="jump">id <input name="id" type="search" inputmode="numeric" placeholder="go to id"></label>
<label>rows <select name="limit"><option value="">50</option><option value="100">100</option>
<option value="500">500</option></select></label>
<datalist id="known-names"></datalist>
</form>
<div id="bulk">
<span class="selected" hidden><span class="n">0</span> selected:
<button type="button" data-bulk="retry" data-scope="selection">Retry</button>
<button type="button" data-bulk="cancel" data-scope="selection">Cancel</button></span>
<span class="matching">Everything matching:
<button type="button" data-bulk="retry" data-scope="filter">Retry all…</button>
<button type="button" data-bulk="cancel" data-scope="filter">Cancel all…</button></span>
<div class="confirm" role="alertdialog" hidden><span class="question"></span>
<button type="button" class="yes">Confirm</button> <button type="button" class="no">Keep them</button></div>
</div>
<section id="task-list">
{TASK_TABLE}
<nav class="pager" aria-label="pages">
<button type="button" data-page="newest">&laquo; newest</button>
<button type="button" data-page="newer">&lsaquo; newer</button>
<button type="button" data-page="older">older &rsaquo;</button>
<button type="button" data-page="oldest">oldest &raquo;</button>
</nav>
</section>
<section id="workers">
<h2>Workers <span class="n"></span></h2>
{WORKERS_TABLE}
</section>"""
    return _layout("tasks", "list", body)


async def task_page(request: Request) -> HTMLResponse:
    task_id = int(request.path_params["task_id"])
    body = f"""<section id="task">
<h2>Task {task_id} <span class="name"></span> <span class="status"></span></h2>
<p class="problem" hidden></p>
<div class="actions">
<button type="button" class="cancel" hidden>Cancel</button>
<button type="button" class="retry" hidden>Retry</button>
</div>
<div class="body">
<div class="progress-line"></div>
<dl class="fields"></dl>
<h3>Arguments</h3>
<pre class="args"></pre>
<h3>Keyword arguments</h3>
<pre class="kwargs"></pre>
<h3>Result</h3>
<pre class="result"></pre>
<h3>Error log</h3>
<p class="no-errors">No errors.</p>
<ol class="error-log" hidden></ol>
<h3>Children <span class="children-counts"></span></h3>
<section id="children">
{TASK_TABLE}
</section>
</div>
</section>"""
    return _layout(f"task {task_id}", "task", body, task_id=task_id)


async def queues_page(_request: Request) -> HTMLResponse:
    body = """<section id="queues"><h2>Queues</h2>
<table><thead><tr><th>queue</th><th>ready</th><th>oldest ready waiting</th><th>scheduled</th><th>retrying</th>
<th>running</th><th></th></tr></thead><tbody></tbody></table>
<p class="empty" hidden>No queue has pending or running tasks.</p></section>"""
    return _layout("queues", "queues", body)


async def workers_page(_request: Request) -> HTMLResponse:
    body = f"""<section id="workers"><h2>Workers <span class="n"></span></h2>{WORKERS_TABLE}
<p class="empty" hidden>No live workers.</p></section>"""
    return _layout("workers", "workers", body)


async def schedules_page(_request: Request) -> HTMLResponse:
    body = """<section id="schedules"><h2>Schedules</h2>
<table><thead><tr><th>schedule</th><th>task</th><th>every</th><th>next run</th><th>last run</th>
<th>last outcome</th></tr></thead><tbody></tbody></table>
<p class="empty" hidden>No schedules (see the schedule: section of settings.yaml).</p></section>"""
    return _layout("schedules", "schedules", body)


async def charts_page(_request: Request) -> HTMLResponse:
    outcomes = " ".join(
        f'<span class="key {escape(outcome)} {STATUS_CLASSES[Status(outcome)]}">{escape(outcome)}</span>'
        for outcome in RUN_OUTCOMES
    )
    body = f"""<form id="chart-filters" autocomplete="off">
<label>window <select name="window"><option value="hour">last hour</option>
<option value="day">last day</option></select></label>
<label>queue <select name="queue"><option value="">any queue</option></select></label>
<label>task <select name="name"><option value="">any task</option></select></label>
</form>
<section id="charts">
<figure class="chart" id="throughput-chart"><figcaption>Finished per <span class="step">minute</span>:
{outcomes}</figcaption>
<svg role="img"></svg></figure>
<figure class="chart" id="depth-chart"><figcaption>Queue depth: <span class="key ready">ready</span>
<span class="key pending">pending</span> <span class="key running">running</span></figcaption>
<svg role="img"></svg></figure>
<h2>Run time by task</h2>
<table id="runtimes"><thead><tr><th>task</th><th>runs</th><th>p50</th><th>p95</th><th>p99</th></tr></thead>
<tbody></tbody></table>
<p class="empty" hidden>No task finished in this window.</p>
</section>"""
    return _layout("charts", "charts", body)


def not_found() -> HTMLResponse:
    body = '<p class="problem">No such page. <a href="/">All tasks</a></p>'
    return _layout("not found", "missing", body, status_code=404)


routes = [
    Route("/", index, methods=["GET"]),
    Route("/tasks/{task_id:task_id}", task_page, methods=["GET"]),
    Route("/queues", queues_page, methods=["GET"]),
    Route("/workers", workers_page, methods=["GET"]),
    Route("/schedules", schedules_page, methods=["GET"]),
    Route("/charts", charts_page, methods=["GET"]),
]
