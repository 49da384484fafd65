// taskq dashboard: polls the JSON API and writes task data with textContent only (never innerHTML),
// so arguments, results and errors always render as text.
"use strict";

const POLL_MS = 800; // below one second so a bar visibly moves every second even with a slow response
const ACTIVE = new Set(["pending", "running", "waiting_for_children"]);
const RETRYABLE = new Set(["failed", "cancelled"]);

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function post(path, body = {}) {
  // X-Taskq marks the request as ours: the server refuses POSTs without it (cross-site protection).
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Taskq": "1" },
    body: JSON.stringify(body),
  });
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function when(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : "";
}

function pretty(value) {
  return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.classList.toggle("offline", !ok);
}

function say(text) {
  setLive(false, text);
}

function progressBar() {
  const wrap = el("div", { class: "progress" });
  const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" });
  bar.append(el("div", { class: "fill" }));
  wrap.append(bar, el("span", { class: "pct" }));
  return wrap;
}

function updateProgress(wrap, task) {
  const bar = wrap.querySelector(".bar");
  const percent = Math.round(task.progress * 10) / 10;
  bar.setAttribute("aria-valuenow", String(percent));
  bar.querySelector(".fill").style.width = `${percent}%`;
  wrap.querySelector(".pct").textContent = `${percent.toFixed(0)}%`;
  wrap.title = task.progress_message || "";
}

async function act(kind, taskId) {
  try {
    await post(`/api/tasks/${taskId}/${kind}`);
    refreshSoon();
  } catch (error) {
    say(`${kind} ${taskId}: ${error.message}`);
  }
}

// -- task tables (the list view and a task's children) ----------------------------------------------

class TaskTable {
  constructor(table) {
    this.table = table;
    this.body = table.querySelector("tbody");
    this.empty = table.parentElement.querySelector(".empty");
    this.rows = new Map();
  }

  makeRow(taskId) {
    const row = el("tr", { "data-task-id": String(taskId) });
    const link = el("a", { href: `/tasks/${taskId}` }, String(taskId));
    const idCell = el("td", { class: "id" });
    idCell.append(link);
    const progressCell = el("td", { class: "progress-cell" });
    progressCell.append(progressBar());
    const actions = el("td", { class: "actions" });
    const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
    const retry = el("button", { type: "button", class: "retry" }, "Retry");
    cancel.addEventListener("click", () => act("cancel", taskId));
    retry.addEventListener("click", () => act("retry", taskId));
    actions.append(cancel, retry);
    row.append(
      idCell,
      el("td", { class: "name" }),
      el("td", { class: "queue" }),
      el("td", { class: "status" }),
      progressCell,
      el("td", { class: "attempts" }),
      el("td", { class: "created" }),
      actions,
    );
    return row;
  }

  render(tasks) {
    const seen = new Set();
    tasks.forEach((task, index) => {
      let row = this.rows.get(task.id);
      if (!row) {
        row = this.makeRow(task.id);
        this.rows.set(task.id, row);
      }
      seen.add(task.id);
      row.querySelector(".name").textContent = task.name;
      row.querySelector(".queue").textContent = task.queue;
      const status = row.querySelector(".status");
      status.textContent = task.status.replaceAll("_", " ") + (task.cancel_requested && ACTIVE.has(task.status) ? " (cancelling)" : "");
      row.dataset.status = task.status;
      updateProgress(row.querySelector(".progress"), task);
      row.querySelector(".attempts").textContent = `${task.attempts}/${task.max_retries + 1}`;
      row.querySelector(".created").textContent = when(task.created_at);
      row.querySelector("button.cancel").hidden = !ACTIVE.has(task.status) || task.cancel_requested;
      row.querySelector("button.retry").hidden = !RETRYABLE.has(task.status);
      if (this.body.children[index] !== row) this.body.insertBefore(row, this.body.children[index] || null);
    });
    for (const [taskId, row] of this.rows) {
      if (!seen.has(taskId)) {
        row.remove();
        this.rows.delete(taskId);
      }
    }
    if (this.empty) this.empty.hidden = tasks.length > 0;
  }
}

// -- views ------------------------------------------------------------------------------------------

async function refreshCounts() {
  const counts = await api("/api/stats");
  for (const link of document.querySelectorAll("#counts .count")) {
    link.querySelector(".n").textContent = String(counts[link.dataset.status] ?? 0);
  }
}

function listView() {
  const form = document.getElementById("filters");
  const table = new TaskTable(document.querySelector("#task-list table"));
  const more = document.getElementById("more");
  const workers = document.querySelector("#workers tbody");
  let pageSize = 50;

  const params = new URLSearchParams(location.search);
  for (const field of form.elements) if (params.has(field.name)) field.value = params.get(field.name);

  function query() {
    const query = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value.trim()) query.set(field.name, field.value.trim());
    return query;
  }

  form.addEventListener("input", () => {
    const filters = query().toString();
    history.replaceState(null, "", filters ? `/?${filters}` : "/");
    pageSize = 50;
    refreshSoon();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => {
    pageSize = Math.min(pageSize * 2, 500);
    refreshSoon();
  });

  return async () => {
    const filters = query();
    filters.set("limit", String(pageSize));
    const [page, live] = await Promise.all([api(`/api/tasks?${filters}`), api("/api/workers"), refreshCounts()]);
    table.render(page.tasks);
    more.hidden = page.next_before_id === null || pageSize >= 500;
    workers.replaceChildren(
      ...live.workers.map((worker) => {
        const row = el("tr");
        const current = worker.current_task_id === null ? "idle" : `task ${worker.current_task_id}`;
        for (const text of [worker.name, worker.hostname, String(worker.pid), worker.queues.join(", ") || "all",
          current, String(worker.tasks_done), when(worker.heartbeat_at)]) row.append(el("td", {}, text));
        return row;
      }),
    );
    document.querySelector("#workers h2 .n").textContent = `(${live.workers.length} live)`;
  };
}

function taskView(taskId) {
  const root = document.getElementById("task");
  const children = new TaskTable(document.querySelector("#children table"));
  const progress = progressBar();
  root.querySelector(".progress-line").append(progress);
  root.querySelector("button.cancel").addEventListener("click", () => act("cancel", taskId));
  root.querySelector("button.retry").addEventListener("click", () => act("retry", taskId));
  let lastErrors = -1;

  function fields(task) {
    const list = root.querySelector(".fields");
    const rows = [
      ["queue", task.queue], ["priority", String(task.priority)], ["attempts", `${task.attempts}/${task.max_retries + 1}`],
      ["dedup key", task.dedup_key || "—"], ["parent", task.parent_id === null ? "—" : String(task.parent_id)],
      ["worker", task.worker_id || "—"], ["progress message", task.progress_message || "—"],
      ["created", when(task.created_at)], ["run after", when(task.run_after)], ["started", when(task.started_at)],
      ["finished", when(task.finished_at)],
    ];
    list.replaceChildren(...rows.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
    if (task.parent_id !== null) {
      const link = el("a", { href: `/tasks/${task.parent_id}` }, String(task.parent_id));
      list.querySelectorAll("dd")[4].replaceChildren(link);
    }
  }

  function errorLog(task) {
    if (task.error_log.length === lastErrors) return; // keep open <details> open between polls
    lastErrors = task.error_log.length;
    const entries = task.error_log.length ? task.error_log : task.error ? [{ attempt: task.attempts, at: null, error: task.error }] : [];
    if (!entries.length) {
      root.querySelector(".error-log").replaceChildren(el("li", { class: "empty" }, "No errors."));
      return;
    }
    root.querySelector(".error-log").replaceChildren(
      ...entries.map((entry, index) => {
        const item = el("li");
        const details = el("details");
        if (index === entries.length - 1) details.open = true;
        const lastLine = (entry.error || "").trim().split("\n").pop();
        details.append(el("summary", {}, `attempt ${entry.attempt}${entry.at ? ` at ${when(entry.at)}` : ""}: ${lastLine}`));
        details.append(el("pre", {}, entry.error || ""));
        item.append(details);
        return item;
      }),
    );
  }

  return async () => {
    let task;
    try {
      task = await api(`/api/tasks/${taskId}`);
    } catch (error) {
      const problem = root.querySelector(".problem");
      problem.textContent = error.message;
      problem.hidden = false;
      await refreshCounts();
      return;
    }
    root.querySelector("h2 .name").textContent = task.name;
    const status = root.querySelector("h2 .status");
    status.textContent = task.status.replaceAll("_", " ") + (task.cancel_requested && ACTIVE.has(task.status) ? " (cancelling)" : "");
    status.dataset.status = task.status;
    root.dataset.status = task.status;
    root.querySelector("button.cancel").hidden = !ACTIVE.has(task.status) || task.cancel_requested;
    root.querySelector("button.retry").hidden = !RETRYABLE.has(task.status);
    updateProgress(progress, task);
    fields(task);
    root.querySelector(".args").textContent = pretty(task.args);
    root.querySelector(".kwargs").textContent = pretty(task.kwargs);
    root.querySelector(".result").textContent = pretty(task.result);
    errorLog(task);
    const counts = Object.entries(task.children_by_status).filter(([, n]) => n > 0);
    root.querySelector(".children-counts").textContent = counts.length
      ? `(${counts.map(([name, n]) => `${name.replaceAll("_", " ")}: ${n}`).join(", ")})`
      : "";
    const [page] = await Promise.all([api(`/api/tasks?parent=${taskId}&limit=500`), refreshCounts()]);
    children.render(page.tasks);
  };
}

// -- the poll loop ----------------------------------------------------------------------------------

let refresh = async () => {};
let timer = null;

async function poll() {
  clearTimeout(timer);
  const started = performance.now();
  try {
    await refresh();
    setLive(true, `live · ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setLive(false, `offline: ${error.message}`);
  }
  timer = setTimeout(poll, Math.max(50, POLL_MS - (performance.now() - started)));
}

function refreshSoon() {
  clearTimeout(timer);
  timer = setTimeout(poll, 0);
}

document.addEventListener("DOMContentLoaded", () => {
  const view = document.body.dataset.view;
  if (view === "list") refresh = listView();
  else if (view === "task") refresh = taskView(Number(document.body.dataset.taskId));
  else refresh = refreshCounts;
  poll();
});
