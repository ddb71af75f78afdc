// Trace search: the API's trace filters (GET /traces) with keyset paging; attribute filters
// search spans instead (GET /spans, attr.KEY=VALUE) and list the matching spans' traces.

import { get } from "./api.js";
import { h } from "./dom.js";
import { RANGES, duration, int, rangeWindow, serviceColour, time, usd } from "./format.js";

const FIELDS = ["service", "model", "provider", "root_name", "status", "min_duration_ms", "max_duration_ms", "min_cost_usd", "sort", "limit"];

function field(label, input) {
  return h("label", { for: input.id }, label, input);
}

function textInput(id, params, extra = {}) {
  return h("input", { id, name: id, value: params.get(id) || "", ...extra });
}

function select(id, params, options, fallback = "") {
  const current = params.get(id) ?? fallback;
  return h("select", { id, name: id }, options.map(([value, label]) => h("option", { value, selected: value === current }, label)));
}

function attrLines(params) {
  return params.getAll("attr").join("\n");
}

function form(params, services, models) {
  const range = params.get("start") ? "custom" : params.get("range") || "1h";
  const rangeSelect = select("range", new URLSearchParams({ range }), [...Object.keys(RANGES).map((r) => [r, `Last ${r}`]), ["custom", "Custom (start/end)"]]);
  const serviceInput = textInput("service", params, { list: "services-list", autocomplete: "off" });
  const modelInput = textInput("model", params, { list: "models-list", autocomplete: "off" });
  const attrs = h("textarea", { id: "attr", name: "attr", rows: 1, placeholder: "key=value, one per line" }, attrLines(params));
  return h("form", { class: "filters", role: "search", "aria-label": "Trace search", onsubmit: submit },
    field("Service", serviceInput),
    h("datalist", { id: "services-list" }, services.map((s) => h("option", { value: s }))),
    field("Model", modelInput),
    h("datalist", { id: "models-list" }, models.map((m) => h("option", { value: m }))),
    field("Provider", textInput("provider", params)),
    field("Root span name", textInput("root_name", params)),
    field("Status", select("status", params, [["", "Any"], ["error", "Has an error"], ["ok", "No error"]])),
    field("Min duration (ms)", textInput("min_duration_ms", params, { type: "number", min: 0, step: "any" })),
    field("Max duration (ms)", textInput("max_duration_ms", params, { type: "number", min: 0, step: "any" })),
    field("Min cost (USD)", textInput("min_cost_usd", params, { type: "number", min: 0, step: "any" })),
    field("Time window", rangeSelect),
    field("Start (RFC 3339)", textInput("start", params, { placeholder: "2026-01-31T12:00:00Z" })),
    field("End (RFC 3339)", textInput("end", params, { placeholder: "now" })),
    field("Sort", select("sort", params, [["-start_time", "Newest first"], ["start_time", "Oldest first"], ["-duration", "Longest first"], ["duration", "Shortest first"]], "-start_time")),
    field("Page size", select("limit", params, [["20", "20"], ["50", "50"], ["100", "100"]], "50")),
    h("label", { for: "attr", class: "wide" }, "Span attributes (searches spans)", attrs),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Search"),
      h("button", { type: "button", onclick: () => { location.hash = "#/traces"; } }, "Reset")));
}

function submit(event) {
  event.preventDefault();
  const data = new FormData(event.target);
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = String(data.get(name) || "").trim();
    if (value) params.set(name, value);
  }
  const start = String(data.get("start") || "").trim();
  const end = String(data.get("end") || "").trim();
  if (data.get("range") === "custom" || start) {
    if (start) params.set("start", start);
    if (end) params.set("end", end);
  } else {
    params.set("range", String(data.get("range")));
  }
  for (const line of String(data.get("attr") || "").split("\n")) {
    if (line.includes("=")) params.append("attr", line.trim());
  }
  location.hash = `#/traces?${params}`;
}

// The API's parameters for this URL; a relative range becomes a fixed window, and the page
// links carry it so every page of one search has the same window (the cursor is bound to it).
function apiParams(params) {
  const out = {};
  for (const name of FIELDS) if (params.get(name)) out[name] = params.get(name);
  if (!out.limit) out.limit = "50";
  if (params.get("start")) {
    out.start = params.get("start");
    if (params.get("end")) out.end = params.get("end");
  } else {
    Object.assign(out, rangeWindow(params.get("range") || "1h"));
  }
  if (params.get("cursor")) out.cursor = params.get("cursor");
  return out;
}

function attrFilters(params) {
  const out = {};
  for (const line of params.getAll("attr")) {
    const at = line.indexOf("=");
    if (at > 0) out[`attr.${line.slice(0, at).trim()}`] = line.slice(at + 1).trim();
  }
  return out;
}

function pageLinks(params, used, nextCursor) {
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  if (params.get("cursor")) pager.append(h("button", { type: "button", onclick: () => history.back() }, "← Previous page"));
  if (nextCursor) {
    const next = new URLSearchParams(params);
    next.delete("range");
    next.set("start", used.start);
    if (used.end) next.set("end", used.end);
    next.set("cursor", nextCursor);
    pager.append(h("a", { href: `#/traces?${next}`, id: "next-page" }, "Next page →"));
  }
  return pager;
}

function services(list) {
  return list.map((s) => h("span", { class: "chip" }, h("span", { class: "swatch", style: { background: serviceColour(s) }, "aria-hidden": "true" }), s));
}

function tracesTable(traces) {
  const longest = Math.max(1e-9, ...traces.map((t) => t.duration_ms));
  return h("table", { class: "grid", id: "trace-results" },
    h("caption", { class: "muted" }, `${traces.length} traces`),
    h("thead", {}, h("tr", {},
      ["Start (UTC)", "Root span", "Duration", "Spans", "Errors", "Tokens in / out", "Cost", "Services"].map((c, i) => h("th", { scope: "col", class: i >= 2 && i <= 6 ? "num" : "" }, c)))),
    h("tbody", {}, traces.map((t) => h("tr", { class: t.error_count ? "error" : "", dataset: { traceId: t.trace_id } },
      h("td", { class: "mono" }, time(t.start_time)),
      h("td", {}, h("a", { href: `#/trace/${t.trace_id}` }, t.root.service_name ? `${t.root.service_name}: ` : "", t.root.name ?? "(no root)")),
      h("td", { class: "num" }, duration(t.duration_ms), h("div", { class: "durbar", style: { width: `${(100 * t.duration_ms) / longest}%` } })),
      h("td", { class: "num" }, int(t.span_count)),
      h("td", { class: "num" }, t.error_count ? h("span", { class: "badge-error" }, int(t.error_count)) : "0"),
      h("td", { class: "num" }, `${int(t.input_tokens)} / ${int(t.output_tokens)}`),
      h("td", { class: "num" }, usd(t.cost_usd)),
      h("td", {}, services(t.services))))));
}

function spansTable(spans) {
  return h("table", { class: "grid", id: "span-results" },
    h("caption", { class: "muted" }, `${spans.length} spans matching the attribute filters`),
    h("thead", {}, h("tr", {},
      ["Start (UTC)", "Span", "Service", "Duration", "Model", "Tokens in / out", "Cost", "Trace"].map((c, i) => h("th", { scope: "col", class: [3, 5, 6].includes(i) ? "num" : "" }, c)))),
    h("tbody", {}, spans.map((s) => h("tr", { class: s.status.code === "error" ? "error" : "" },
      h("td", { class: "mono" }, time(s.start_time)),
      h("td", {}, h("a", { href: `#/trace/${s.trace_id}?span=${s.span_id}` }, s.name)),
      h("td", {}, services([s.service_name])),
      h("td", { class: "num" }, duration(s.duration_ms)),
      h("td", {}, s.llm.request_model || s.llm.response_model || "–"),
      h("td", { class: "num" }, s.llm.input_tokens === null ? "–" : `${int(s.llm.input_tokens)} / ${int(s.llm.output_tokens)}`),
      h("td", { class: "num" }, usd(s.llm.cost_total_usd)),
      h("td", { class: "mono" }, h("a", { href: `#/trace/${s.trace_id}` }, s.trace_id.slice(0, 12) + "…"))))));
}

async function inventory() {
  try {
    const window = rangeWindow("7d");
    const [svc, mdl] = await Promise.all([get("/services", window), get("/models", window)]);
    return [svc.services.map((s) => s.service), mdl.models.map((m) => m.model).filter(Boolean)];
  } catch {
    return [[], []];  // suggestions only: a key without the usage scope still searches
  }
}

export async function renderSearch(main, params, stillCurrent) {
  const [serviceNames, modelNames] = await inventory();
  if (!stillCurrent()) return;
  main.append(h("h1", {}, "Traces"), form(params, serviceNames, modelNames));
  const results = h("section", { "aria-label": "Results", id: "results" }, h("p", { class: "muted" }, "Searching…"));
  main.append(results);
  const used = apiParams(params);
  const attrs = attrFilters(params);
  let page;
  if (Object.keys(attrs).length) {
    const spanParams = { ...used, ...attrs, sort: undefined };
    if (spanParams.status === "ok") delete spanParams.status;
    delete spanParams.root_name;
    page = await get("/spans", spanParams);
    if (!stillCurrent()) return;
    results.replaceChildren(spansTable(page.spans), pageLinks(params, used, page.next_cursor));
  } else {
    page = await get("/traces", used);
    if (!stillCurrent()) return;
    results.replaceChildren(
      page.traces.length ? tracesTable(page.traces) : h("p", { class: "muted", id: "no-results" }, "No traces in this window match."),
      pageLinks(params, used, page.next_cursor));
  }
  results.prepend(h("p", { class: "muted" }, `Window ${time(page.window.start)} – ${time(page.window.end)}`));
}
