// SustainML web page: plain JavaScript, no build step. The server is a DDS client of the pipeline;
// this page talks to it over JSON and follows it over server-sent events (/api/events).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const state = {
  problem: null,          // the problem dict last submitted
  task: null,             // "problem_id/iteration" shown on the results page
  result: null,           // its result (result_to_dict view): the latest revision while it runs
  previous: null,         // the result the current iteration started from
  nodes: new Map(),       // node name -> view
  expected: [],           // the node kinds a whole pipeline has (from the server)
  missing: [],            // expected kinds with no live node
  selected: 0,            // index of the option whose alternatives are shown
  chosen: "",             // optionKey of the option the user chose to see ("" = the recommended one)
  sort: {options: {key: "rank", dir: 1}, evidence: {key: "received_unix_s", dir: -1}},
  encodeTimer: null, encodeSeq: 0, sliderTimer: null,
  wanted: null, asked: 0, read: 0, loading: false,   // reading results: see loadResult
};

// ------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path, options = {}) {
  return (await apiPage(path, options)).data;
}

// The reply's data and the path of its next page (the Link header's rel="next"; null when none).
async function apiPage(path, options = {}) {
  const init = {headers: {}, ...options};
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = {error: text}; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  const next = /<([^>]*)>\s*;\s*rel="next"/.exec(response.headers.get("Link") || "");
  return {data, next: next ? next[1] : null};
}

function grams(g) {
  if (g === null || g === undefined || !isFinite(g)) return "–";
  const a = Math.abs(g);
  for (const [unit, s] of [["t", 1e6], ["kg", 1e3], ["g", 1], ["mg", 1e-3], ["µg", 1e-6], ["ng", 1e-9]])
    if (a >= s) return `${(g / s).toPrecision(3)} ${unit}`;
  return `${g.toPrecision(3)} g`;
}
function joules(j) {
  if (j === null || j === undefined || !isFinite(j)) return "–";
  const a = Math.abs(j);
  for (const [unit, s] of [["kJ", 1e3], ["J", 1], ["mJ", 1e-3], ["µJ", 1e-6], ["nJ", 1e-9]])
    if (a >= s) return `${(j / s).toPrecision(3)} ${unit}`;
  return `${j.toPrecision(3)} J`;
}
const relative = (u, v) => (v > 0 && u > 0) ? `±${Math.round(100 * u / v)}%` : "";
const num = (v, digits = 3) => (v === null || v === undefined || !isFinite(v)) ? "–" : Number(v).toPrecision(digits);
const when = (s) => s ? new Date(s * 1000).toLocaleString() : "";
const optionName = (o) => `${o.model} on ${o.device}${o.host ? " at " + o.host : ""} in ${o.region}`;
const optionKey = (o) => [o.model, o.device, o.host, o.region].join("|");
const taskOf = (r) => `${r.task_id.problem_id}/${r.task_id.iteration}`;
function seconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  return s >= 100 ? `${Math.round(s)} s` : `${Number(s).toPrecision(3)} s`;
}

// How an option's figures were obtained (TaskOption.basis); "" = a result from before revisions, all measured.
const BASIS = {
  estimated: {label: "estimate", title: "pre-run estimate, not measured"},
  measured: {label: "measured", title: "measured on this hardware for this task"},
  "measured-inference": {label: "inference measured", title: "inference measured; training is the pre-run estimate"},
  reused: {label: "reused", title: "measured: a stored earlier measurement of the same configuration"},
  "": {label: "measured", title: "measured"},
};
const basisOf = (o) => BASIS[o.basis] || {label: o.basis, title: o.basis};
const estimated = (o) => o.basis === "estimated";
// A figure of a pre-run estimate carries "~", as the CLI prints it; the badge in the row says it in words.
const approx = (o, text, about = "") => el("span", {title: [estimated(o) ? "pre-run estimate, not measured" : "", about].filter(Boolean).join("; ")},
  estimated(o) ? el("span", {"aria-hidden": "true"}, "~") : "", text);

function alertBox(key, message) {
  let box = $(`#alerts [data-key="${CSS.escape(key)}"]`);
  if (!message) { if (box) box.remove(); return; }
  if (!box) {
    box = el("div", {class: "alert", "data-key": key}, el("span"),
      el("button", {type: "button", "aria-label": "Dismiss", onclick: () => box.remove()}, "×"));
    $("#alerts").append(box);
  }
  box.firstChild.textContent = message;
}

// ------------------------------------------------------------------ pages
function showPage(name, focus = true) {
  for (const tab of $$(".tab")) {
    if (tab.dataset.page === name) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
  }
  for (const page of $$(".page")) page.hidden = page.id !== `page-${name}`;
  if (name === "history") loadHistory();
  if (name === "evidence") loadEvidence();
  if (name === "results" && state.result) drawCharts();
  if (focus) $(`#page-${name} h2`).focus?.();
  history.replaceState(null, "", `#${name}`);
}

// ------------------------------------------------------------------ live: node board and tasks
function renderBoard() {
  const list = $("#nodes");
  list.replaceChildren();
  for (const n of [...state.nodes.values()].sort((a, b) => a.node.localeCompare(b.node))) {
    const busy = n.state === "busy";
    list.append(el("li", {class: n.state, title: n.message || n.state},
      el("span", {class: "dot", "aria-hidden": "true"}), `${n.node}: ${n.state}`,
      busy && n.progress > 0 ? el("progress", {max: 100, value: n.progress, "aria-label": `${n.node} progress`}) : ""));
  }
  for (const kind of state.missing)
    list.append(el("li", {class: "down"}, el("span", {class: "dot", "aria-hidden": "true"}), `${kind}: down`));
  if (!list.children.length) list.append(el("li", {class: "muted"}, "no node heard yet"));
  const down = state.missing;
  alertBox("nodes-down", down.length ? `Node${down.length > 1 ? "s" : ""} down: ${down.join(", ")}. ` +
    "No heartbeat from " + (down.length > 1 ? "them" : "it") + "; a task that needs it waits for it to come back " +
    "(the orchestrator's node_down_grace_s, 60 s unless set), then fails. Start it again with `sustainml node NAME` or relaunch the pipeline." : "");
}

function missingKinds() {
  const alive = new Set([...state.nodes.values()].map((n) => n.kind));
  return state.expected.filter((k) => !alive.has(k));
}

function connectEvents() {
  const source = new EventSource("/api/events");
  source.addEventListener("board", (e) => {
    const board = JSON.parse(e.data);
    state.nodes = new Map(board.nodes.map((n) => [n.node, n]));
    state.expected = board.expected;
    state.missing = missingKinds();
    renderBoard();
  });
  source.addEventListener("node", (e) => {
    const n = JSON.parse(e.data);
    state.nodes.set(n.node, n);
    state.missing = missingKinds();
    renderBoard();
  });
  source.addEventListener("node_gone", (e) => {
    state.nodes.delete(JSON.parse(e.data).node);
    state.missing = missingKinds();
    renderBoard();
  });
  source.addEventListener("task", (e) => {
    const t = JSON.parse(e.data);
    if (t.task !== state.task) return;
    $("#task-progress").hidden = ["done", "failed", "cancelled"].includes(t.state);
    $("#progress-bar").value = t.progress;
    $("#progress-label").textContent = `${t.state}: ${Math.round(t.progress)}% – ${t.message || "waiting on " + (t.stage || "the pipeline")}`;
  });
  source.addEventListener("result", (e) => {
    // Every revision: the first ranked answer (estimates) is shown at once, each refinement replaces it.
    const r = JSON.parse(e.data);
    if (r.task === state.task && (r.final || r.revision >= 1)) loadResult(r.task);
  });
  source.onerror = () => alertBox("server", "Lost the connection to the web server; retrying…");
  source.onopen = () => alertBox("server", "");
}

// ------------------------------------------------------------------ describe: form, encoder suggestions
function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] = o[k] || {});
  o[keys.at(-1)] = value;
}
function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function readForm() {
  const problem = {};
  for (const field of $$("#problem-form [name]")) {
    if (field.type === "checkbox") continue;
    const raw = field.value.trim();
    if (raw === "") continue;
    let value = raw;
    if (field.type === "number") value = Number(raw);
    else if (field.name === "allowed_regions") value = raw.split(/[,\s]+/).filter(Boolean);
    setPath(problem, field.name, value);
  }
  const hardware = $$('#problem-form input[name="hardware"]:checked').map((c) => c.value);
  if (hardware.length) problem.hardware = hardware;
  return problem;
}

function fillForm(problem) {
  for (const field of $$("#problem-form [name]")) {
    if (field.type === "checkbox") { field.checked = (problem.hardware || []).includes(field.value); continue; }
    const v = getPath(problem, field.name);
    field.value = v === undefined ? "" : Array.isArray(v) ? v.join(", ") : v;
  }
  scheduleEncode(0);
}

const EXAMPLE = {
  text: "predict tool wear from CNC sensor data",
  task_type: "tabular_regression",
  dataset: {path: "examples/data/cnc_tool_wear.csv"},
  constraints: {quality_target: 0.5},
  usage: {requests_per_day: 100000, horizon_days: 730},
  train_region: "DEU", inference_region: "DEU", allowed_regions: ["FRA", "NOR", "SWE"],
};

function scheduleEncode(delay = 600) {
  clearTimeout(state.encodeTimer);
  state.encodeTimer = setTimeout(encodeNow, delay);
}

async function encodeNow() {
  const problem = readForm();
  if (!problem.text && !problem.task_type) { showReading(null); return; }
  const seq = ++state.encodeSeq;
  try {
    const task = await api("/api/encode", {json: {problem}});
    if (seq === state.encodeSeq) { showReading(task); $("#form-error").textContent = ""; }
  } catch (err) {
    if (seq === state.encodeSeq) { showReading(null); $("#form-error").textContent = err.message; }
  }
}

function showReading(task) {
  state.reading = task;
  for (const slot of $$(".finding-slot")) slot.replaceChildren();
  $("#reading-empty").hidden = !!task;
  $("#reading-body").hidden = !task;
  if (!task) return;
  $("#r-type").textContent = task.task_type || "task type unknown";
  $("#r-modality").textContent = task.modality || "modality unknown";
  $("#r-metric").textContent = task.metric ? `${task.metric} (${task.higher_is_better ? "higher" : "lower"} is better)` : "";
  $("#r-confidence").value = task.confidence;
  $("#r-confidence-text").textContent = `${Math.round(task.confidence * 100)}%`;
  $("#quality-hint").textContent = task.metric
    ? `(${task.metric}: ${task.higher_is_better ? "a floor, e.g. 0.8" : "a ceiling, e.g. 0.5"})` : "";
  const readings = $("#r-readings");
  readings.replaceChildren();
  if ((task.readings || []).length > 1) {
    readings.append(el("p", {class: "small"}, "Other readings of the goal:"));
    const box = el("div", {class: "readings"});
    for (const r of task.readings.slice(0, 4))
      box.append(el("button", {type: "button", title: r.why,
        onclick: () => { $("#f-task-type").value = r.task_type; scheduleEncode(0); }},
        `${r.task_type} ${Math.round(r.confidence * 100)}%`));
    readings.append(box);
  }
  $("#r-explanation").textContent = task.explanation || "";
  const other = $("#r-other");
  other.replaceChildren();
  const warnings = (task.warnings || []).map((w) => ({field: "", kind: "warning", message: w}));
  const seen = new Set();
  for (const f of [...(task.findings || []), ...warnings]) {
    const key = f.message;
    if (seen.has(key)) continue;
    seen.add(key);
    const item = el("p", {class: `finding ${f.kind}`}, `${f.kind}: ${f.message}`);
    const slot = slotFor(f.field);
    if (slot) slot.append(item); else other.append(el("li", {}, item));
  }
  if (task.dataset_profile) {
    $("#profile").hidden = false;
    $("#profile").textContent = task.dataset_profile.summary;
  } else $("#profile").hidden = true;
}

function slotFor(field) {
  if (!field) return null;
  const slots = $$(".finding-slot");
  return slots.find((s) => s.dataset.for.split(" ").includes(field))
    || slots.find((s) => s.dataset.for.split(" ").some((p) => field.startsWith(p + ".")))
    || null;
}

// What the pipeline cannot do without, judged on the encoder's reading (it may have found the size or
// the region in the words or the data file).
function missingNeeds(problem) {
  if (!problem.text && !problem.task_type)
    return {field: "#f-text", message: "Write the goal first (or pick a task type): the pipeline starts from it."};
  const r = state.reading;
  if (r && !r.dataset.num_samples && !r.dataset_profile)
    return {field: "#f-samples", message: "How much data? Give the number of training samples, or pick or upload a data file: training energy depends on it."};
  if (r && !r.train_region)
    return {field: "#f-train-region", message: "Where will it train? Give a region (e.g. DEU, France, gcp:europe-west1): the grid's carbon intensity depends on it."};
  return null;
}

async function submitProblem(problem, problemId = "") {
  $("#form-error").textContent = "";
  const button = $("#submit");
  button.disabled = true;
  try {
    const reply = await api("/api/submit", {json: {problem, problem_id: problemId}});
    state.previous = problemId ? state.result : null;
    state.problem = problem;
    followTask(reply.task);
    return reply;
  } finally { button.disabled = false; }
}

function followTask(task) {
  state.task = task;
  $("#task-label").textContent = task;
  $("#results-empty").hidden = true;
  $("#task-progress").hidden = false;
  $("#progress-bar").value = 0;
  $("#progress-label").textContent = "queued: waiting for the pipeline…";
  if (state.result) {   // the figures below stay until the new task's first answer replaces them
    $("#revision").className = "revision waiting";
    $("#revision").textContent = `waiting for the first answer of ${task}; the figures below are ${taskOf(state.result)}'s`;
  }
  showPage("results", false);
}

// ------------------------------------------------------------------ results
// Revisions can come faster than the store is read: one read at a time, and one more after it when
// another was asked for meanwhile (the store holds the latest revision, so nothing older is shown last).
async function loadResult(task) {
  state.wanted = task;
  state.asked += 1;
  if (state.loading) return;
  state.loading = true;
  try {
    while (state.read < state.asked) {
      state.read = state.asked;
      await openResult(state.wanted);
    }
  } finally { state.loading = false; }
}

async function openResult(task) {
  const [pid, it] = task.split("/");
  let result;
  try { result = await api(`/api/tasks/${encodeURIComponent(pid)}/${it}`); }
  catch (err) { alertBox("result", `Cannot read task ${task}: ${err.message}`); return; }
  // A new revision of the task on screen keeps the user's choice of option, sort and sliders.
  const same = !!state.result && taskOf(state.result) === taskOf(result);
  if (same && !result.options.length && state.result.options.length)   // failed or cancelled while refining
    result = {...state.result, status: result.status, error: result.error, failed_node: result.failed_node,
              final: true, stopped: true};
  if (!same) state.chosen = "";
  state.task = task;
  state.result = result;
  state.selected = Math.max(0, result.options.findIndex((o) => optionKey(o) === state.chosen));
  if (result.problem && Object.keys(result.problem).length) state.problem = result.problem;   // the base of the next iteration
  $("#task-label").textContent = task;
  $("#results-empty").hidden = true;
  $("#task-progress").hidden = result.final;
  if (result.status === "failed" || result.status === "cancelled") {
    alertBox("task", `Task ${task} ${result.status}${result.failed_node ? " at node " + result.failed_node : ""}: ${result.error}`);
  } else alertBox("task", "");
  $("#results-body").hidden = !result.options.length;
  if (!result.options.length) return;
  $("#export-csv").href = `/api/tasks/${encodeURIComponent(pid)}/${it}/export.csv`;
  $("#export-json").href = `/api/tasks/${encodeURIComponent(pid)}/${it}/export.json`;
  showRevision(result);
  $("#explanation").textContent = result.explanation;
  showMeasuring(result.measuring);
  $("#edit-problem").hidden = !state.problem;
  renderOptions();
  renderAlternatives();
  renderCandidates();
  if (!same) setSliders();
  drawCharts();
  showMoved();
}

// Which answer this is: the first from estimates, refined as measurements land, or the final one.
function showRevision(r) {
  const measured = r.options.filter((o) => !estimated(o)).length;
  const counted = `${measured} of ${r.options.length} options measured`;
  const revision = r.revision ? `revision ${r.revision} — ` : "";
  const box = $("#revision");
  box.className = `revision ${r.final ? "final" : "refining"}`;
  if (r.stopped) box.textContent = `${revision}task ${r.status} while refining: these are its last figures, not refined further; ${counted}`;
  else if (r.final) box.textContent = `${revision}final: ${counted}`;
  else box.textContent = `${revision}refining by measurement: ${counted}; the figures marked estimate may still change`;
}

// What producing the answer cost: the measuring it took, the answer's own footprint.
function showMeasuring(m) {
  const box = $("#measuring");
  if (!m) { box.textContent = ""; return; }
  const note = m.note ? ` (${m.note})` : "";
  box.textContent = m.device_s > 0 || m.energy_j > 0
    ? `Producing this answer took ${seconds(m.device_s)} of device time, ${joules(m.energy_j)} and ${grams(m.co2_g)} CO2e${note}.`
    : `Producing this answer measured nothing: estimates and stored measurements only${note}.`;
}

async function showMoved() {
  const box = $("#moved");
  const prev = state.previous;
  if (!prev || prev.task_id.problem_id !== state.result.task_id.problem_id) { box.hidden = true; return; }
  const a = `${prev.task_id.problem_id}/${prev.task_id.iteration}`;
  const horizon = getPath(state.problem || {}, "usage.horizon_days") || "";
  try {
    const data = await api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(state.task)}&horizon_days=${horizon}`);
    box.replaceChildren(el("strong", {}, `What moved from iteration ${prev.task_id.iteration} to ${state.result.task_id.iteration}:`),
      el("ul", {}, data.moved.lines.map((l) => el("li", {}, l))));
    box.hidden = false;
  } catch (err) { box.hidden = true; }
}

const OPTION_COLUMNS = [
  {key: "rank", label: "#", num: true, value: (o) => o.rank || 1e9, show: (o) => o.rank ? `${o.rank}${o.pareto ? "*" : ""}` : "–"},
  {key: "model", label: "model", value: (o) => o.model},
  {key: "device", label: "device", value: (o) => `${o.device} ${o.host}`, show: (o) => `${o.device}${o.host ? " @ " + o.host : ""}`},
  {key: "region", label: "region", value: (o) => o.region},
  {key: "basis", label: "figures", value: (o) => basisOf(o).label,
   show: (o) => el("span", {class: `basis basis-${o.basis || "measured"}`,
     title: basisOf(o).title + (estimated(o) && o.note ? `\n${o.note}` : "")}, basisOf(o).label)},
  {key: "quality", label: "quality", num: true, value: (o) => o.quality.value ?? NaN, show: (o) => `${num(o.quality.value)} ${o.quality.metric}`},
  {key: "latency", label: "latency ms", num: true, value: (o) => o.latency_ms,
   show: (o) => approx(o, num(o.latency_ms), o.latency_uncertainty_ms > 0 ? `± ${num(o.latency_uncertainty_ms, 2)} ms (one standard uncertainty)` : "")},
  {key: "energy", label: "energy / request", num: true, value: (o) => o.energy_per_inference_j,
   show: (o) => el("span", {class: `method-${o.energy_method}`,
     title: o.energy_method.startsWith("estimate") ? "computed from assumptions, not metered" : "metered"},
     approx(o, `${joules(o.energy_per_inference_j)} ${relative(o.energy_per_inference_uncertainty_j, o.energy_per_inference_j)} ${o.energy_method}`))},
  {key: "train", label: "CO2e training", num: true, value: (o) => o.co2_g.training + o.co2_g.experimentation,
   show: (o) => grams(o.co2_g.training + o.co2_g.experimentation)},
  {key: "inference", label: "CO2e inference", num: true, value: (o) => o.co2_g.inference, show: (o) => grams(o.co2_g.inference)},
  {key: "total", label: "CO2e total", num: true, value: (o) => o.co2_g.total, show: (o) => `${grams(o.co2_g.total)} ${relative(o.co2_g.total_uncertainty, o.co2_g.total)}`},
  {key: "sci", label: "SCI / request", num: true, value: (o) => o.sci_g_per_request, show: (o) => grams(o.sci_g_per_request)},
];

function sortedRows(rows, columns, sort) {
  const col = columns.find((c) => c.key === sort.key) || columns[0];
  return rows.map((r, i) => [r, i]).sort(([a], [b]) => {
    const x = col.value(a), y = col.value(b);
    if (typeof x === "string") return sort.dir * x.localeCompare(y);
    if (isNaN(x)) return 1; if (isNaN(y)) return -1;
    return sort.dir * (x - y);
  });
}

function tableHead(table, columns, sort, rerender, extra = []) {
  const row = el("tr");
  for (const c of columns) {
    const th = el("th", {class: c.num ? "num" : "", scope: "col",
      "aria-sort": c.key === sort.key ? (sort.dir > 0 ? "ascending" : "descending") : "none"},
      el("button", {type: "button", onclick: () => {
        sort.dir = sort.key === c.key ? -sort.dir : 1; sort.key = c.key; rerender();
        $(`th button[data-key="${c.key}"]`, table)?.focus();
      }, "data-key": c.key, "data-focus": `sort:${c.key}`}, c.label));
    row.append(th);
  }
  for (const label of extra) row.append(el("th", {scope: "col"}, label));
  return el("thead", {}, row);
}

function renderOptions() {
  const table = $("#options");
  const options = state.result.options;
  // A new revision redraws the table: the keyboard focus goes back to the same button.
  const focused = table.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  const body = el("tbody");
  for (const [o, i] of sortedRows(options, OPTION_COLUMNS, state.sort.options)) {
    const tr = el("tr", {class: [o.pareto ? "pareto" : "", o.meets_constraints ? "" : "misses", i === state.selected ? "selected" : "",
      estimated(o) ? "estimated" : ""].join(" "), title: o.note || ""});
    for (const c of OPTION_COLUMNS) {
      const v = c.show ? c.show(o) : c.value(o);
      tr.append(el(c.key === "model" ? "th" : "td", {class: c.num ? "num" : "", scope: c.key === "model" ? "row" : null}, v));
    }
    tr.append(el("td", {}, el("button", {type: "button", onclick: () => { state.selected = i; state.chosen = optionKey(o); renderOptions(); renderAlternatives(); },
      "aria-label": `Show greener alternatives of ${optionName(o)}`, "data-focus": `alt:${optionKey(o)}`}, "alternatives"), " ",
      el("button", {type: "button", onclick: () => openNote(o), "aria-label": `Add a note to ${optionName(o)}`,
        "data-focus": `note:${optionKey(o)}`}, "note")));
    body.append(tr);
  }
  table.replaceChildren(tableHead(table, OPTION_COLUMNS, state.sort.options, renderOptions, [""]), body);
  const prerun = options.filter(estimated).length;
  const computed = options.filter((o) => o.energy_method.startsWith("estimate")).length;
  table.prepend(el("caption", {class: "hint"}, `${options.length} options; * = on the Pareto front; greyed = misses a constraint (hover for why)` +
    (prerun ? `; ${prerun} are pre-run estimates, not measured (hover for why)` : "") +
    (computed ? `; ${computed} energy figures are estimates (computed, not metered)` : "")));
  if (focused) $(`[data-focus="${CSS.escape(focused)}"]`, table)?.focus();
}

function renderAlternatives() {
  const o = state.result.options[state.selected];
  $("#alt-for").textContent = optionName(o);
  const list = $("#alternatives");
  list.replaceChildren();
  for (const a of o.alternatives) {
    const where = a.kind === "region" ? `region ${a.region} (${num(a.intensity_g_per_kwh)} g/kWh)` : `device ${a.device}${a.host ? " @ " + a.host : ""}`;
    const gives = a.kind === "device" ? (a.latency_change_ms > 0 ? `gives up ${num(a.latency_change_ms)} ms of latency per request` : "no latency lost")
      : "gives up nothing measured here (network latency to the region is not included)";
    const pct = o.co2_g.total > 0 ? ` (${Math.round(100 * a.saving_g / o.co2_g.total)}%)` : "";
    list.append(el("li", {}, `${where}: ${grams(a.total_co2_g)}, saves ${grams(a.saving_g)}${pct}; ${a.note || gives}`));
  }
  if (!o.alternatives.length) list.append(el("li", {class: "muted"}, "none greener among the allowed regions and measured devices"));
  for (const e of (o.equivalents || []).slice(0, 2))
    list.append(el("li", {class: "muted"}, `its ${grams(o.co2_g.total)} are ${num(e.amount)} ${e.unit} (${e.source.split(",")[0]})`));
}

function renderCandidates() {
  const list = $("#candidates");
  list.replaceChildren();
  for (const c of state.result.candidates) list.append(el("li", {}, el("strong", {}, c.name), `: ${c.reason || c.description || ""}`));
  for (const x of state.result.excluded) list.append(el("li", {class: "muted"}, `not proposed: ${x}`));
}

// ------------------------------------------------------------------ charts (plotly.js, bundled)
function paretoFront(points) {
  // minimise CO2, maximise quality (after the sign flip for lower-is-better metrics)
  const sorted = [...points].sort((a, b) => a.x - b.x || b.q - a.q);
  const front = [];
  let best = -Infinity;
  for (const p of sorted) if (p.q > best) { front.push(p); best = p.q; }
  return front;
}

function drawCharts() {
  if (!window.Plotly || !state.result || $("#page-results").hidden) return;
  const r = state.result;
  const options = r.options.filter((o) => o.quality.value !== null);
  const hib = options.length ? options[0].quality.higher_is_better : true;
  const pts = options.map((o) => ({x: o.co2_g.total, y: o.quality.value, q: hib ? o.quality.value : -o.quality.value, o}));
  const front = paretoFront(pts);
  const config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
  const layout = (x, y) => ({margin: {l: 60, r: 10, t: 10, b: 50}, xaxis: {title: {text: x}}, yaxis: {title: {text: y}},
    legend: {orientation: "h", y: -0.25}, font: {size: 12}});
  Plotly.react("pareto", [
    {x: pts.map((p) => p.x), y: pts.map((p) => p.y), mode: "markers", type: "scatter", name: "options",
     text: pts.map((p) => `${optionName(p.o)}<br>${num(p.o.latency_ms)} ms, ${basisOf(p.o).title}`), hoverinfo: "text+x+y",
     marker: {size: 11, color: pts.map((p) => p.o.latency_ms), colorscale: "Viridis", showscale: true,
              symbol: pts.map((p) => estimated(p.o) ? "diamond" : "circle"),
              colorbar: {title: {text: "ms"}, thickness: 12}, line: {width: 1, color: "#333"}}},
    {x: front.map((p) => p.x), y: front.map((p) => p.y), mode: "lines+markers", type: "scatter", name: "Pareto front",
     line: {color: "#1f7a4d", width: 2}, marker: {size: 15, symbol: "circle-open", color: "#1f7a4d", line: {width: 2}},
     hoverinfo: "skip"},
  ], {...layout("lifetime g CO2e (log)", `${r.metric} (${hib ? "higher" : "lower"} is better: better is up)`),
      xaxis: {type: "log", title: {text: "lifetime g CO2e (log)"}},
      yaxis: {title: {text: `${r.metric} (better is up)`}, autorange: hib ? true : "reversed"}}, config);
  drawBreakdown(config, layout);
}

function drawBreakdown(config, layout) {
  const r = state.result;
  const by = $("#breakdown-by").value;
  const top = r.options.filter((o) => o.rank).sort((a, b) => a.rank - b.rank).slice(0, 8);
  let traces = [], xTitle = "", barmode = "stack", yTitle = "g CO2e", barnorm = "";
  if (by === "phase") {
    // shares, not grams: the options differ by orders of magnitude, and the question is where each one's CO2 comes from
    const label = top.map((o) => `#${o.rank} ${o.model}`);
    traces = ["experimentation", "training", "inference", "embodied"].map((p) =>
      ({type: "bar", name: p, x: label, y: top.map((o) => o.co2_g[p]), hovertemplate: "%{x}: %{y:.3s} g<extra>" + p + "</extra>"}));
    barnorm = "percent"; yTitle = "% of the option's lifetime CO2e";
  } else if (by === "device") {
    const models = [...new Set(r.options.map((o) => o.model))].slice(0, 8);
    const devices = [...new Set(r.options.map((o) => `${o.device}${o.host ? " @ " + o.host : ""}`))];
    barmode = "group";
    traces = devices.map((d) => ({type: "bar", name: d, x: models,
      y: models.map((m) => { const o = r.options.find((x) => x.model === m && `${x.device}${x.host ? " @ " + x.host : ""}` === d); return o ? o.co2_g.total : null; })}));
  } else if (by === "region") {
    const o = r.options[state.selected];
    const rows = [{region: `${o.region} (chosen)`, g: o.co2_g.total}, ...o.alternatives.filter((a) => a.kind === "region").map((a) => ({region: a.region, g: a.total_co2_g}))];
    traces = [{type: "bar", name: optionName(o), x: rows.map((x) => x.region), y: rows.map((x) => x.g)}];
    xTitle = `${o.model} on ${o.device}, served in each region`;
  } else {
    const stages = r.stages || [];
    if (!stages.length) {
      Plotly.purge("breakdown");
      $("#breakdown").replaceChildren(el("p", {class: "muted"}, "No tracked stages for this task: track your own pipeline with " +
        "sustainml.tracking.Tracker(publish=True, task_id=…) and its stages appear here."));
      return;
    }
    const runs = [...new Set(stages.map((s) => s.run))];
    const names = [...new Set(stages.map((s) => s.stage))];
    traces = names.map((n) => ({type: "bar", name: n, x: runs, y: runs.map((run) => stages.filter((s) => s.run === run && s.stage === n).reduce((t, s) => t + s.co2_g, 0))}));
  }
  if (!$("#breakdown .plot-container")) $("#breakdown").replaceChildren();
  Plotly.react("breakdown", traces, {...layout(xTitle, yTitle), barmode, barnorm}, config);
}

// ------------------------------------------------------------------ iteration sliders
const LOG = {min: Math.log10(0.01), max: Math.log10(1e4)};
const REQ = {min: 0, max: 8};   // 1 .. 1e8 requests a day
const fromLog = (v, r) => 10 ** (r.min + (r.max - r.min) * v / 100);
const toLog = (x, r) => Math.max(0, Math.min(100, 100 * (Math.log10(x) - r.min) / (r.max - r.min)));

const requestsPerDay = () => Number(fromLog(Number($("#s-requests").value), REQ).toPrecision(2));

function setSliders() {
  const p = state.problem || {};
  const r = state.result;
  const q = $("#s-quality");
  const hib = r.options[0]?.quality.higher_is_better ?? true;
  const values = r.options.map((o) => o.quality.value).filter((v) => v !== null);
  const hi = Math.max(1, ...values), lo = 0;
  q.min = lo; q.max = hib ? Math.min(1, hi) : hi * 2; q.step = (q.max - q.min) / 100;
  q.value = getPath(p, "constraints.quality_target") ?? 0;
  $("#s-latency").value = toLog(getPath(p, "constraints.max_latency_ms") || 1e4, LOG);
  $("#s-requests").value = toLog(getPath(p, "usage.requests_per_day") || 1000, REQ);
  $("#s-horizon").value = getPath(p, "usage.horizon_days") || 365;
  $("#s-region").value = p.inference_region || r.options[0]?.region || "";
  showSliderValues();
}

function showSliderValues() {
  const q = Number($("#s-quality").value);
  $("#o-quality").textContent = q > 0 ? `${q.toPrecision(3)} ${state.result?.metric || ""}` : "none";
  const lat = fromLog(Number($("#s-latency").value), LOG);
  $("#o-latency").textContent = Number($("#s-latency").value) >= 100 ? "none" : `${lat.toPrecision(2)} ms`;
  $("#o-requests").textContent = requestsPerDay().toLocaleString();
  $("#o-horizon").textContent = `${$("#s-horizon").value} days`;
}

function iterate() {
  if (!state.result) return;
  if (!state.problem) {   // a result stored before results carried their problem
    alertBox("iterate", "This result does not carry its problem: describe it again to iterate.");
    return;
  }
  const problem = structuredClone(state.problem);
  const q = Number($("#s-quality").value);
  setPath(problem, "constraints.quality_target", q);
  const latency = Number($("#s-latency").value);
  setPath(problem, "constraints.max_latency_ms", latency >= 100 ? 0 : Number(fromLog(latency, LOG).toPrecision(2)));
  setPath(problem, "usage.requests_per_day", requestsPerDay());
  setPath(problem, "usage.horizon_days", Number($("#s-horizon").value));
  const region = $("#s-region").value.trim();
  if (region) problem.inference_region = region;
  submitProblem(problem, state.result.task_id.problem_id).catch((err) => alertBox("iterate", `New iteration refused: ${err.message}`));
}

function scheduleIterate(delay) {
  showSliderValues();
  clearTimeout(state.sliderTimer);
  state.sliderTimer = setTimeout(iterate, delay);
}

// ------------------------------------------------------------------ history and comparison
// The newest 100 tasks, or the page at ``path`` (the "Older tasks" button's, from the server's Link header).
async function loadHistory(path = "/api/history?limit=100") {
  const table = $("#history");
  let rows, next;
  try { ({data: rows, next} = await apiPage(path)); }
  catch (err) { table.replaceChildren(el("caption", {class: "error"}, err.message)); return; }
  const older = $("#older-history");
  older.hidden = !next;
  older.onclick = next ? () => loadHistory(next) : null;
  const head = el("tr", {}, ["", "task", "submitted", "status", "task type", "options", "recommended", "CO2e total", "export"].map((h) => el("th", {scope: "col"}, h)));
  const body = el("tbody");
  for (const r of rows) {
    const box = el("input", {type: "checkbox", value: r.task, "aria-label": `Compare ${r.task}`, onchange: updateCompare});
    body.append(el("tr", {},
      el("td", {}, box),
      el("th", {scope: "row"}, el("button", {type: "button", class: "link", onclick: () => { state.previous = null; state.problem = null; loadResult(r.task); showPage("results"); }}, r.task)),
      el("td", {}, when(r.submitted_unix_s)),
      el("td", {title: r.error}, r.status + (r.final === false && r.revision ? ` · revision ${r.revision}` : "") + (r.error ? `: ${r.error.slice(0, 60)}` : "")),
      el("td", {}, r.task_type),
      el("td", {class: "num"}, r.options),
      el("td", {}, r.best ? optionName(r.best) : "–"),
      el("td", {class: "num"}, r.best ? grams(r.best.co2_g.total) : "–"),
      el("td", {}, el("a", {href: `/api/tasks/${r.problem_id}/${r.iteration}/export.csv`, download: true}, "CSV"), " ",
        el("a", {href: `/api/tasks/${r.problem_id}/${r.iteration}/export.json`, download: true}, "JSON"))));
  }
  if (!rows.length) body.append(el("tr", {}, el("td", {colspan: 9, class: "muted"}, "nothing stored yet")));
  table.replaceChildren(el("thead", {}, head), body);
  updateCompare();
}

function updateCompare() {
  $("#compare").disabled = $$("#history input:checked").length !== 2;
}

async function compareTicked() {
  const [a, b] = $$("#history input:checked").map((c) => c.value).reverse();   // older first
  const box = $("#comparison");
  try {
    const data = await api(`/api/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    const side = (r) => {
      const best = r.options.filter((o) => o.rank).sort((x, y) => x.rank - y.rank).slice(0, 5);
      return el("div", {}, el("h3", {}, `${r.task_id.problem_id}/${r.task_id.iteration} · ${r.status}`),
        el("p", {class: "small"}, r.explanation.split("\n")[0]),
        el("table", {}, el("thead", {}, el("tr", {}, ["#", "option", "quality", "ms", "CO2e"].map((h) => el("th", {scope: "col"}, h)))),
          el("tbody", {}, best.map((o) => el("tr", {}, el("td", {}, o.rank), el("td", {}, optionName(o)), el("td", {class: "num"}, num(o.quality.value)),
            el("td", {class: "num"}, num(o.latency_ms)), el("td", {class: "num"}, grams(o.co2_g.total)))))));
    };
    box.replaceChildren(el("div", {class: "moved"}, el("strong", {}, `From ${a} to ${b}:`), el("ul", {}, data.moved.lines.map((l) => el("li", {}, l)))),
      side(data.a), side(data.b));
    box.hidden = false;
    box.querySelector("strong").focus?.();
  } catch (err) { box.hidden = false; box.replaceChildren(el("p", {class: "error"}, err.message)); }
}

// ------------------------------------------------------------------ shared evidence and notes
const EVIDENCE_COLUMNS = [
  {key: "received_unix_s", label: "when", num: false, value: (m) => m.received_unix_s, show: (m) => when(m.received_unix_s)},
  {key: "task_type", label: "task type", value: (m) => m.task_type},
  {key: "model", label: "model", value: (m) => m.model},
  {key: "device", label: "device", value: (m) => `${m.device} ${m.host}`, show: (m) => `${m.device} @ ${m.host}`},
  {key: "precision", label: "precision", value: (m) => m.precision},
  {key: "latency", label: "latency p50 ms", num: true, value: (m) => m.latency_p50_ms, show: (m) => num(m.latency_p50_ms)},
  {key: "energy", label: "energy / inference", num: true, value: (m) => m.energy_per_inference_j,
   show: (m) => el("span", {class: `method-${m.energy_method}`, title: m.assumptions}, `${joules(m.energy_per_inference_j)} ± ${joules(m.energy_per_inference_uncertainty_j)}`)},
  {key: "method", label: "method", value: (m) => m.energy_method + (m.cached ? " (cached)" : "")},
  {key: "task", label: "task", value: (m) => m.task},
];
let evidence = {records: [], notes: []};

async function loadEvidence(event) {
  event?.preventDefault();
  const params = new URLSearchParams(new FormData($("#evidence-filters")));
  try { evidence = await api(`/api/evidence?${params}`); }
  catch (err) { $("#evidence-count").textContent = err.message; return; }
  if (!event) fillEvidenceFilters();
  renderEvidence();
}

function fillEvidenceFilters() {
  const fill = (sel, values) => {
    const keep = sel.value;
    sel.replaceChildren(el("option", {value: ""}, "any"), ...[...new Set(values)].sort().map((v) => el("option", {value: v}, v)));
    sel.value = keep;
  };
  fill($("#e-task-type"), evidence.records.map((m) => m.task_type).filter(Boolean));
  fill($("#e-device"), evidence.records.map((m) => m.device.split(":")[0]));
  fill($("#e-model"), evidence.records.map((m) => m.model));
}

function renderEvidence() {
  const table = $("#evidence");
  const body = el("tbody");
  for (const [m] of sortedRows(evidence.records, EVIDENCE_COLUMNS, state.sort.evidence)) {
    const tr = el("tr");
    for (const c of EVIDENCE_COLUMNS) tr.append(el("td", {class: c.num ? "num" : ""}, c.show ? c.show(m) : c.value(m)));
    body.append(tr);
  }
  table.replaceChildren(tableHead(table, EVIDENCE_COLUMNS, state.sort.evidence, renderEvidence), body);
  const hosts = new Set(evidence.records.map((m) => m.host)).size;
  $("#evidence-count").textContent = `${evidence.records.length} measurements from ${hosts} host${hosts === 1 ? "" : "s"}`;
  const notes = $("#notes");
  notes.replaceChildren(...evidence.notes.map((n) => el("li", {},
    el("strong", {}, `${n.model} on ${n.device}${n.host ? " @ " + n.host : ""}`), ` (task ${n.task}${n.author ? ", " + n.author : ""}, ${when(n.created_unix_s)}): ${n.text}`)));
  if (!evidence.notes.length) notes.append(el("li", {class: "muted"}, "no notes yet: add one from an option in the results"));
}

let noteTarget = null;
function openNote(option) {
  noteTarget = option;
  $("#note-option").textContent = optionName(option);
  $("#note-error").textContent = "";
  $("#note-dialog").showModal();
  $("#note-text").focus();
}

async function saveNote(event) {
  event.preventDefault();
  const o = noteTarget;
  try {
    await api("/api/notes", {json: {task: state.task, model: o.model, device: o.device, host: o.host, region: o.region,
      text: $("#note-text").value, author: $("#note-author").value}});
    $("#note-text").value = "";
    $("#note-dialog").close();
    alertBox("note", "");
  } catch (err) { $("#note-error").textContent = err.message; }
}

// ------------------------------------------------------------------ start
async function loadChoices() {
  try {
    const data = await api("/api/data");
    const sel = $("#f-dataset");
    for (const f of data.files) sel.append(el("option", {value: f}, f));
    $("#upload-hint").textContent = `(CSV or Parquet, up to ${data.max_upload_mb} MiB)`;
  } catch (err) { /* the data folder list is a convenience */ }
  loadTaskTypes(0);
}

async function loadTaskTypes(attempt) {
  // The list of sustainml.task_types, from the server alone; a server still starting is asked again.
  try {
    const types = await api("/api/task_types");
    for (const t of types) $("#f-task-type").append(el("option", {value: t}, t.replaceAll("_", " ")));
  } catch (err) {
    if (attempt < 5) setTimeout(() => loadTaskTypes(attempt + 1), 5000);
    else alertBox("types", `The list of task types is unavailable (${err.message}); the encoder infers the type from the goal.`);
  }
}

async function upload() {
  const file = $("#f-upload").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const reply = await api("/api/upload", {method: "POST", body: form});
    const sel = $("#f-dataset");
    if (![...sel.options].some((o) => o.value === reply.path)) sel.append(el("option", {value: reply.path}, reply.path));
    sel.value = reply.path;
    $("#form-error").textContent = "";
    scheduleEncode(0);
  } catch (err) { $("#form-error").textContent = `Upload failed: ${err.message}`; }
}

function start() {
  for (const tab of $$(".tab")) tab.addEventListener("click", () => showPage(tab.dataset.page));
  $("#problem-form").addEventListener("input", (e) => { if (e.target.id !== "f-upload") scheduleEncode(); });
  $("#problem-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const problem = readForm();
    const missing = missingNeeds(problem);
    if (missing) {
      $("#form-error").textContent = missing.message;
      $(missing.field).focus();
      return;
    }
    try { await submitProblem(problem); }
    catch (err) { $("#form-error").textContent = err.message; }
  });
  $("#example").addEventListener("click", () => fillForm(EXAMPLE));
  $("#f-upload").addEventListener("change", upload);
  $("#cancel").addEventListener("click", () => {
    const [pid, it] = state.task.split("/");
    api(`/api/tasks/${encodeURIComponent(pid)}/${it}/cancel`, {json: {}}).catch((err) => alertBox("cancel", err.message));
  });
  $("#breakdown-by").addEventListener("change", () => drawCharts());
  for (const s of $$(".sliders input[type=range]")) {
    // "input" follows the thumb; "change" comes on release (mouse) or on each key press (keyboard),
    // so a short pause after the last change starts the iteration.
    s.addEventListener("input", showSliderValues);
    s.addEventListener("change", () => scheduleIterate(700));
  }
  $("#s-region").addEventListener("change", () => scheduleIterate(200));
  $("#refresh-history").addEventListener("click", () => loadHistory());
  $("#edit-problem").addEventListener("click", () => { fillForm(state.problem); showPage("describe"); });
  $("#compare").addEventListener("click", compareTicked);
  $("#evidence-filters").addEventListener("submit", loadEvidence);
  $("#note-form").addEventListener("submit", saveNote);
  $("#note-cancel").addEventListener("click", () => $("#note-dialog").close());
  window.addEventListener("resize", () => { if (state.result && !$("#page-results").hidden) { Plotly.Plots.resize("pareto"); Plotly.Plots.resize("breakdown"); } });
  for (const h of $$(".page h2")) h.tabIndex = -1;
  connectEvents();
  loadChoices();
  const page = location.hash.slice(1);
  showPage(["describe", "results", "history", "evidence"].includes(page) ? page : "describe", false);
}

document.addEventListener("DOMContentLoaded", start);
