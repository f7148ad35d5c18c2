// StoreGuard handheld: a technician's jobs (vanilla JS, no build step).
// Talks only to /api/v1; the bearer token lives in localStorage until it expires.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "storeguard.token";
const OPEN = ["new", "assigned", "accepted", "en_route", "on_site", "awaiting_parts", "on_hold"];
const LABEL = {
  new: "New", assigned: "Assigned", accepted: "Accepted", en_route: "En route", on_site: "On site",
  awaiting_parts: "Waiting for a part", on_hold: "On hold",
  resolved: "Resolved", closed: "Closed", cancelled: "Cancelled",
};
// Which buttons a status offers; the server validates every transition again.
const ACTIONS = {
  assigned: [["accept", "Accept job", "primary"], ["decline", "Decline…", "danger"]],
  accepted: [["en-route", "On my way…", "primary"], ["decline", "Decline…", "danger"]],
  en_route: [["arrive", "I'm on site", "primary"]],
  on_site: [["resolve", "Resolve…", "primary"], ["await-parts", "Waiting for a part…", "secondary"]],
  awaiting_parts: [["resume", "Part is here: resume", "primary"]],
  on_hold: [["resume", "Resume", "primary"]],
};

const $ = (id) => document.getElementById(id);
let current = null; // the job on screen
let refreshTimer = null;

function token() {
  try {
    const saved = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
    if (saved && new Date(saved.expires_at) > new Date()) return saved.access_token;
  } catch (e) { /* corrupt entry: sign in again */ }
  localStorage.removeItem(TOKEN_KEY);
  return null;
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { "Accept": "application/json" };
  const auth = token();
  if (auth) headers["Authorization"] = "Bearer " + auth;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method: options.method || "GET", headers,
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text.slice(0, 200) }; }
  if (!response.ok) {
    let detail = data && data.detail ? data.detail : response.statusText;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new ApiError(response.status, String(detail));
  }
  return data;
}

function banner(message, ok = false) {
  const el = $("banner");
  el.textContent = message || "";
  el.className = ok ? "banner ok" : "banner";
  el.hidden = !message;
}

function show(view) {
  for (const id of ["login-view", "jobs-view", "job-view"]) $(id).hidden = id !== view;
  $("logout").hidden = view === "login-view";
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—";
}

function facts(target, pairs) {
  target.replaceChildren();
  for (const [key, value] of pairs) {
    target.append(el("dt", key), el("dd", value === null || value === undefined || value === "" ? "—" : value));
  }
}

function handle(error) {
  if (error instanceof ApiError && error.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    banner("Please sign in again.");
    route();
    return;
  }
  banner(error.message || "Something went wrong; try again.");
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const result = await api("/auth/token", {
      method: "POST", body: { username: form.username.value.trim(), password: form.password.value },
    });
    localStorage.setItem(TOKEN_KEY, JSON.stringify(result));
    form.password.value = "";
    banner("");
    location.hash = "#/jobs";
    route();
  } catch (error) {
    banner(error.message);
  }
}

async function loadJobs() {
  const jobs = await api("/tickets?assignee=me");
  const showDone = $("show-done").checked;
  const list = $("jobs");
  list.replaceChildren();
  const visible = jobs.filter((j) => showDone || OPEN.includes(j.status)); // server sorts by priority
  for (const job of visible) {
    const link = el("a");
    link.href = "#/job/" + job.id;
    link.append(
      el("span", "P" + job.priority, "prio p" + job.priority),
      el("strong", job.title),
      el("span", job.store_id + " · " + job.device_id + (job.location ? " · " + job.location : ""), "muted"),
      el("span", LABEL[job.status] + (job.fault_active ? "" : " · fault cleared"), "status"),
    );
    const item = el("li");
    item.append(link);
    list.append(item);
  }
  $("no-jobs").hidden = visible.length > 0;
}

async function loadJob(id) {
  const job = await api("/tickets/" + id);
  current = job;
  $("job-title").textContent = job.title;
  $("job-meta").textContent = job.number + " · priority " + job.priority + " · " + LABEL[job.status];
  facts($("job-facts"), [
    ["Store", job.store_name + " (" + job.store_id + ")" + (job.store_online ? "" : " · offline")],
    ["Device", job.device_id + " · " + job.device_model],
    ["Location", job.location],
    ["Fault", job.fault_code + " · " + job.fault_class.replace("_", " ") + " · " + job.severity],
    ["Fault now", job.fault_active ? "active" : "cleared " + when(job.fault_cleared_at)],
    ["Raised", when(job.first_raised_at) + (job.raise_count > 1 ? " · " + job.raise_count + " times" : "")],
    ["ETA", job.eta ? when(job.eta) : ""],
  ]);
  facts($("job-evidence"), Object.entries(job.evidence || {}));
  const history = $("history");
  history.replaceChildren();
  for (const event of job.events) {
    const item = el("li", event.type.replaceAll("_", " ") + (event.note ? ": " + event.note : ""));
    item.append(el("small", when(event.at) + " · " + (event.actor || event.source)));
    history.append(item);
  }
  renderActions(job);
}

function renderActions(job) {
  const box = $("actions");
  box.replaceChildren();
  for (const id of ["resolve-form", "decline-form", "enroute-form"]) $(id).hidden = true;
  for (const [action, label, style] of ACTIONS[job.status] || []) {
    const button = el("button", label, style);
    button.type = "button";
    button.dataset.action = action;
    button.addEventListener("click", () => onAction(action));
    box.append(button);
  }
}

function onAction(action) {
  if (action === "await-parts") {  // the SLA clock pauses until "resume"
    const part = window.prompt("Which part is on order?");
    if (part && part.trim()) act(action, { part: part.trim().slice(0, 200) });
    return;
  }
  const forms = { resolve: "resolve-form", decline: "decline-form", "en-route": "enroute-form" };
  if (forms[action]) {
    for (const id of Object.values(forms)) $(id).hidden = id !== forms[action];
    return;
  }
  act(action, {});
}

async function act(action, body) {
  const buttons = document.querySelectorAll("#job-view button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api("/tickets/" + current.id + "/" + action, {
      method: "POST",
      // source "handheld": the SLA judges the action by client_time, when it happened on the phone
      body: Object.assign({ client_time: new Date().toISOString(), expected_version: current.version,
        source: "handheld" }, body),
    });
    banner("Saved.", true);
  } catch (error) {
    handle(error);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
  try { await loadJob(current.id); } catch (error) { handle(error); }
}

function onResolve(event) {
  event.preventDefault();
  const form = event.target;
  act("resolve", { resolution_code: form.resolution_code.value, note: form.note.value.trim() });
}

function onDecline(event) {
  event.preventDefault();
  act("decline", { reason: event.target.reason.value.trim() });
}

function onEnRoute(event) {
  event.preventDefault();
  const minutes = parseInt(event.target.minutes.value, 10);
  const body = minutes > 0 ? { eta: new Date(Date.now() + minutes * 60000).toISOString() } : {};
  act("en-route", body);
}

async function route() {
  clearInterval(refreshTimer);
  if (!token()) {
    $("who").textContent = "";
    show("login-view");
    return;
  }
  try {
    if (!$("who").textContent) {
      const me = await api("/me");
      $("who").textContent = me.display_name;
    }
    const match = location.hash.match(/^#\/job\/(\d+)$/);
    if (match) {
      show("job-view");
      await loadJob(Number(match[1]));
    } else {
      show("jobs-view");
      await loadJobs();
      refreshTimer = setInterval(() => loadJobs().catch(handle), 30000);
    }
  } catch (error) {
    handle(error);
  }
}

$("login-form").addEventListener("submit", login);
$("resolve-form").addEventListener("submit", onResolve);
$("decline-form").addEventListener("submit", onDecline);
$("enroute-form").addEventListener("submit", onEnRoute);
$("refresh").addEventListener("click", () => loadJobs().catch(handle));
$("show-done").addEventListener("change", () => loadJobs().catch(handle));
$("logout").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  $("who").textContent = "";
  banner("");
  route();
});
window.addEventListener("hashchange", () => { banner(""); route(); });
route();
