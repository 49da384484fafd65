// taskq dashboard: polls the JSON API and writes task data with textContent only (never innerHTML),
// so arguments, results and errors always render as text. Rows are kept and patched in place: a poll
// that changes nothing writes nothing to the DOM (an idle page with 500 rows costs almost no CPU).
"use strict";

const POLL_MS = 800; // below one second so a bar visibly moves every second even with a slow response
const IDLE_POLL_MS = 2500; // when nothing on the page is active and the last polls changed nothing
const CHART_POLL_MS = 10000;
const PAGE_SIZE = 50;
// What the server knows of statuses (taskq/model.py and lifecycle.py, written into the page by pages.py):
// each status's class (queued, working, waiting, success, failure, stopped), which dashboard.css colours,
// and which statuses are active, cancellable and retryable. This script names no status.
const LIFECYCLE = JSON.parse(document.body.dataset.lifecycle);
const ACTIVE = new Set(LIFECYCLE.active);
const CANCELLABLE = new Set(LIFECYCLE.cancellable);
const RETRYABLE = new Set(LIFECYCLE.retryable);
const classOf = (status) => LIFECYCLE.classes[status] || "";
const SVG = "http://www.w3.org/2000/svg";

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", ...(options.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
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

// Writes only what differs: reading textContent is cheap, writing it costs style and layout work.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}

function when(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : "";
}

// Task values arrive as the JSON text the server wrote (`?values=text`): JSON.parse would read their
// numbers as doubles, rounding integers above 2^53 and showing 1.0 as 1.
function shownText(text) {
  return text === null || text === undefined ? "—" : text;
}

function size(chars) {
  if (chars >= 1048576) return `${(chars / 1048576).toFixed(1)} MB`;
  if (chars >= 1024) return `${(chars / 1024).toFixed(1)} kB`;
  return `${chars} characters`;
}

function duration(seconds) {
  const s = Math.abs(seconds);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(s < 36000 ? 1 : 0)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function relative(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  return seconds >= 0 ? `in ${duration(seconds)}` : `${duration(seconds)} ago`;
}

function runtime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  return seconds < 60 ? `${seconds.toFixed(1)} s` : duration(seconds);
}

// A queued row (pending) that is not due yet is either scheduled (never ran) or waiting out a retry backoff.
function notDue(task) {
  return classOf(task.status) === "queued" && Date.parse(task.run_after) > Date.now();
}

function statusText(task) {
  if (notDue(task)) {
    const next = task.attempts + 1;
    return task.attempts > 0
      ? `retrying ${relative(task.run_after)} (attempt ${next} of ${task.max_retries + 1})`
      : `scheduled ${relative(task.run_after)}`;
  }
  return task.status.replaceAll("_", " ") + (task.cancel_requested && ACTIVE.has(task.status) ? " (cancelling)" : "");
}

function statusKind(task) {
  if (notDue(task)) {
    return task.attempts > 0 ? "retrying" : "scheduled";
  }
  return task.status;
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  setText(live, text);
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
  if (bar.getAttribute("aria-valuenow") !== String(percent)) {
    bar.setAttribute("aria-valuenow", String(percent));
    bar.firstChild.style.width = `${percent}%`;
  }
  setText(wrap.lastChild, `${percent.toFixed(0)}%`);
  if (wrap.title !== (task.progress_message || "")) wrap.title = task.progress_message || "";
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
  constructor(table, onPick = null) {
    this.table = table;
    this.body = table.querySelector("tbody");
    this.empty = table.parentElement.querySelector(".empty");
    this.rows = new Map();
    this.picked = new Set();
    this.onPick = onPick;
    const pickPage = table.querySelector(".pick-page");
    if (pickPage) {
      pickPage.addEventListener("change", () => {
        for (const [taskId, row] of this.rows) {
          row.parts.pick.checked = pickPage.checked;
          if (pickPage.checked) this.picked.add(taskId);
          else this.picked.delete(taskId);
        }
        if (this.onPick) this.onPick();
      });
    }
  }

  makeRow(taskId) {
    const row = el("tr", { "data-task-id": String(taskId) });
    const pickCell = el("td", { class: "pick" });
    const pick = el("input", { type: "checkbox", "aria-label": `select task ${taskId}` });
    pick.addEventListener("change", () => {
      if (pick.checked) this.picked.add(taskId);
      else this.picked.delete(taskId);
      if (this.onPick) this.onPick();
    });
    pickCell.append(pick);
    const idCell = el("td", { class: "id" });
    idCell.append(el("a", { href: `/tasks/${taskId}` }, String(taskId)));
    const progressCell = el("td", { class: "progress-cell" });
    const progress = progressBar();
    progressCell.append(progress);
    const statusCell = el("td", { class: "status-cell" });
    const status = el("span", { class: "status" });
    const errorLine = el("div", { class: "error-line" });
    errorLine.hidden = true;
    statusCell.append(status, errorLine);
    const actions = el("td", { class: "actions" });
    const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
    const retry = el("button", { type: "button", class: "retry" }, "Retry");
    cancel.addEventListener("click", () => act("cancel", taskId));
    retry.addEventListener("click", () => act("retry", taskId));
    actions.append(cancel, retry);
    const name = el("td", { class: "name" });
    const queue = el("td", { class: "queue" });
    const attempts = el("td", { class: "attempts" });
    const created = el("td", { class: "created" });
    row.append(pickCell, idCell, name, queue, statusCell, progressCell, attempts, created, actions);
    row.parts = { pick, name, queue, status, errorLine, progress, attempts, created, cancel, retry };
    return row;
  }

  render(tasks) {
    const seen = new Set();
    let active = false;
    tasks.forEach((task, index) => {
      let row = this.rows.get(task.id);
      if (!row) {
        row = this.makeRow(task.id);
        row.parts.pick.checked = this.picked.has(task.id);
        this.rows.set(task.id, row);
      }
      seen.add(task.id);
      active = active || ACTIVE.has(task.status);
      const c = row.parts;
      setText(c.name, task.name);
      setText(c.queue, task.queue);
      setText(c.status, statusText(task));
      setData(row, "status", statusKind(task));
      setData(row, "statusClass", classOf(task.status));
      const failed = classOf(task.status) === "failure";
      setText(c.errorLine, failed ? task.error_line || "" : "");
      setHidden(c.errorLine, !failed || !task.error_line);
      if (c.errorLine.title !== (task.error_line || "")) c.errorLine.title = task.error_line || "";
      updateProgress(c.progress, task);
      setText(c.attempts, `${task.attempts}/${task.max_retries + 1}`);
      setText(c.created, when(task.created_at));
      setHidden(c.cancel, !CANCELLABLE.has(task.status) || task.cancel_requested);
      setHidden(c.retry, !RETRYABLE.has(task.status));
      if (this.body.children[index] !== row) this.body.insertBefore(row, this.body.children[index] || null);
    });
    for (const [taskId, row] of this.rows) {
      if (!seen.has(taskId)) {
        row.remove();
        this.rows.delete(taskId);
        this.picked.delete(taskId);
      }
    }
    if (this.empty) setHidden(this.empty, tasks.length > 0);
    return active;
  }
}

function renderWorkers(tbody, workers) {
  // Rows keyed by worker id, patched in place like task rows.
  const rows = tbody.rowsById || (tbody.rowsById = new Map());
  const seen = new Set();
  workers.forEach((worker, index) => {
    let row = rows.get(worker.id);
    if (!row) {
      row = el("tr", { "data-worker-id": worker.id });
      for (let i = 0; i < 7; i++) row.append(el("td"));
      row.cells[4].className = "current";
      rows.set(worker.id, row);
    }
    seen.add(worker.id);
    const texts = [worker.name, worker.hostname, String(worker.pid), worker.queues.join(", ") || "all", null,
      String(worker.tasks_done), when(worker.heartbeat_at)];
    texts.forEach((text, i) => text !== null && setText(row.cells[i], text));
    const current = row.cells[4];
    const wanted = worker.current_task_id === null ? "idle" : `task ${worker.current_task_id}`;
    if (current.textContent !== wanted) {
      if (worker.current_task_id === null) current.replaceChildren("idle");
      else current.replaceChildren(el("a", { href: `/tasks/${worker.current_task_id}` }, wanted));
    }
    if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.remove();
      rows.delete(id);
    }
  }
}

// -- views ------------------------------------------------------------------------------------------

async function refreshCounts() {
  const counts = await api("/api/stats");
  for (const link of document.querySelectorAll("#counts .count")) {
    setText(link.querySelector(".n"), String(counts[link.dataset.status] ?? 0));
  }
}

function fillSelect(select, values, keep) {
  const wanted = ["", ...values];
  const have = [...select.options].map((option) => option.value);
  if (have.join("\n") === wanted.join("\n")) return;
  const first = select.options[0];
  select.replaceChildren(first, ...values.map((value) => el("option", { value }, value)));
  select.value = keep;
}

async function loadFacets(form) {
  const facets = await api("/api/facets");
  const queue = form.elements.queue;
  const keepQueue = queue.value || new URLSearchParams(location.search).get("queue") || "";
  fillSelect(queue, [...new Set([...facets.queues, ...(keepQueue ? [keepQueue] : [])])].sort(), keepQueue);
  const names = document.getElementById("known-names");
  if (names) names.replaceChildren(...facets.names.map((name) => el("option", { value: name })));
  else if (form.elements.name && form.elements.name.tagName === "SELECT") {
    const keep = form.elements.name.value || new URLSearchParams(location.search).get("name") || "";
    fillSelect(form.elements.name, facets.names, keep);
  }
}

function listView() {
  const form = document.getElementById("filters");
  const bulk = document.getElementById("bulk");
  const table = new TaskTable(document.querySelector("#task-list table"), () => showPicked());
  const pager = document.querySelector("#task-list .pager");
  const workers = document.querySelector("#workers tbody");
  // The page shown: newest first by default; a cursor once the user pages (kept on every poll).
  let cursor = {};
  let lastPage = { next_before_id: null, newer_after_id: null };

  const params = new URLSearchParams(location.search);
  for (const field of form.elements) if (field.name && params.has(field.name)) field.value = params.get(field.name);
  if (params.has("before_id")) cursor = { before_id: params.get("before_id") };
  else if (params.has("after_id")) cursor = { after_id: params.get("after_id") };

  // Form fields -> API parameters (the name box is a substring search; "id" jumps to a task).
  function filters() {
    const query = new URLSearchParams();
    for (const field of form.elements) {
      if (!field.name || field.name === "id" || field.name === "limit" || !field.value.trim()) continue;
      query.set(field.name === "name" ? "name_contains" : field.name, field.value.trim());
    }
    return query;
  }

  function remember() {
    const query = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value.trim()) query.set(field.name, field.value.trim());
    for (const [key, value] of Object.entries(cursor)) query.set(key, value);
    const text = query.toString();
    history.replaceState(null, "", text ? `/?${text}` : "/");
  }

  form.addEventListener("input", (event) => {
    if (event.target.name === "id") return;
    cursor = {};
    remember();
    refreshSoon();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = form.elements.id.value.trim();
    if (/^\d+$/.test(id)) location.href = `/tasks/${id}`;
  });
  form.elements.id.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  pager.addEventListener("click", (event) => {
    const which = event.target.dataset.page;
    if (!which) return;
    if (which === "newest") cursor = {};
    else if (which === "oldest") cursor = { after_id: "0" };
    else if (which === "older" && lastPage.next_before_id !== null) cursor = { before_id: String(lastPage.next_before_id) };
    else if (which === "newer" && lastPage.newer_after_id !== null) cursor = { after_id: String(lastPage.newer_after_id) };
    else if (which === "newer") cursor = {};
    remember();
    refreshSoon();
  });

  // -- bulk actions: a selection, or everything the filter matches, always after a confirmation ------
  const selected = bulk.querySelector(".selected");
  const confirmBox = bulk.querySelector(".confirm");
  let pending = null;

  function showPicked() {
    setText(selected.querySelector(".n"), String(table.picked.size));
    setHidden(selected, table.picked.size === 0);
  }

  async function ask(action, scope) {
    let count;
    let body;
    const statuses = action === "retry" ? LIFECYCLE.retryable : LIFECYCLE.cancellable;
    if (scope === "selection") {
      body = { action, ids: [...table.picked] };
      count = body.ids.length;
    } else {
      const where = Object.fromEntries(filters());
      body = { action, filter: where };
      const wanted = where.status ? statuses.filter((s) => s === where.status) : statuses;
      const counts = await Promise.all(
        wanted.map((status) => api(`/api/tasks/count?${new URLSearchParams({ ...where, status })}`)),
      );
      count = counts.reduce((sum, c) => sum + c.count, 0);
    }
    const verb = action === "retry" ? "Retry" : "Cancel";
    const which = action === "retry" ? statuses.map((s) => s.replaceAll("_", " ")).join(" or ") : "active";
    setText(confirmBox.querySelector(".question"), count
      ? `${verb} ${count.toLocaleString("en")} ${which} task${count === 1 ? "" : "s"}${scope === "filter" ? " matching the filter" : ""}?`
      : `No ${which} task matches.`);
    setHidden(confirmBox.querySelector(".yes"), !count);
    confirmBox.hidden = false;
    pending = count ? body : null;
  }

  bulk.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.bulk) {
      await ask(button.dataset.bulk, button.dataset.scope).catch((error) => say(error.message));
    } else if (button.classList.contains("yes") && pending) {
      const body = pending;
      pending = null;
      setText(confirmBox.querySelector(".question"), "Working…");
      setHidden(confirmBox.querySelector(".yes"), true);
      try {
        const result = await post("/api/tasks/bulk", body);
        const verb = result.action === "retry" ? "Retried" : "Cancelled";
        setText(confirmBox.querySelector(".question"),
          `${verb} ${result.changed.toLocaleString("en")}` + (result.skipped ? `, skipped ${result.skipped}` : "") + ".");
        table.picked.clear();
        for (const row of table.rows.values()) row.parts.pick.checked = false;
        table.table.querySelector(".pick-page").checked = false;
        showPicked();
        refreshSoon();
      } catch (error) {
        setText(confirmBox.querySelector(".question"), `Failed: ${error.message}`);
      }
    } else if (button.classList.contains("no")) {
      pending = null;
      confirmBox.hidden = true;
    }
  });

  let facetsAt = 0;
  return async () => {
    const query = filters();
    query.set("limit", form.elements.limit.value || String(PAGE_SIZE));
    for (const [key, value] of Object.entries(cursor)) query.set(key, value);
    const wantFacets = Date.now() - facetsAt > 30000;
    if (wantFacets) facetsAt = Date.now();
    const [page, live] = await Promise.all([
      api(`/api/tasks?${query}`), api("/api/workers"), refreshCounts(), wantFacets ? loadFacets(form) : null,
    ]);
    lastPage = page;
    const active = table.render(page.tasks);
    const atNewest = !cursor.before_id && !cursor.after_id;
    pager.querySelector('[data-page="newest"]').disabled = atNewest;
    pager.querySelector('[data-page="newer"]').disabled = atNewest || page.newer_after_id === null && !cursor.before_id;
    pager.querySelector('[data-page="older"]').disabled = page.next_before_id === null;
    pager.querySelector('[data-page="oldest"]').disabled = cursor.after_id === "0";
    renderWorkers(workers, live.workers);
    setText(document.querySelector("#workers h2 .n"), `(${live.workers.length} live)`);
    return active || live.workers.some((w) => w.current_task_id !== null);
  };
}

function taskView(taskId) {
  const root = document.getElementById("task");
  const children = new TaskTable(document.querySelector("#children table"));
  const progress = progressBar();
  root.querySelector(".progress-line").append(progress);
  root.querySelector("button.cancel").addEventListener("click", () => act("cancel", taskId));
  root.querySelector("button.retry").addEventListener("click", () => act("retry", taskId));
  let lastErrors = null;
  let lastFields = null;

  function fields(task) {
    const rows = [
      ["queue", task.queue], ["priority", String(task.priority)], ["attempts", `${task.attempts} of ${task.max_retries + 1}`],
      ["dedup key", task.dedup_key || "—"], ["parent", task.parent_id === null ? "—" : String(task.parent_id)],
      ["worker", task.worker_id || "—"], ["progress message", task.progress_message || "—"],
      ["created", when(task.created_at)],
      ["run after", classOf(task.status) === "queued" ? `${when(task.run_after)} (${relative(task.run_after)})` : when(task.run_after)],
      ["started", when(task.started_at)], ["finished", when(task.finished_at)],
    ];
    const key = JSON.stringify(rows);
    if (key === lastFields) return;
    lastFields = key;
    const list = root.querySelector(".fields");
    list.replaceChildren(...rows.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
    if (task.parent_id !== null) {
      const link = el("a", { href: `/tasks/${task.parent_id}` }, String(task.parent_id));
      list.querySelectorAll("dd")[4].replaceChildren(link);
    }
  }

  // A value over the API's clip size comes as its size and first characters; the whole of it is loaded
  // once, on request, and kept (polls go on bringing the clipped form: a 50 MB result every second is not).
  const notes = {};
  function showValue(key, task) {
    const pre = root.querySelector(`pre.${key}`);
    if (pre.dataset.full === "1") return;
    const clip = (task.clipped || {})[key];
    if (!notes[key]) {
      notes[key] = el("p", { class: "clipped", "data-for": key });
      notes[key].append(el("span"), " ", el("button", { type: "button" }, "Load the whole value"));
      notes[key].hidden = true;
      notes[key].querySelector("button").addEventListener("click", () => loadWhole(key));
      pre.after(notes[key]);
    }
    setText(pre, clip ? `${clip.head}…` : shownText(task[key]));
    setHidden(notes[key], !clip);
    if (clip) setText(notes[key].firstChild, `Clipped: the first ${size(clip.head.length)} of ${size(clip.size)} of JSON.`);
  }

  async function loadWhole(key) {
    const button = notes[key].querySelector("button");
    button.disabled = true;
    setText(button, "Loading…");
    try {
      const whole = await api(`/api/tasks/${taskId}?full=1&values=text`);
      const pre = root.querySelector(`pre.${key}`);
      pre.dataset.full = "1";
      setText(pre, shownText(whole[key]));
      notes[key].hidden = true;
    } catch (error) {
      say(`loading ${key}: ${error.message}`);
    } finally {
      button.disabled = false;
      setText(button, "Load the whole value");
    }
  }

  function errorLog(task) {
    // Keyed on the whole error state, not the log's length: a cancellation sets `error` without a new
    // log entry, and must show at once.
    const key = JSON.stringify([task.error_log.length, task.error, task.status]);
    if (key === lastErrors) return; // keep open <details> open between polls
    lastErrors = key;
    const log = root.querySelector(".error-log");
    const entries = task.error_log.length ? task.error_log : task.error ? [{ attempt: task.attempts, at: null, error: task.error }] : [];
    setHidden(root.querySelector(".no-errors"), entries.length > 0);
    setHidden(log, entries.length === 0);
    // A retry starts the attempt count again: number the runs so "attempt 1" never appears twice.
    let run = 1;
    let previous = 0;
    const labels = entries.map((entry) => {
      if (entry.passed_on) return "passed on"; // a worker that did not know the task: no attempt, no new run
      if (entry.attempt <= previous) run += 1;
      previous = entry.attempt;
      return run > 1 ? `run ${run}, attempt ${entry.attempt}` : `attempt ${entry.attempt}`;
    });
    log.replaceChildren(
      ...entries.map((entry, index) => {
        const item = el("li");
        const details = el("details");
        if (index === entries.length - 1) details.open = true;
        const lastLine = (entry.error || "").trim().split("\n").pop();
        details.append(el("summary", {}, `${labels[index]}${entry.at ? ` at ${when(entry.at)}` : ""}: ${lastLine}`));
        details.append(el("pre", {}, entry.error || ""));
        item.append(details);
        return item;
      }),
    );
  }

  return async () => {
    let task;
    try {
      task = await api(`/api/tasks/${taskId}?values=text`);
    } catch (error) {
      const problem = root.querySelector(".problem");
      setText(problem, error.status === 404 ? `No task with id ${taskId} (it may have been purged).` : error.message);
      problem.hidden = false;
      setHidden(root.querySelector(".body"), error.status === 404);
      await refreshCounts();
      if (error.status !== 404) throw error;
      return false;
    }
    setHidden(root.querySelector(".problem"), true);
    setHidden(root.querySelector(".body"), false);
    setText(root.querySelector("h2 .name"), task.name);
    const status = root.querySelector("h2 .status");
    setText(status, statusText(task));
    setData(status, "status", statusKind(task));
    setData(status, "statusClass", classOf(task.status));
    setData(root, "status", task.status);
    setHidden(root.querySelector("button.cancel"), !CANCELLABLE.has(task.status) || task.cancel_requested);
    setHidden(root.querySelector("button.retry"), !RETRYABLE.has(task.status));
    updateProgress(progress, task);
    fields(task);
    for (const key of ["args", "kwargs", "result"]) showValue(key, task);
    errorLog(task);
    const counts = Object.entries(task.children_by_status).filter(([, n]) => n > 0);
    setText(root.querySelector(".children-counts"), counts.length
      ? `(${counts.map(([name, n]) => `${name.replaceAll("_", " ")}: ${n}`).join(", ")})`
      : "");
    const [page] = await Promise.all([api(`/api/tasks?parent=${taskId}&limit=500`), refreshCounts()]);
    return children.render(page.tasks) || ACTIVE.has(task.status);
  };
}

function queuesView() {
  const tbody = document.querySelector("#queues tbody");
  const empty = document.querySelector("#queues .empty");
  const rows = new Map();
  return async () => {
    const [body] = await Promise.all([api("/api/queues"), refreshCounts()]);
    const seen = new Set();
    body.queues.forEach((queue, index) => {
      let row = rows.get(queue.queue);
      if (!row) {
        row = el("tr", { "data-queue": queue.queue });
        for (let i = 0; i < 7; i++) row.append(el("td"));
        const queued = Object.keys(LIFECYCLE.classes).find((status) => classOf(status) === "queued");
        row.cells[6].append(el("a", { href: `/?queue=${encodeURIComponent(queue.queue)}&status=${queued}` }, "tasks"));
        rows.set(queue.queue, row);
      }
      seen.add(queue.queue);
      const age = queue.oldest_ready_age_seconds === null ? "—" : duration(queue.oldest_ready_age_seconds);
      [queue.queue, String(queue.ready), age, String(queue.scheduled), String(queue.retrying), String(queue.running)]
        .forEach((text, i) => setText(row.cells[i], text));
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
    for (const [name, row] of rows) if (!seen.has(name)) { row.remove(); rows.delete(name); }
    setHidden(empty, body.queues.length > 0);
    return body.queues.some((q) => q.running > 0 || q.ready > 0);
  };
}

function workersView() {
  const tbody = document.querySelector("#workers tbody");
  return async () => {
    const [live] = await Promise.all([api("/api/workers"), refreshCounts()]);
    renderWorkers(tbody, live.workers);
    setText(document.querySelector("#workers h2 .n"), `(${live.workers.length} live)`);
    setHidden(document.querySelector("#workers .empty"), live.workers.length > 0);
    return live.workers.some((w) => w.current_task_id !== null);
  };
}

function schedulesView() {
  const tbody = document.querySelector("#schedules tbody");
  const rows = new Map();
  function link(id, text) {
    return id === null ? document.createTextNode(text) : el("a", { href: `/tasks/${id}` }, text);
  }
  return async () => {
    const [body] = await Promise.all([api("/api/schedules"), refreshCounts()]);
    const seen = new Set();
    body.schedules.forEach((schedule, index) => {
      let row = rows.get(schedule.name);
      if (!row) {
        row = el("tr", { "data-schedule": schedule.name });
        for (let i = 0; i < 6; i++) row.append(el("td"));
        rows.set(schedule.name, row);
      }
      seen.add(schedule.name);
      setText(row.cells[0], schedule.name);
      setText(row.cells[1], schedule.task || "— (no longer configured)");
      setText(row.cells[2], schedule.cron ? `cron ${schedule.cron}` : schedule.every_seconds ? duration(schedule.every_seconds) : "—");
      const next = schedule.next_run_after
        ? `${when(schedule.next_run_after)} (${classOf(schedule.next_status) === "working" ? schedule.next_status : relative(schedule.next_run_after)})`
        : "—";
      const last = schedule.last_finished_at ? `${when(schedule.last_finished_at)} (${relative(schedule.last_finished_at)})` : "never";
      const key = JSON.stringify([next, last, schedule.last_status]);
      if (row.key !== key) {
        row.key = key;
        row.cells[3].replaceChildren(link(schedule.next_task_id, next));
        row.cells[4].replaceChildren(link(schedule.last_task_id, last));
        row.cells[5].textContent = schedule.last_status || "—";
        row.cells[5].dataset.status = schedule.last_status || "";
        row.cells[5].dataset.statusClass = classOf(schedule.last_status);
      }
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
    for (const [name, row] of rows) if (!seen.has(name)) { row.remove(); rows.delete(name); }
    setHidden(document.querySelector("#schedules .empty"), body.schedules.length > 0);
    return false;
  };
}

// -- charts: plain SVG, no library ------------------------------------------------------------------

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function drawChart(svg, series, start, stepSeconds, { bars = false } = {}) {
  const width = 720;
  const height = 180;
  const left = 40;
  const bottom = 20;
  const n = series.length ? series[0].values.length : 0;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const x = (i) => left + (i / Math.max(1, n - 1)) * (width - left - 4);
  const y = (v) => height - bottom - (v / max) * (height - bottom - 8);
  const nodes = [
    svgEl("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svgEl("line", { x1: left, y1: 8, x2: left, y2: height - bottom, class: "axis" }),
  ];
  const maxLabel = svgEl("text", { x: left - 4, y: 14, class: "tick", "text-anchor": "end" });
  maxLabel.textContent = String(Math.round(max));
  const zero = svgEl("text", { x: left - 4, y: height - bottom, class: "tick", "text-anchor": "end" });
  zero.textContent = "0";
  const first = svgEl("text", { x: left, y: height - 4, class: "tick" });
  first.textContent = new Date(Date.parse(start)).toISOString().slice(11, 16);
  const last = svgEl("text", { x: width - 4, y: height - 4, class: "tick", "text-anchor": "end" });
  last.textContent = "now";
  nodes.push(maxLabel, zero, first, last);
  const barWidth = Math.max(1, (width - left) / Math.max(1, n) / series.length - 1);
  series.forEach((s, k) => {
    if (bars) {
      s.values.forEach((v, i) => {
        if (!v) return;
        const bar = svgEl("rect", { x: x(i) + k * barWidth, y: y(v), width: barWidth, height: height - bottom - y(v), class: `series ${s.kind} ${classOf(s.kind)}` });
        const title = svgEl("title", {});
        title.textContent = `${new Date(Date.parse(start) + i * stepSeconds * 1000).toISOString().slice(11, 16)} ${s.kind}: ${v}`;
        bar.append(title);
        nodes.push(bar);
      });
    } else {
      const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      nodes.push(svgEl("polyline", { points, class: `series ${s.kind}`, fill: "none" }));
    }
  });
  svg.replaceChildren(...nodes);
  svg.dataset.points = String(series.reduce((sum, s) => sum + s.values.reduce((a, b) => a + b, 0), 0));
}

function chartsView() {
  const form = document.getElementById("chart-filters");
  const params = new URLSearchParams(location.search);
  for (const field of form.elements) if (field.name && params.has(field.name)) field.value = params.get(field.name);
  let lastKey = null;
  let facetsAt = 0;
  form.addEventListener("input", () => {
    const query = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value) query.set(field.name, field.value);
    history.replaceState(null, "", query.toString() ? `/charts?${query}` : "/charts");
    refreshSoon();
  });
  return async () => {
    const query = new URLSearchParams();
    for (const field of form.elements) if (field.name && field.value) query.set(field.name, field.value);
    if (Date.now() - facetsAt > 30000) {
      facetsAt = Date.now();
      await loadFacets(form);
    }
    const [body] = await Promise.all([api(`/api/charts?${query}`), refreshCounts()]);
    const key = JSON.stringify([body.throughput, body.depth, body.runtimes, body.start]);
    if (key === lastKey) return "charts";
    lastKey = key;
    document.querySelectorAll("#charts .step").forEach((n) => setText(n, body.step_seconds === 60 ? "minute" : `${body.step_seconds / 60} minutes`));
    // Series in the order the server sends them: finished statuses (coloured by class), queue depths.
    const series = (sums) => Object.entries(sums).map(([kind, values]) => ({ kind, values }));
    drawChart(document.querySelector("#throughput-chart svg"), series(body.throughput), body.start, body.step_seconds, { bars: true });
    drawChart(document.querySelector("#depth-chart svg"), series(body.depth), body.start, body.step_seconds);
    const tbody = document.querySelector("#runtimes tbody");
    tbody.replaceChildren(...body.runtimes.map((r) => {
      const row = el("tr", { "data-name": r.name });
      for (const text of [r.name, String(r.count), runtime(r.p50), runtime(r.p95), runtime(r.p99)]) row.append(el("td", {}, text));
      return row;
    }));
    setHidden(document.querySelector("#charts .empty"), body.runtimes.length > 0);
    return "charts";
  };
}

// -- the poll loop ----------------------------------------------------------------------------------

let refresh = async () => false;
let timer = null;
let quietPolls = 0;

async function poll() {
  clearTimeout(timer);
  const started = performance.now();
  let wait = POLL_MS;
  try {
    const busy = await refresh();
    setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    // Poll fast while something on the page is active; back off after a few quiet polls.
    quietPolls = busy ? 0 : quietPolls + 1;
    if (busy === "charts") wait = CHART_POLL_MS;
    else if (quietPolls > 3) wait = IDLE_POLL_MS;
  } catch (error) {
    setLive(false, `offline: ${error.message}`);
  }
  if (document.hidden) return; // resumed by visibilitychange
  timer = setTimeout(poll, Math.max(50, wait - (performance.now() - started)));
}

function refreshSoon() {
  quietPolls = 0;
  clearTimeout(timer);
  timer = setTimeout(poll, 0);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshSoon();
});

document.addEventListener("DOMContentLoaded", () => {
  const view = document.body.dataset.view;
  const views = { list: listView, queues: queuesView, workers: workersView, schedules: schedulesView, charts: chartsView };
  if (view === "task") refresh = taskView(Number(document.body.dataset.taskId));
  else if (views[view]) refresh = views[view]();
  else refresh = async () => { await refreshCounts(); return false; };
  poll();
});
