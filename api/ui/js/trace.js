// The trace page: a waterfall of the spans (tree order, timing bars, service colours, errors
// marked; a keyboard-navigable ARIA tree) and the selected span's details.

import { get } from "./api.js";
import { h } from "./dom.js";
import { duration, int, paletteFor, time, usd } from "./format.js";
import { conversation } from "./conversation.js";
import { valueCell } from "./values.js";

function summaryBox(trace, colours) {
  const s = trace.summary;
  const item = (label, value, id) => h("div", {}, h("dt", {}, label), h("dd", { id }, value));
  return h("dl", { class: "summary", id: "trace-summary" },
    item("Root", `${s.root.service_name}: ${s.root.name}`),
    item("Trace id", h("span", { class: "mono" }, trace.trace_id)),
    item("Start (UTC)", time(s.start_time)),
    item("Duration", duration(s.duration_ms), "trace-duration"),
    item("Spans", int(trace.span_count), "trace-span-count"),
    item("Errors", s.error_count ? h("span", { class: "badge-error" }, int(s.error_count)) : "0"),
    item("Tokens in / out", `${int(s.input_tokens)} / ${int(s.output_tokens)}`),
    item("Cost", usd(s.cost_usd), "trace-cost"),
    item("Services", s.services.map((name) => h("span", { class: "chip" }, h("span", { class: "swatch", style: { background: colours.get(name) }, "aria-hidden": "true" }), name))));
}

function ticks(totalNs) {
  const axis = h("div", { class: "wf-axis", "aria-hidden": "true" });
  for (let i = 0; i <= 4; i++) {
    const tick = h("span", { class: "wf-tick", style: { left: `${i * 25}%` } }, duration((totalNs * i) / 4 / 1e6));
    axis.append(tick);
  }
  return axis;
}

function isLlm(span) {
  const llm = span.llm || {};
  return Boolean(llm.request_model || llm.response_model || llm.input_tokens !== null && llm.input_tokens !== undefined);
}

class Waterfall {
  constructor(trace, colours, onSelect) {
    this.colours = colours;
    this.spans = trace.spans;
    this.onSelect = onSelect;
    this.start = BigInt(trace.summary.start_time_unix_nano);
    this.total = Math.max(1, Number(BigInt(trace.summary.end_time_unix_nano) - this.start));
    this.children = new Map();
    this.parentOf = new Map();
    this.collapsed = new Set();
    const known = new Set(this.spans.map((s) => s.span_id));
    for (const span of this.spans) {
      const parent = span.parent_span_id && known.has(span.parent_span_id) ? span.parent_span_id : null;
      this.parentOf.set(span.span_id, parent);
      if (parent) (this.children.get(parent) || this.children.set(parent, []).get(parent)).push(span.span_id);
    }
    this.rows = new Map();
    this.list = h("ul", { class: "wf-tree", role: "tree", "aria-label": "Spans of the trace, in tree order", id: "waterfall-tree", onkeydown: (e) => this.key(e) });
    this.spans.forEach((span, index) => this.list.append(this.row(span, index)));
    this.element = h("section", { class: "waterfall", "aria-label": "Waterfall" },
      h("div", { class: "wf-head" }, h("div", {}, "Span (service)"), h("div", {}, ticks(this.total))),
      this.list);
  }

  row(span, index) {
    const depth = span.depth ?? 0;
    const offset = Number(BigInt(span.start_time_unix_nano) - this.start);
    const left = (100 * offset) / this.total;
    const width = Math.max((100 * span.duration_ns) / this.total, 0.15);
    const error = span.status.code === "error";
    const hasChildren = this.children.has(span.span_id);
    const colour = this.colours.get(span.service_name);
    const label = `${span.name}, ${span.service_name}, ${duration(span.duration_ms)}${error ? ", error" : ""}${isLlm(span) ? ", LLM call" : ""}`;
    const bar = h("div", { class: `wf-bar${error ? " error" : ""}`, style: { left: `${left}%`, width: `${width}%`, background: colour }, dataset: { spanId: span.span_id } });
    const durLabel = h("span", { class: "wf-dur", style: left + width > 80 ? { right: `${100 - left + 0.5}%` } : { left: `${left + width + 0.5}%` } }, duration(span.duration_ms));
    const row = h("li", {
      class: "wf-row", role: "treeitem", tabindex: index === 0 ? 0 : -1, "aria-level": depth + 1,
      "aria-selected": "false", "aria-label": label, "aria-expanded": hasChildren ? "true" : undefined,
      dataset: { spanId: span.span_id, depth: String(depth) },
      onclick: () => this.select(span.span_id, true),
    },
    h("div", { class: "wf-label", style: { paddingLeft: `${6 + depth * 14}px` } },
      h("span", { class: "wf-toggle", "aria-hidden": "true", onclick: (e) => { if (hasChildren) { e.stopPropagation(); this.toggle(span.span_id); } } }, hasChildren ? "▼" : ""),
      h("span", { class: "swatch", style: { background: colour }, "aria-hidden": "true" }),
      error ? h("span", { class: "wf-err", title: "status: error", "aria-hidden": "true" }, "!") : null,
      h("span", { class: "name" }, span.name),
      isLlm(span) ? h("span", { class: "wf-llm", "aria-hidden": "true" }, "LLM") : null,
      h("span", { class: "svc" }, span.service_name)),
    h("div", { class: "wf-track", "aria-hidden": "true" }, bar, durLabel));
    this.rows.set(span.span_id, row);
    return row;
  }

  visibleRows() {
    return [...this.list.children].filter((row) => !row.hidden);
  }

  select(spanId, focus) {
    const row = this.rows.get(spanId);
    if (!row) return;
    for (const other of this.rows.values()) {
      other.setAttribute("aria-selected", "false");
      other.tabIndex = -1;
    }
    // reveal a span hidden under a collapsed ancestor
    for (let parent = this.parentOf.get(spanId); parent; parent = this.parentOf.get(parent)) {
      if (this.collapsed.has(parent)) this.toggle(parent);
    }
    row.setAttribute("aria-selected", "true");
    row.tabIndex = 0;
    if (focus) row.focus();
    this.onSelect(spanId);
  }

  toggle(spanId) {
    const collapse = !this.collapsed.has(spanId);
    if (collapse) this.collapsed.add(spanId); else this.collapsed.delete(spanId);
    const row = this.rows.get(spanId);
    row.setAttribute("aria-expanded", collapse ? "false" : "true");
    row.querySelector(".wf-toggle").textContent = collapse ? "▶" : "▼";
    for (const [id, other] of this.rows) other.hidden = this.hiddenByAncestor(id);
  }

  hiddenByAncestor(spanId) {
    for (let parent = this.parentOf.get(spanId); parent; parent = this.parentOf.get(parent)) {
      if (this.collapsed.has(parent)) return true;
    }
    return false;
  }

  key(event) {
    const row = event.target.closest(".wf-row");
    if (!row) return;
    const id = row.dataset.spanId;
    const visible = this.visibleRows();
    const at = visible.indexOf(row);
    const move = (target) => { if (target) { event.preventDefault(); this.select(target.dataset.spanId, true); } };
    switch (event.key) {
      case "ArrowDown": move(visible[at + 1]); break;
      case "ArrowUp": move(visible[at - 1]); break;
      case "Home": move(visible[0]); break;
      case "End": move(visible[visible.length - 1]); break;
      case "ArrowRight":
        if (this.collapsed.has(id)) { event.preventDefault(); this.toggle(id); }
        else if (this.children.has(id)) move(this.rows.get(this.children.get(id)[0]));
        break;
      case "ArrowLeft":
        if (this.children.has(id) && !this.collapsed.has(id)) { event.preventDefault(); this.toggle(id); }
        else if (this.parentOf.get(id)) move(this.rows.get(this.parentOf.get(id)));
        break;
      case "Enter": case " ": event.preventDefault(); this.select(id, true); break;
      default:
    }
  }
}

function attributesTable(caption, plain, exact) {
  const keys = Object.keys(plain || {}).sort();
  if (!keys.length) return null;
  return h("table", { class: "attrs" }, h("caption", { class: "muted" }, caption),
    h("tbody", {}, keys.map((key) => h("tr", {}, h("th", { scope: "row" }, key), valueCell(plain[key], exact ? exact[key] : undefined)))));
}

function section(title, ...content) {
  const body = content.flat().filter(Boolean);
  return body.length ? h("section", { "aria-label": title }, h("h3", {}, title), body) : null;
}

const TOKEN_KINDS = [
  ["input_tokens", "Input"], ["output_tokens", "Output"], ["total_tokens", "Total"],
  ["cache_read_tokens", "Cache read"], ["cache_write_tokens", "Cache write"], ["reasoning_tokens", "Reasoning"],
];

function llmSection(span) {
  if (!isLlm(span)) return null;
  const llm = span.llm;
  const facts = h("dl", { class: "kv", id: "llm-facts" },
    h("dt", {}, "Model"), h("dd", { id: "llm-model" }, llm.request_model && llm.response_model && llm.response_model !== llm.request_model
      ? `${llm.request_model} → ${llm.response_model}` : llm.request_model || llm.response_model || "–"),
    h("dt", {}, "Provider"), h("dd", {}, llm.provider || "–"),
    h("dt", {}, "Operation"), h("dd", {}, llm.operation || "–"));
  const tokens = h("table", { class: "attrs", id: "llm-tokens" }, h("caption", { class: "muted" }, "Tokens by kind"),
    h("tbody", {}, TOKEN_KINDS.filter(([k]) => llm[k] !== null && llm[k] !== undefined)
      .map(([k, label]) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, int(llm[k]))))));
  // every cost_* field the API gives (input, output, total, and any further components)
  const costs = Object.keys(llm).filter((k) => k.startsWith("cost_") && llm[k] !== null && llm[k] !== undefined);
  const cost = h("table", { class: "attrs", id: "llm-cost" }, h("caption", { class: "muted" }, "Cost breakdown (USD)"),
    h("tbody", {}, costs.map((k) => h("tr", { dataset: { field: k } },
      h("th", { scope: "row" }, k.replace(/^cost_/, "").replace(/_usd$/, "").replace(/_/g, " ")), h("td", {}, usd(llm[k]))))));
  return h("section", { "aria-label": "LLM call" }, h("h3", {}, "LLM call"), facts, tokens, costs.length ? cost : null, conversationBlock(span));
}

function messageBlock(message) {
  const role = String(message.role || "message");
  return h("div", { class: `msg ${role}`, dataset: { role } },
    h("div", { class: "role" }, role, message.finish ? h("span", { class: "muted" }, ` · finish: ${message.finish}`) : null),
    message.parts.map((p) => {
      if (p.type === "tool_call") return h("div", { class: "call" }, `→ tool call ${p.name || ""}${p.id ? ` (${p.id})` : ""}: `, h("pre", {}, p.args || ""));
      if (p.type === "tool_result") return h("div", { class: "call" }, `← tool result${p.id ? ` (${p.id})` : ""}: `, h("pre", {}, p.text));
      return h("pre", { class: p.reasoning ? "muted" : "" }, p.text);
    }));
}

function conversationBlock(span) {
  const found = conversation(span);
  if (!found.source) return h("p", { class: "muted" }, "No prompt or completion content was recorded for this call.");
  return h("div", { class: "conversation", id: "conversation", "aria-label": "Conversation" },
    h("div", { class: "source" }, `From ${found.source}`),
    found.input.map(messageBlock),
    found.output.length ? h("div", { class: "source" }, "Completion") : null,
    found.output.map(messageBlock));
}

function eventsSection(span) {
  return section(`Events (${(span.events || []).length})`, (span.events || []).map((e) => h("div", { class: "event" },
    h("div", {}, h("strong", {}, e.name), " ", h("span", { class: "muted" }, `+${duration((e.time_unix_nano - span.start_time_unix_nano) / 1e6)}`)),
    attributesTable("attributes", e.attributes, (e.exact_values || {}).attributes))),
  span.dropped_events_count ? h("p", { class: "muted" }, `${span.dropped_events_count} events dropped by the SDK`) : null);
}

function linksSection(span) {
  return section(`Links (${(span.links || []).length})`, (span.links || []).map((l) => h("div", { class: "link" },
    h("a", { href: `#/trace/${l.trace_id}?span=${l.span_id}`, class: "mono" }, `${l.trace_id} / ${l.span_id}`),
    attributesTable("attributes", l.attributes, (l.exact_values || {}).attributes))));
}

function logsSection(span) {
  if (!Array.isArray(span.logs)) return null;
  return section(`Log records (${span.logs.length})`, span.logs.map((log) => h("div", { class: "log" },
    h("div", {}, h("strong", {}, log.severity_text || log.event_name || "log"), " ", h("span", { class: "muted" }, time(log.time))),
    h("pre", {}, typeof log.body === "string" ? log.body : JSON.stringify(log.body, null, 2)),
    attributesTable("attributes", log.attributes, (log.exact_values || {}).attributes))));
}

function details(span) {
  const exact = span.exact_values || {};
  const scope = span.scope || {};
  return h("aside", { class: "details", "aria-label": "Span details", id: "span-details", dataset: { spanId: span.span_id } },
    h("h2", {}, span.name),
    h("dl", { class: "kv" },
      h("dt", {}, "Service"), h("dd", {}, span.service_name),
      h("dt", {}, "Status"), h("dd", { class: span.status.code === "error" ? "badge-error" : "" }, span.status.code, span.status.message ? `: ${span.status.message}` : ""),
      h("dt", {}, "Kind"), h("dd", {}, span.kind),
      h("dt", {}, "Duration"), h("dd", {}, duration(span.duration_ms)),
      h("dt", {}, "Start (UTC)"), h("dd", { class: "mono" }, time(span.start_time)),
      h("dt", {}, "Span id"), h("dd", { class: "mono" }, span.span_id),
      h("dt", {}, "Parent"), h("dd", { class: "mono" }, span.parent_span_id || "(root)"),
      span.trace_state ? [h("dt", {}, "Trace state"), h("dd", { class: "mono" }, span.trace_state)] : null,
      span.flags ? [h("dt", {}, "Flags"), h("dd", { class: "mono" }, `0x${span.flags.toString(16)}`)] : null,
      h("dt", {}, "Scope"), h("dd", {}, [scope.name, scope.version].filter(Boolean).join(" ") || "–")),
    llmSection(span),
    section("Attributes", attributesTable("span attributes", span.attributes, exact.attributes),
      span.dropped_attributes_count ? h("p", { class: "muted" }, `${span.dropped_attributes_count} attributes dropped by the SDK`) : null),
    eventsSection(span),
    linksSection(span),
    logsSection(span),
    section("Resource", attributesTable("resource attributes", span.resource_attributes, exact.resource_attributes),
      span.resource_schema_url ? h("p", { class: "muted" }, `schema: ${span.resource_schema_url}`) : null),
    section("Instrumentation scope", attributesTable("scope attributes", scope.attributes, exact.scope_attributes),
      scope.schema_url ? h("p", { class: "muted" }, `schema: ${scope.schema_url}`) : null),
    h("details", { class: "raw" }, h("summary", {}, "The span as the API gives it (JSON)"),
      h("pre", { class: "mono" }, JSON.stringify(span, null, 2))));
}

// The spans loaded so far in the API's tree order: depth-first, each parent before its
// children, siblings (and roots: spans whose parent is not loaded) by start time. Each page
// of a large trace is in tree order on its own; merged pages are ordered again here.
export function treeOrder(spans) {
  const byStart = (a, b) => (a.start_time < b.start_time ? -1 : a.start_time > b.start_time ? 1 : a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : 0);
  const known = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && known.has(span.parent_span_id) && span.parent_span_id !== span.span_id) {
      (children.get(span.parent_span_id) || children.set(span.parent_span_id, []).get(span.parent_span_id)).push(span);
    } else roots.push(span);
  }
  const ordered = [];
  const seen = new Set();
  const stack = roots.sort(byStart).reverse().map((span) => [span, 0]);
  while (stack.length) { // iterative: a chain of thousands of spans must not overflow the call stack
    const [span, depth] = stack.pop();
    if (seen.has(span.span_id)) continue;
    seen.add(span.span_id);
    ordered.push({ ...span, depth });
    const kids = (children.get(span.span_id) || []).sort(byStart);
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  // spans on a parent cycle are reachable from no root: still shown, as roots
  for (const span of spans.filter((s) => !seen.has(s.span_id)).sort(byStart)) ordered.push({ ...span, depth: 0 });
  return ordered;
}

function moreSpans(loaded, total, cursor, onMore) {
  const said = h("span", { id: "trace-loaded" }, `Showing the first ${int(loaded)} of ${int(total)} spans (by start time).`);
  if (!cursor) return h("p", { class: "partial", id: "trace-partial", role: "status" }, said);
  const button = h("button", { type: "button", id: "load-more-spans" }, "Load more spans");
  const error = h("span", { class: "badge-error", id: "load-more-error" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    error.textContent = "";
    try {
      await onMore();
    } catch (failure) {
      error.textContent = ` Could not load more spans: ${failure.message}`;
      button.disabled = false;
    }
  });
  return h("p", { class: "partial", id: "trace-partial", role: "status" }, said, " ", button, error);
}

export async function renderTrace(main, traceId, params, stillCurrent) {
  const path = `/traces/${encodeURIComponent(traceId)}`;
  const trace = await get(path);
  if (!stillCurrent()) return;
  let spans = trace.spans;
  let cursor = trace.next_cursor;
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const panel = h("div", { id: "details-slot" });
  const colours = paletteFor(trace.summary.services);
  const layout = h("div", { class: "trace-layout" });
  const notice = h("div", { id: "trace-notice" });
  let selected = null;
  // A span named in the URL that is not among the spans loaded yet stays wanted (and is
  // selected when its page arrives) until another span is chosen.
  let wanted = params.get("span");
  let choosing = false;

  const draw = () => {
    const waterfall = new Waterfall({ ...trace, spans }, colours, (spanId) => {
      selected = spanId;
      if (!choosing) wanted = null;
      panel.replaceChildren(details(byId.get(spanId)));
      const query = new URLSearchParams({ span: spanId }).toString();
      if (location.hash !== `#/trace/${traceId}?${query}`) history.replaceState(null, "", `#/trace/${traceId}?${query}`);
    });
    layout.replaceChildren(waterfall.element, panel);
    // A trace longer than one answer says so, and loads further pages on demand.
    notice.replaceChildren(spans.length < trace.span_count || cursor ? moreSpans(spans.length, trace.span_count, cursor, loadMore) : "");
    const first = byId.has(wanted) ? wanted : byId.has(selected) ? selected : (spans.find(isLlm) || spans[0]).span_id;
    if (first === wanted) wanted = null;
    choosing = true;
    waterfall.select(first, false);
    choosing = false;
  };

  const loadMore = async () => {
    const page = await get(path, { cursor });
    if (!stillCurrent()) return;
    for (const span of page.spans) byId.set(span.span_id, span);
    spans = treeOrder([...byId.values()]);
    cursor = page.next_cursor;
    draw();
  };

  main.append(
    h("p", {}, h("a", { href: "#/traces" }, "← Traces")),
    h("h1", {}, `Trace ${trace.summary.root.name}`),
    summaryBox(trace, colours),
    notice,
    layout);
  draw();
}
