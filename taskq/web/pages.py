"""The HTML pages: a static shell per view. Task data never enters the HTML; dashboard.js fetches it from
the API and writes it with textContent, and the Content-Security-Policy forbids inline scripts as a backstop."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from taskq.model import Status

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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
<body data-view="{escape(view)}"{task_attr}>
<header>
<h1><a href="/">taskq</a></h1>
<nav id="counts">{counts}</nav>
<span id="live" role="status">connecting…</span>
</header>
<main>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def _status_options() -> str:
    return '<option value="">any status</option>' + "".join(
        f'<option value="{escape(s.value)}">{escape(s.value.replace("_", " "))}</option>' for s in Status
    )


TASK_TABLE = """<table class="tasks">
<thead><tr><th>id</th><th>name</th><th>queue</th><th>status</th><th>progress</th><th>attempts</th>
<th>created (UTC)</th><th></th></tr></thead>
<tbody></tbody>
</table>
<p class="empty" hidden>No tasks.</p>"""


async def index(_request: Request) -> HTMLResponse:
    body = f"""<form id="filters" autocomplete="off">
<label>status <select name="status">{_status_options()}</select></label>
<label>name <input name="name" type="search" placeholder="e.g. taskq.sleep"></label>
<label>queue <input name="queue" type="search" placeholder="default"></label>
</form>
<section id="task-list">
{TASK_TABLE}
<button type="button" id="more" hidden>older tasks</button>
</section>
<section id="workers">
<h2>Workers <span class="n"></span></h2>
<table><thead><tr><th>name</th><th>host</th><th>pid</th><th>queues</th><th>current task</th><th>done</th>
<th>heartbeat (UTC)</th></tr></thead><tbody></tbody></table>
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
<div class="progress-line"></div>
<dl class="fields"></dl>
<h3>Arguments</h3>
<pre class="args"></pre>
<h3>Keyword arguments</h3>
<pre class="kwargs"></pre>
<h3>Result</h3>
<pre class="result"></pre>
<h3>Error log</h3>
<ol class="error-log"></ol>
<h3>Children <span class="children-counts"></span></h3>
<section id="children">
{TASK_TABLE}
</section>
</section>"""
    return _layout(f"task {task_id}", "task", body, task_id=task_id)


def not_found() -> HTMLResponse:
    body = '<p class="problem">No such page. <a href="/">All tasks</a></p>'
    return _layout("not found", "missing", body, status_code=404)


routes = [
    Route("/", index, methods=["GET"]),
    Route("/tasks/{task_id:int}", task_page, methods=["GET"]),
]
