// The status page: renders /api/status and each running pipeline's latest
// dead letters, every REFRESH_MS. Rates are computed here, from the
// difference between two samples.
//
// Every value goes in as text (text nodes, textContent), never as markup:
// previews, headers, messages and names come from events and plugins, of
// anyone's making.
"use strict";

const REFRESH_MS = 2000;
/** Pipeline name -> the previous sample's {at, events, outputs, dead_letters}. */
const previous = new Map();

/** An element with a class and children; strings become text nodes. */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(ms) {
  return ms > 0 ? new Date(ms).toLocaleString() : "–";
}

function shortDigest(digest) {
  if (!digest) return "–";
  const [algo, hex] = digest.split(":");
  return hex ? `${algo}:${hex.slice(0, 12)}` : digest;
}

/** A table whose cells carry their column's name, for the phone layout. */
function table(columns, rows, empty) {
  if (rows.length === 0) return el("p", "muted", empty);
  const head = el("tr", null, ...columns.map((c) => el("th", null, c)));
  const body = rows.map((cells) => {
    const tr = el("tr");
    cells.forEach((cell, i) => {
      const td = el("td", null, cell);
      td.setAttribute("data-label", columns[i]);
      tr.appendChild(td);
    });
    return tr;
  });
  return el("table", null, el("thead", null, head), el("tbody", null, ...body));
}

function badge(text) {
  return el("span", `badge ${text}`, text);
}

function stat(value, label) {
  return el("div", "stat", el("b", null, value), el("span", null, label));
}

function facts(pairs) {
  const dl = el("dl", "facts");
  for (const [name, value] of pairs) dl.append(el("dt", null, name), el("dd", null, value));
  return dl;
}

/** Per-second rates of the pipeline's counters since the last sample. */
function rates(p, at) {
  const last = previous.get(p.name);
  previous.set(p.name, { at, events: p.events, outputs: p.outputs, dead_letters: p.dead_letters });
  const rate = (field) => {
    if (!last || at <= last.at) return "…";
    const perSecond = Math.max(0, p[field] - last[field]) / ((at - last.at) / 1000);
    return perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond).toLocaleString();
  };
  return { events: rate("events"), outputs: rate("outputs"), dead_letters: rate("dead_letters") };
}

function preview(p) {
  if (!p) return el("span", "muted", "none");
  const more = p.truncated ? ` … (${p.bytes} bytes)` : "";
  return el("span", null, el("code", "preview", p.text), more);
}

function deadLetterRows(deadLetters) {
  return deadLetters.map((d) => {
    const extra = el("div");
    extra.appendChild(el("div", null, "key ", preview(d.key)));
    for (const h of d.headers) extra.appendChild(el("div", null, `${h.name} `, preview(h.value)));
    return [
      when(d.failed_at_ms),
      d.kind,
      el("span", null, d.plugin, " ", el("code", null, shortDigest(d.digest))),
      d.message,
      `${d.source.topic}/${d.source.partition} @ ${d.source.offset}`,
      preview(d.value),
      extra,
      d.attempts,
      `${d.dlq.topic}/${d.dlq.partition} @ ${d.dlq.offset}`,
    ];
  });
}

function pipelineCard(p, deadLetters, at) {
  const state = p.state === "running" && !p.joined ? "starting" : p.state;
  const card = el("section", "card pipeline", el("header", null, el("h2", null, p.name), badge(state)));
  if (p.error) card.appendChild(el("p", "error", p.error));
  card.appendChild(
    facts([
      ["inputs", p.inputs.join(", ")],
      ["output", p.output],
      ["dead letters to", p.dlq],
      ["group", p.group_id],
      ["started", when(p.started_at_ms)],
    ]),
  );
  const r = rates(p, at);
  card.appendChild(
    el(
      "div",
      "stats",
      stat(r.events, "events/s"),
      stat(r.outputs, "outputs/s"),
      stat(r.dead_letters, "dead letters/s"),
      stat(p.events.toLocaleString(), "events"),
      stat(p.dead_letters.toLocaleString(), "dead letters"),
      stat(p.restarts.toLocaleString(), "restarts"),
    ),
  );
  card.appendChild(el("h3", null, "Plugins"));
  card.appendChild(
    table(
      ["Plugin", "Digest", "Loaded at", "Instances"],
      p.plugins.map((v) => [v.name, el("code", null, shortDigest(v.digest)), when(v.loaded_at_ms), v.instances]),
      "none loaded",
    ),
  );
  card.appendChild(el("h3", null, "Consumer lag"));
  card.appendChild(
    table(
      ["Partition", "Lag"],
      p.lag.map((l) => [`${l.topic}/${l.partition}`, l.lag === null ? "not reported yet" : l.lag.toLocaleString()]),
      "no partitions assigned",
    ),
  );
  card.appendChild(el("h3", null, "Dead letters by kind"));
  const kinds = Object.entries(p.dead_letters_by_kind).filter(([, n]) => n > 0);
  card.appendChild(
    kinds.length === 0
      ? el("p", "muted", "none")
      : el("ul", "kinds", ...kinds.map(([kind, n]) => el("li", null, `${kind}: ${n.toLocaleString()}`))),
  );
  card.appendChild(el("h3", null, "Latest dead letters"));
  card.appendChild(
    table(
      ["Failed at", "Kind", "Plugin", "Reason", "Source", "Value", "Key and headers", "Attempts", "Written to"],
      deadLetterRows(deadLetters),
      p.state === "running" ? "none since it started" : "not running",
    ),
  );
  return card;
}

function reloadWhat(r) {
  if (r.kind === "plugin") {
    const pipelines = r.pipelines.length ? ` in ${r.pipelines.join(", ")}` : "";
    return `${r.plugin}: ${shortDigest(r.old)} → ${shortDigest(r.new)}${pipelines}`;
  }
  const parts = [
    ["added", r.added],
    ["removed", r.removed],
    ["changed", r.changed],
  ]
    .filter(([, names]) => names.length)
    .map(([what, names]) => `${what} ${names.join(", ")}`);
  return parts.length ? parts.join("; ") : "no pipeline changed";
}

function reloadsTable(reloads) {
  const rows = reloads
    .slice()
    .reverse()
    .map((r) => [when(r.at_ms), r.kind, badge(r.outcome), reloadWhat(r), r.error || ""]);
  return table(["At", "Kind", "Outcome", "What", "Error"], rows, "no reloads yet");
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function deadLettersOf(p) {
  if (p.state !== "running") return [];
  try {
    const view = await getJson(`/api/pipelines/${encodeURIComponent(p.name)}/dead-letters`);
    return view.dead_letters;
  } catch (e) {
    // Stopped between the two requests; the next round shows why.
    return [];
  }
}

/** Keeps a select's options equal to `values`, its choice kept. */
function syncOptions(select, values, first) {
  const wanted = (first ? [first] : []).concat(values);
  const have = Array.from(select.options, (o) => o.value);
  if (have.join("\n") === wanted.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(...wanted.map((v) => {
    const option = el("option", null, v || "any");
    option.value = v;
    return option;
  }));
  if (wanted.includes(chosen)) select.value = chosen;
}

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const status = await getJson("/api/status");
    const at = performance.now();
    const deadLetters = await Promise.all(status.pipelines.map(deadLettersOf));
    document
      .getElementById("pipelines")
      .replaceChildren(...status.pipelines.map((p, i) => pipelineCard(p, deadLetters[i], at)));
    document.getElementById("reloads").replaceChildren(reloadsTable(status.reloads));
    const form = document.getElementById("redrive");
    syncOptions(form.elements.pipeline, status.pipelines.map((p) => p.name), null);
    const kinds = status.pipelines.length ? Object.keys(status.pipelines[0].dead_letters_by_kind) : [];
    syncOptions(form.elements.kind, kinds, "");
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    updated.className = "muted";
  } catch (e) {
    updated.textContent = `cannot reach sluice: ${e.message}`;
    updated.className = "error";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

async function redrive(event) {
  event.preventDefault();
  const form = event.target;
  const out = document.getElementById("redrive-result");
  const f = form.elements;
  const body = { dry_run: f.dry_run.checked };
  if (f.kind.value) body.kind = f.kind.value;
  if (f.plugin.value.trim()) body.plugin = f.plugin.value.trim();
  if (f.since.value) body.since = new Date(f.since.value).getTime();
  const headers = { "Content-Type": "application/json" };
  if (f.token.value) headers.Authorization = `Bearer ${f.token.value}`;
  out.textContent = "redriving…";
  try {
    const url = `/api/pipelines/${encodeURIComponent(f.pipeline.value)}/redrive`;
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    out.textContent = `HTTP ${response.status}\n${JSON.stringify(answer, null, 2)}`;
  } catch (e) {
    out.textContent = `cannot reach sluice: ${e.message}`;
  }
}

document.getElementById("redrive").addEventListener("submit", redrive);
refresh();
