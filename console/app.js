// The OSAPI console: plain modern JavaScript, no build step, no dependency.
//
// Every page reads and writes through the same REST API as osapictl, with
// the bearer token the operator pasted (kept in sessionStorage: gone when
// the tab closes, never in a cookie, never in a URL). The buttons shown
// follow the token's permissions (GET /api/v1/auth/whoami); the server checks
// every request anyway. API data is only ever put in the page as text
// (textContent), never parsed as HTML.

const TOKEN_KEY = "osapi.token";
// The fleet page asks again this often (two audited requests each time), and
// not at all while the tab is hidden.
const REFRESH_MS = 10000;
const JOB_STATUSES = ["submitted", "processing", "completed", "failed", "partial_failure", "timeout"];

let me = null; // the WhoAmI of the signed-in token
// What the current page must stop when left: its timers, and (through the
// signal) its requests and streams.
let page = newPage();

function newPage() {
  return { cleanups: [], abort: new AbortController() };
}

// ---------------------------------------------------------------------------
// DOM and formatting helpers
// ---------------------------------------------------------------------------

/** An element: `h("a", {href: "#/"}, "text", child…)`. Strings become text. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;
const can = (permission) => Boolean(me && me.permissions.includes(permission));

function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function percent(used, total) {
  return total ? `${Math.round((100 * used) / total)}%` : "–";
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

const when = (iso) => new Date(iso).toLocaleString();
const badge = (status) => h("span", { class: `badge s-${status}` }, status);

function table(headers, rows, empty = "Nothing to show.") {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))))));
}

function card(title, ...body) {
  return h("section", { class: "card" }, h("h2", {}, title), ...body);
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e));
}

// ---------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && problem.detail ? problem.detail : `the API answered ${status}`;
    super(`${status}: ${detail}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}`, ...extra };
}

/**
 * One request; the body as JSON when given; a problem+json becomes an
 * ApiError. Leaving the page aborts it.
 */
async function api(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store", signal: page.abort.signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    // The token expired or was revoked while signed in: back to sign-in.
    if (res.status === 401 && me) signOut(err.message);
    throw err;
  }
  return data;
}

/** A domain operation on one host, synchronously: its JobOutcome. */
function runOn(host, method, path, body) {
  const sep = path.includes("?") ? "&" : "?";
  return api(method, `${path}${sep}target=${enc(host)}`, body);
}

/**
 * The result of `host` in an outcome (a host page's jobs target one host),
 * or an error naming why there is none.
 */
function onlyResult(outcome, host) {
  const results = outcome.results || [];
  const r = results.find((x) => x.hostname === host);
  if (!r || results.length !== 1) throw new Error(`no single answer from ${host} (job ${outcome.job_id})`);
  if (r.status !== "completed") {
    throw new Error(r.error ? `${r.error.code}: ${r.error.message}` : `the host's result: ${r.status}`);
  }
  return r.data;
}

/**
 * Server-Sent Events over fetch (EventSource cannot send a bearer token):
 * calls `onEvent(event, data, id)` for each event until the stream ends.
 */
async function readEvents(path, onEvent, signal) {
  const res = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal, cache: "no-store" });
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { problem = null; }
    throw new ApiError(res.status, problem);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") event = v;
        else if (field === "data") data.push(v);
        else if (field === "id") id = v;
      }
      onEvent(event, data.join("\n"), id);
    }
  }
}

// ---------------------------------------------------------------------------
// Sign-in, navigation and routing
// ---------------------------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  me = null;
  if (reason) showSignIn(reason);
  else { location.hash = "#/"; showSignIn(); }
}

function showSignIn(problem) {
  leavePage();
  $("#top").hidden = true;
  const token = h("textarea", { id: "token", rows: 5, autocomplete: "off", spellcheck: "false",
    placeholder: "eyJ…  (osapi token generate, or root's /root/.config/osapi/admin.token)" });
  const form = h("form", { id: "signin", class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    start();
  } },
  h("h1", {}, "Sign in to OSAPI"),
  h("p", { class: "muted" }, "Paste a bearer token. It stays in this tab's session storage and goes only to this API."),
  token,
  h("div", { class: "actions" }, h("button", { id: "sign-in", class: "primary", type: "submit" }, "Sign in")));
  const main = $("#main");
  main.replaceChildren();
  if (problem) {
    main.append(h("section", { id: "signin-error", class: "card" },
      h("h1", {}, "The API refused this token"),
      h("p", { class: "error", role: "alert" }, problem)));
  }
  main.append(form);
}

const PAGES = [
  { name: "Fleet", hash: "#/", need: "agent:read" },
  { name: "Jobs", hash: "#/jobs", need: "job:read" },
  { name: "Audit", hash: "#/audit", need: "audit:read" },
];

function drawHeader() {
  $("#top").hidden = false;
  const current = location.hash.split("?")[0] || "#/";
  $("#nav").replaceChildren(...PAGES.filter((p) => can(p.need)).map((p) =>
    h("a", { href: p.hash, class: current === p.hash || (p.hash !== "#/" && current.startsWith(p.hash)) ? "current" : "" }, p.name)));
  $("#who").textContent = `${me.subject} (${me.roles.join(", ") || "no role"})`;
}

function leavePage() {
  for (const stop of page.cleanups) stop();
  page.abort.abort();
  page = newPage();
}

/** Calls `fn` now and every `ms` while the tab is visible, until the page is left. */
function every(ms, fn) {
  let running = null;
  const tick = () => {
    if (running || document.hidden) return;
    running = fn().finally(() => { running = null; });
  };
  tick();
  const timer = setInterval(tick, ms);
  page.cleanups.push(() => clearInterval(timer));
}

function route() {
  if (!me) return;
  leavePage();
  drawHeader();
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const main = $("#main");
  main.replaceChildren();
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ["?"];
  }
  if (parts.length === 0) return fleetPage(main);
  if (parts[0] === "host" && parts[1]) return hostPage(main, parts[1]);
  if (parts[0] === "jobs") return jobsPage(main, params);
  if (parts[0] === "job" && parts[1]) return jobPage(main, parts[1]);
  if (parts[0] === "audit") return auditPage(main, params);
  main.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the fleet")));
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showSignIn();
  try {
    me = await api("GET", "/api/v1/auth/whoami");
  } catch (e) {
    me = null;
    if (!(e instanceof ApiError)) return showSignIn(`The API could not be reached: ${e.message}`);
    sessionStorage.removeItem(TOKEN_KEY);
    return showSignIn(e.message);
  }
  route();
}

// ---------------------------------------------------------------------------
// Fleet
// ---------------------------------------------------------------------------

function fleetPage(main) {
  main.append(h("h1", {}, "Fleet"));
  if (!can("agent:read")) {
    main.append(h("p", { class: "muted" }, "This token may not list agents (agent:read)."));
    return;
  }
  const agents = h("div", { id: "agents" }, h("p", { class: "muted" }, "Loading…"));
  const pending = h("div", { id: "enrollments" });
  main.append(card("Live agents", agents), card("Agents asking to join", pending));
  every(REFRESH_MS, async () => {
    try {
      const list = await api("GET", "/api/v1/agents");
      agents.replaceChildren(agentTable(list.agents));
      // What the benchmark of the first render reads (docs/benchmarks.md).
      if (performance.getEntriesByName("osapi:fleet-shown").length === 0) performance.mark("osapi:fleet-shown");
    } catch (e) { agents.replaceChildren(errorBox(e)); }
    try {
      const list = await api("GET", "/api/v1/enrollment?state=pending");
      pending.replaceChildren(enrollmentTable(list.enrollments));
    } catch (e) { pending.replaceChildren(errorBox(e)); }
  });
}

function agentTable(agents) {
  const rows = agents.map((a) => {
    const v = a.vitals;
    return [
      h("a", { href: `#/host/${enc(a.hostname)}`, class: "host" }, a.hostname),
      Object.entries(a.labels || {}).map(([k, val]) => `${k}:${val}`).join(" "),
      h("td", { class: "num" }, v ? v.load1.toFixed(2) : "–"),
      h("td", { class: "num" }, v ? `${bytes(v.memory_used_bytes)} / ${bytes(v.memory_total_bytes)} (${percent(v.memory_used_bytes, v.memory_total_bytes)})` : "–"),
      h("td", { class: "num" }, v ? `${percent(v.root_used_bytes, v.root_total_bytes)} of ${bytes(v.root_total_bytes)}` : "–"),
      a.version,
      h("td", { class: "num" }, `${a.running_jobs} / ${a.max_jobs}`),
      ago(a.heartbeat_at),
    ];
  });
  return table(["Host", "Labels", "Load", "Memory", "Disk /", "Version", "Jobs", "Heartbeat"], rows,
    "No agent has sent a heartbeat lately.");
}

function enrollmentTable(enrollments) {
  const rows = enrollments.map((e) => [
    e.hostname,
    Object.entries(e.labels || {}).map(([k, v]) => `${k}:${v}`).join(" "),
    h("code", {}, e.public_key),
    when(e.requested_at),
    can("agent:write") ? h("span", { class: "actions" },
      h("button", { "data-write": true, class: "primary", onclick: () => decide(e, "accept") }, "Accept"),
      h("button", { "data-write": true, class: "danger", onclick: () => decide(e, "reject") }, "Reject")) : "",
  ]);
  return table(["Host", "Labels", "Public key", "Asked", ""], rows, "No agent is waiting.");
}

async function decide(e, verb) {
  const labels = Object.entries(e.labels || {}).map(([k, v]) => `${k}:${v}`).join(" ") || "none";
  const what = `${verb === "accept" ? "Accept" : "Reject"} the agent that calls itself ${e.hostname} (labels: ${labels}), key ${e.public_key}?`;
  if (!confirm(what)) return;
  try {
    await api("POST", `/api/v1/enrollment/${enc(e.public_key)}/${verb}`);
    route();
  } catch (e) { alert(e.message); }
}

// ---------------------------------------------------------------------------
// One host
// ---------------------------------------------------------------------------

function hostPage(main, host) {
  // A host page targets one host: never `_all`, `_any` or a label group,
  // which a link could otherwise smuggle in.
  if (host.startsWith("_") || host.includes(":")) {
    main.append(h("h1", {}, "Not a host"), h("p", { class: "error" }, `${host} is a group of hosts, not one host.`));
    return;
  }
  main.append(h("h1", {}, "Host ", h("span", { id: "host-name" }, host)));
  const status = h("div", { id: "status" }, h("p", { class: "muted" }, "Asking the host…"));
  main.append(card("Status", status));
  if (can("node:read")) {
    runOn(host, "GET", "/api/v1/node/status")
      .then((o) => status.replaceChildren(statusView(onlyResult(o, host))))
      .catch((e) => status.replaceChildren(errorBox(e)));
  } else status.replaceChildren(h("p", { class: "muted" }, "This token may not read the host (node:read)."));

  const settings = h("div", { class: "grid2" });
  main.append(settings);
  if (can("node:read")) settings.append(hostnameCard(host));
  if (can("time:read")) settings.append(timeCard(host));
  if (can("network:read")) settings.append(dnsCard(host));
  if (can("service:read")) main.append(servicesCard(host));
  if (can("log:read")) main.append(journalCard(host));
}

function statusView(s) {
  const facts = h("dl", {},
    h("dt", {}, "Hostname"), h("dd", {}, s.hostname),
    h("dt", {}, "System"), h("dd", {}, `${s.os.pretty_name}, kernel ${s.os.kernel.release || ""}`),
    h("dt", {}, "Up"), h("dd", {}, s.uptime.human),
    h("dt", {}, "Load"), h("dd", {}, `${s.load.load1} ${s.load.load5} ${s.load.load15}`),
    h("dt", {}, "Memory"), h("dd", {}, `${bytes(s.memory.used_bytes)} used of ${bytes(s.memory.total_bytes)}`));
  const disks = table(["Mount", "Device", "Type", "Used", "Size"], s.disks.map((d) => [
    d.mount_point, d.device, d.fs_type, `${d.used_percent}%`, bytes(d.total_bytes)]));
  return h("div", {}, facts, disks);
}

/**
 * A setting of `host` with its form: the current value, and (with
 * `permission`) a form whose Preview runs the change as a dry run and shows
 * before → after. Apply then runs exactly what was previewed; editing the
 * form again withdraws the preview.
 */
function settingCard({ host, title, id, permission, read, show, fields, change }) {
  const current = h("div", { class: "current" }, h("p", { class: "muted" }, "Asking the host…"));
  const body = card(title, current);
  body.id = id;
  const load = () => read().then((v) => current.replaceChildren(show(v))).catch((e) => current.replaceChildren(errorBox(e)));
  load();
  if (!can(permission)) return body;
  const inputs = fields.map((f) => h("input", { name: f.name, placeholder: f.placeholder || "", "aria-label": f.label }));
  const verdict = h("div", { class: "verdict" });
  const previewButton = h("button", { "data-write": true, class: "preview", type: "submit" }, "Preview");
  const apply = async (ev, previewed) => {
    ev.target.disabled = true;
    verdict.replaceChildren(h("p", { class: "muted" }, "Applying…"));
    try {
      const result = onlyResult(await change(previewed, false), host);
      verdict.replaceChildren(h("p", { class: "applied" }, result.changed ? "Changed." : "Already so: nothing changed."));
      load();
    } catch (e) { verdict.replaceChildren(errorBox(e)); }
  };
  const preview = async (ev) => {
    ev.preventDefault();
    const previewed = Object.fromEntries(inputs.map((i) => [i.name, i.value.trim()]));
    previewButton.disabled = true;
    verdict.replaceChildren(h("p", { class: "muted" }, "Dry run…"));
    try {
      const result = onlyResult(await change(previewed, true), host);
      verdict.replaceChildren(
        changeView(result.before, result.after),
        result.changed === false
          ? h("p", { class: "muted" }, "Already so: applying would change nothing.")
          : h("div", { class: "actions" },
            h("button", { "data-write": true, class: "primary apply", type: "button", onclick: (e) => apply(e, previewed) }, "Apply"),
            h("button", { type: "button", onclick: () => verdict.replaceChildren() }, "Cancel")));
    } catch (e) { verdict.replaceChildren(errorBox(e)); }
    previewButton.disabled = false;
  };
  body.append(h("form", { class: "inline", onsubmit: preview, oninput: () => verdict.replaceChildren() },
    fields.map((f, i) => h("label", {}, f.label, inputs[i])), previewButton), verdict);
  return body;
}

/** The keys whose values differ, before → after. */
function changeView(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
  const fmt = (v) => (v === undefined || v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const rows = keys.filter((k) => fmt(before && before[k]) !== fmt(after && after[k]));
  if (rows.length === 0) return h("p", { class: "muted" }, "No difference.");
  return h("div", { class: "change" },
    h("span", { class: "key" }, ""), h("strong", {}, "before"), h("strong", {}, "after"),
    rows.flatMap((k) => [h("span", { class: "key" }, k),
      h("span", { class: "before" }, fmt(before && before[k])), h("span", { class: "after" }, fmt(after && after[k]))]));
}

function hostnameCard(host) {
  return settingCard({
    host, title: "Hostname", id: "hostname", permission: "node:write",
    read: async () => onlyResult(await runOn(host, "GET", "/api/v1/node/hostname"), host),
    show: (v) => h("dl", {}, h("dt", {}, "Hostname"), h("dd", { class: "value" }, v.hostname),
      h("dt", {}, "Static"), h("dd", {}, v.static_hostname || "–"),
      h("dt", {}, "Pretty"), h("dd", {}, v.pretty_hostname || "–")),
    fields: [{ name: "hostname", label: "New hostname" }],
    change: (v, dry) => runOn(host, "PUT", "/api/v1/node/hostname", { hostname: v.hostname, dry_run: dry }),
  });
}

function timeCard(host) {
  return settingCard({
    host, title: "Time", id: "time", permission: "time:write",
    read: async () => onlyResult(await runOn(host, "GET", "/api/v1/time/clock"), host),
    show: (v) => h("dl", {}, h("dt", {}, "Time"), h("dd", {}, when(v.time)),
      h("dt", {}, "Time zone"), h("dd", { class: "value" }, v.timezone),
      h("dt", {}, "NTP"), h("dd", {}, `${v.ntp ? "on" : "off"}${v.ntp_synchronized ? ", synchronised" : ""}`)),
    fields: [{ name: "timezone", label: "New time zone", placeholder: "Europe/Berlin" }],
    change: (v, dry) => runOn(host, "PUT", "/api/v1/time/zone", { timezone: v.timezone, dry_run: dry }),
  });
}

function dnsCard(host) {
  let iface = null;
  const firstInterface = async () => {
    if (iface) return iface;
    const list = onlyResult(await runOn(host, "GET", "/api/v1/network/interfaces"), host);
    const named = (list || []).map((i) => i.name).filter((n) => n && n !== "lo");
    if (named.length === 0) throw new Error("the host has no network interface but lo");
    iface = named[0];
    return iface;
  };
  const split = (s) => s.split(/[\s,]+/).filter(Boolean);
  return settingCard({
    host, title: "DNS", id: "dns", permission: "network:write",
    read: async () => onlyResult(await runOn(host, "GET", `/api/v1/network/dns/${enc(await firstInterface())}`), host),
    show: (v) => h("dl", {}, h("dt", {}, "Interface"), h("dd", {}, v.interface),
      h("dt", {}, "Servers"), h("dd", { class: "value" }, v.servers.join(", ") || "–"),
      h("dt", {}, "Search"), h("dd", {}, v.search_domains.join(", ") || "–")),
    fields: [{ name: "servers", label: "Servers", placeholder: "192.0.2.53, 2001:db8::53" },
      { name: "search", label: "Search domains", placeholder: "example.org" }],
    change: async (v, dry) => runOn(host, "PUT", `/api/v1/network/dns/${enc(await firstInterface())}`,
      { servers: split(v.servers), search_domains: split(v.search), dry_run: dry }),
  });
}

function servicesCard(host) {
  const list = h("div", {}, h("p", { class: "muted" }, "Asking the host…"));
  runOn(host, "GET", "/api/v1/service/units?pattern=*.service")
    .then((o) => list.replaceChildren(table(["Unit", "State", "Description"], onlyResult(o, host).map((u) => [
      u.unit, h("span", { class: `s-${u.active_state}` }, `${u.active_state} (${u.sub_state})`), u.description]))))
    .catch((e) => list.replaceChildren(errorBox(e)));
  const c = card("Services", list);
  c.id = "services";
  return c;
}

function journalCard(host) {
  const lines = h("pre", { id: "journal" }, "Asking the host…");
  runOn(host, "GET", "/api/v1/log/entries?limit=50")
    .then((o) => {
      const entries = onlyResult(o, host).entries.slice().reverse();
      lines.textContent = entries.map((e) =>
        `${new Date(e.time).toLocaleTimeString()} ${e.identifier || e.unit || ""}${e.pid ? `[${e.pid}]` : ""}: ${e.message}`).join("\n") || "(no entries)";
    })
    .catch((e) => lines.replaceWith(errorBox(e)));
  return card("Recent journal", lines);
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/** The query a filter form says: its named fields that are not empty. */
function formQuery(form) {
  const q = new URLSearchParams();
  for (const el of form.elements) if (el.name && el.value.trim()) q.set(el.name, el.value.trim());
  return q;
}

/** A filter field named `name`, holding what the page's address says. */
function filterField(params, name, el) {
  el.name = name;
  el.value = params.get(name) || "";
  return h("label", {}, name, el);
}

/**
 * One page of a listing (`GET path?params&limit=`) as a table in `list`,
 * with a link to the older ones from its `next_cursor`.
 */
function pagedTable({ list, path, params, limit, rowsOf, headers, row, empty, hash, older }) {
  const q = new URLSearchParams(params);
  q.set("limit", String(limit));
  api("GET", `${path}?${q}`)
    .then((page) => {
      list.replaceChildren(table(headers, rowsOf(page).map(row), empty));
      if (page.next_cursor) {
        const more = new URLSearchParams(params);
        more.set("cursor", page.next_cursor);
        list.append(h("p", {}, h("a", { href: `${hash}?${more}` }, older)));
      }
    })
    .catch((e) => list.replaceChildren(errorBox(e)));
}

function jobsPage(main, params) {
  main.append(h("h1", {}, "Jobs"));
  const status = h("select", {}, h("option", { value: "" }, "any"), JOB_STATUSES.map((s) => h("option", { value: s }, s)));
  const form = h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/jobs?${formQuery(form)}`; } },
    filterField(params, "status", status),
    filterField(params, "operation", h("input", { placeholder: "node.hostname.get" })),
    filterField(params, "user", h("input", { placeholder: "alice" })),
    h("button", { type: "submit" }, "Filter"));
  const list = h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading…"));
  main.append(card("Newest first", form, list));
  pagedTable({
    list, path: "/api/v1/jobs", params, limit: 50, rowsOf: (page) => page.jobs,
    headers: ["Created", "Operation", "Target", "User", "Status"],
    row: (j) => [h("a", { href: `#/job/${enc(j.id)}`, class: "job" }, when(j.created_at)),
      j.operation, j.target, j.created_by, badge(j.status)],
    empty: "No job matches.", hash: "#/jobs", older: "Older jobs →",
  });
}

const FINAL = new Set(["completed", "failed", "partial_failure", "timeout"]);

function jobPage(main, id) {
  main.append(h("h1", {}, "Job ", h("code", {}, id)));
  const body = h("div", { id: "job" }, h("p", { class: "muted" }, "Loading…"));
  main.append(body);
  const output = h("div", { id: "output" });
  const isCommand = (job) => job.operation.type.startsWith("command.") && !job.redacted;
  let following = false;
  let poll = null;
  page.cleanups.push(() => clearTimeout(poll));
  const load = async () => {
    try {
      const job = await api("GET", `/api/v1/jobs/${enc(id)}`);
      body.replaceChildren(...jobView(job, load));
      body.dataset.status = job.status;
      if (isCommand(job)) {
        body.append(card("Output", output));
        // The output stream's `end` reloads the job; nothing to poll.
        if (!following) { following = true; followOutput(id, output, load); }
      } else if (!FINAL.has(job.status)) {
        clearTimeout(poll);
        poll = setTimeout(load, 2000);
      }
    } catch (e) {
      if (!page.abort.signal.aborted) body.replaceChildren(errorBox(e));
    }
  };
  load();
}

function jobView(job, reload) {
  const type = job.operation.type;
  const buttons = h("div", { class: "actions" });
  // A retry needs the operation's own permission too: a redacted job says
  // this token lacks it.
  if (can("job:write") && !job.redacted) {
    buttons.append(h("button", { "data-write": true, id: "retry", onclick: async () => {
      if (!confirm(`Run ${type} again on ${job.target}?`)) return;
      try {
        const created = await api("POST", `/api/v1/jobs/${enc(job.id)}/retry`, {});
        location.hash = `#/job/${enc(created.job_id)}`;
      } catch (e) { alert(e.message); }
    } }, "Retry"));
  }
  if (can("command:execute") && type.startsWith("command.") && !FINAL.has(job.status)) {
    buttons.append(h("button", { "data-write": true, id: "cancel", class: "danger", onclick: async () => {
      if (!confirm("Cancel this command on every host?")) return;
      try { await api("POST", `/api/v1/jobs/${enc(job.id)}/cancel`); reload(); } catch (e) { alert(e.message); }
    } }, "Cancel"));
  }
  const summary = card("Summary", h("dl", {},
    h("dt", {}, "Operation"), h("dd", { id: "job-operation" }, type),
    h("dt", {}, "Status"), h("dd", { id: "job-status" }, badge(job.status)),
    h("dt", {}, "Target"), h("dd", {}, job.target),
    h("dt", {}, "Created"), h("dd", {}, `${when(job.created_at)} by ${job.created_by}`),
    job.retry_of ? [h("dt", {}, "Retry of"), h("dd", {}, h("a", { href: `#/job/${enc(job.retry_of)}` }, job.retry_of))] : null,
    job.redacted ? [h("dt", {}, "Request"), h("dd", { class: "muted" }, "hidden: this token lacks the operation's own permission")] : null),
  buttons);
  const results = card("Results", job.results.length === 0
    ? h("p", { class: "muted" }, "No host has answered yet.")
    : job.results.map(resultView));
  const timeline = card("Timeline", table(["At", "Host", "Stage", "Attempt", "Detail"], job.timeline.map((e) => [
    when(e.at), e.hostname, badge(e.stage), h("td", { class: "num" }, e.attempt), e.detail || ""])));
  return [summary, results, timeline];
}

function resultView(r) {
  const data = r.data;
  return h("div", { class: "result" },
    h("p", {}, h("strong", {}, r.hostname), " ", badge(r.status), h("span", { class: "muted" }, ` ${r.duration_ms} ms`),
      data && typeof data.changed === "boolean" ? h("span", {}, data.changed ? " · changed" : " · unchanged") : null),
    r.error ? h("p", { class: "error" }, `${r.error.code}: ${r.error.message}`) : null,
    data && data.before !== undefined && data.after !== undefined ? changeView(data.before, data.after) : null,
    data !== undefined && data !== null ? h("details", {}, h("summary", {}, "Data"), h("pre", {}, JSON.stringify(data, null, 2))) : null);
}

/** A command job's output, live: one block per host, stderr marked. */
function followOutput(id, box, reload) {
  const signal = page.abort.signal;
  const blocks = new Map();
  const blockOf = (host) => {
    if (!blocks.has(host)) {
      const pre = h("pre", { class: "output", "data-host": host });
      blocks.set(host, pre);
      box.append(h("p", {}, h("strong", {}, host)), pre);
    }
    return blocks.get(host);
  };
  let after = null;
  let ended = false;
  const onEvent = (event, data, eventId) => {
    if (eventId) after = eventId;
    if (event === "end") {
      ended = true;
      reload().then(() => { box.dataset.ended = "true"; });
      return;
    }
    if (event === "error") { ended = true; box.append(errorBox(data)); return; }
    let record;
    try { record = JSON.parse(data); } catch { return; }
    const pre = blockOf(record.hostname);
    if (event === "stdout") pre.append(record.data);
    else if (event === "stderr") pre.append(h("span", { class: "stderr" }, record.data));
    else if (event === "truncated") pre.append(h("span", { class: "stderr" }, `\n[${record.stream} cut after ${bytes(record.after_bytes)}]\n`));
    else if (event === "exit") {
      const how = record.cancelled ? "cancelled" : record.timed_out ? "timed out"
        : record.signal ? `killed by signal ${record.signal}` : `exit code ${record.exit_code}`;
      pre.append(h("span", { class: "exit" }, `\n[${how}]`));
    }
  };
  (async () => {
    // Reconnect after a dropped stream, from the last event seen.
    for (let tries = 0; !ended && tries < 30; tries++) {
      try {
        await readEvents(`/api/v1/jobs/${enc(id)}/output${after ? `?after=${enc(after)}` : ""}`, onEvent, signal);
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError) { box.append(errorBox(e)); return; }
      }
      if (!ended) await new Promise((r) => setTimeout(r, 1000));
    }
    if (!ended && !signal.aborted) box.append(errorBox("The output stream kept dropping; reload the page to try again."));
  })();
}

// ---------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------

function auditPage(main, params) {
  main.append(h("h1", {}, "Audit"));
  const input = (placeholder) => h("input", { placeholder });
  const form = h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/audit?${formQuery(form)}`; } },
    filterField(params, "user", input("alice")),
    filterField(params, "since", input("2026-01-01T00:00:00Z")),
    filterField(params, "until", input("2026-12-31T00:00:00Z")),
    h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", id: "export", onclick: () => exportAudit(formQuery(form)) }, "Export JSONL"));
  const list = h("div", { id: "audit" }, h("p", { class: "muted" }, "Loading…"));
  main.append(card("Newest first", form, list));
  pagedTable({
    list, path: "/api/v1/audit", params, limit: 100, rowsOf: (page) => page.entries,
    headers: ["Time", "User", "Request", "Answer", "Job"],
    row: (e) => [when(e.timestamp), e.user, `${e.method} ${e.path}`,
      h("span", { class: e.response_code < 400 ? "s-ok" : "s-error" }, `${e.response_code}${e.count ? ` ×${e.count}` : ""}`),
      // UUIDv7s of one moment share their first digits: show the last ones.
      e.job_id ? h("a", { href: `#/job/${enc(e.job_id)}` }, `…${e.job_id.slice(-12)}`) : ""],
    empty: "No entry matches.", hash: "#/audit", older: "Older entries →",
  });
}

/** Downloads the matching entries as JSON lines, through the API's export. */
async function exportAudit(q) {
  try {
    const res = await fetch(`/api/v1/audit/export?${q}`, { headers: headers(), cache: "no-store" });
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: "osapi-audit.jsonl" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { alert(e.message); }
}

// ---------------------------------------------------------------------------

$("#sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
start();
