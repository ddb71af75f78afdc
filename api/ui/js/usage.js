// The usage page: cost and tokens over time by model and by service, and latency
// percentiles, from GET /metrics (the API's usage endpoint).

import { get } from "./api.js";
import { h, svg } from "./dom.js";
import { RANGES, SERIES, compact, duration, int, rangeWindow, shortTime, usd } from "./format.js";

// A bucket width per window that keeps charts to a few dozen bars.
const BUCKET_FOR = { "15m": "1m", "1h": "1m", "6h": "5m", "24h": "1h", "7d": "6h", "30d": "1d" };
const OTHER = "(other)";
const MAX_SERIES = 8;

const WIDTH_NS = { "1m": 60e9, "5m": 300e9, "15m": 900e9, "1h": 3600e9, "6h": 21600e9, "1d": 86400e9 };

// Every bucket of the window (buckets start at multiples of the width since the epoch, as
// the API bins them), so that the time axis is the window's and gaps show as gaps.
function allBuckets(window, bucket) {
  const width = WIDTH_NS[bucket];
  const start = Math.floor(Date.parse(window.start) * 1e6 / width) * width;
  const end = Date.parse(window.end) * 1e6;
  const out = [];
  for (let b = start; b < end; b += width) out.push(b);
  return out;
}

function seriesOf(rows, group, value, buckets) {
  // {buckets: [ns...], names: [...], data: Map(name -> Map(bucket -> value))}
  const totals = new Map();
  for (const row of rows) totals.set(row[group] ?? "(none)", (totals.get(row[group] ?? "(none)") || 0) + value(row));
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([name]) => name);
  const kept = new Set(ranked.slice(0, MAX_SERIES));
  const names = ranked.slice(0, MAX_SERIES).concat(ranked.length > MAX_SERIES ? [OTHER] : []);
  const data = new Map(names.map((n) => [n, new Map()]));
  for (const row of rows) {
    const name = kept.has(row[group] ?? "(none)") ? row[group] ?? "(none)" : OTHER;
    const series = data.get(name);
    const at = nearest(buckets, row.bucket_unix_nano);
    series.set(at, (series.get(at) || 0) + value(row));
  }
  return { buckets, names, data };
}

// The chart bucket a row's bucket falls in (exact unless float rounding moved it).
function nearest(buckets, ns) {
  let best = buckets[0];
  for (const b of buckets) if (b <= ns + 1e6) best = b;
  return best;
}

const W = 640;
const H = 220;
const PAD = { left: 52, right: 8, top: 8, bottom: 24 };

function frame(max, format, buckets, label) {
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, preserveAspectRatio: "none" });
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + ((H - PAD.top - PAD.bottom) * (4 - i)) / 4;
    chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#eef0f4" }),
      svg("text", { x: PAD.left - 4, y: y + 3, "text-anchor": "end" }, format((max * i) / 4)));
  }
  const step = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % step) return;
    const x = PAD.left + ((W - PAD.left - PAD.right) * (i + 0.5)) / buckets.length;
    chart.append(svg("text", { x, y: H - 6, "text-anchor": "middle" }, shortTime(b)));
  });
  chart.append(svg("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }));
  return chart;
}

function stackedBars({ buckets, names, data }, format, label) {
  const stacks = buckets.map((b) => names.reduce((sum, n) => sum + (data.get(n).get(b) || 0), 0));
  const max = Math.max(1e-12, ...stacks);
  const chart = frame(max, format, buckets, label);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = Math.max(1, (plotW / Math.max(1, buckets.length)) * 0.8);
  buckets.forEach((b, i) => {
    let base = 0;
    names.forEach((name, k) => {
      const value = data.get(name).get(b) || 0;
      if (!value) return;
      const height = (plotH * value) / max;
      const x = PAD.left + (plotW * i) / buckets.length + (plotW / buckets.length - barW) / 2;
      const rect = svg("rect", { x, y: PAD.top + plotH - base - height, width: barW, height, fill: SERIES[k % SERIES.length] },
        svg("title", {}, `${name} ${shortTime(b)}: ${format(value)}`));
      chart.append(rect);
      base += height;
    });
  });
  return chart;
}

function lines(buckets, series, format, label) {
  const all = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1e-12, ...all);
  const chart = frame(max, format, buckets, label);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => (v === null ? null : [PAD.left + (plotW * (i + 0.5)) / buckets.length, PAD.top + plotH - (plotH * v) / max]))
      .filter(Boolean);
    if (!points.length) return;
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: SERIES[k], "stroke-width": 2 }));
    for (const [x, y] of points) chart.append(svg("circle", { cx: x, cy: y, r: 2.5, fill: SERIES[k] }));
  });
  return chart;
}

function legend(names) {
  return h("div", { class: "legend" }, names.map((name, k) => h("span", { class: "chip" },
    h("span", { class: "swatch", style: { background: SERIES[k % SERIES.length] }, "aria-hidden": "true" }), name)));
}

function card(title, chart, names, id) {
  return h("section", { class: "card chart", "aria-label": title, id }, h("h2", {}, title), chart, names ? legend(names) : null);
}

function totalsTable(rows, group, range) {
  const totals = new Map();
  for (const row of rows) {
    const key = row[group] ?? "(none)";
    const t = totals.get(key) || { requests: 0, errors: 0, input: 0, output: 0, cost: 0 };
    t.requests += row.request_count; t.errors += row.error_count;
    t.input += row.input_tokens; t.output += row.output_tokens; t.cost += row.cost_usd;
    totals.set(key, t);
  }
  const sorted = [...totals.entries()].sort((a, b) => b[1].cost - a[1].cost || b[1].requests - a[1].requests);
  const title = group === "model" ? "Model" : "Service";
  return h("table", { class: "grid", id: `totals-${group}` },
    h("caption", { class: "muted" }, `Totals by ${group} (links open its traces)`),
    h("thead", {}, h("tr", {}, [title, "Requests", "Errors", "Input tokens", "Output tokens", "Cost"].map((c, i) => h("th", { scope: "col", class: i ? "num" : "" }, c)))),
    h("tbody", {}, sorted.map(([name, t]) => h("tr", {},
      h("td", {}, name === "(none)" ? name : h("a", { href: `#/traces?${new URLSearchParams({ [group]: name, range })}` }, name)),
      h("td", { class: "num" }, int(t.requests)), h("td", { class: "num" }, int(t.errors)),
      h("td", { class: "num" }, int(t.input)), h("td", { class: "num" }, int(t.output)), h("td", { class: "num" }, usd(t.cost))))));
}

function controls(range) {
  return h("form", { class: "filters", "aria-label": "Usage window", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/usage?${new URLSearchParams({ range: new FormData(e.target).get("range") })}`;
  } },
  h("label", { for: "usage-range" }, "Time window",
    h("select", { id: "usage-range", name: "range", onchange: (e) => e.target.form.requestSubmit() },
      Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === range }, `Last ${r}`)))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Refresh")));
}

export async function renderUsage(main, params, stillCurrent) {
  const range = RANGES[params.get("range")] ? params.get("range") : "24h";
  const bucket = BUCKET_FOR[range];
  const window = rangeWindow(range);
  main.append(h("h1", {}, "Usage"), controls(range));
  const [byModel, byService, overall] = await Promise.all([
    get("/metrics", { ...window, bucket, group_by: "model" }),
    get("/metrics", { ...window, bucket, group_by: "service" }),
    get("/metrics", { ...window, bucket }),
  ]);
  if (!stillCurrent()) return;
  const llmRows = byModel.rows.filter((r) => r.model);
  const buckets = allBuckets(window, bucket);
  const costModel = seriesOf(llmRows, "model", (r) => r.cost_usd, buckets);
  const tokensModel = seriesOf(llmRows, "model", (r) => r.input_tokens + r.output_tokens, buckets);
  const costService = seriesOf(byService.rows, "service", (r) => r.cost_usd, buckets);
  const tokensService = seriesOf(byService.rows, "service", (r) => r.input_tokens + r.output_tokens, buckets);
  const latency = new Map(overall.rows.map((r) => [nearest(buckets, r.bucket_unix_nano), r.latency_ms]));
  const pct = (name) => buckets.map((b) => (latency.get(b) ? latency.get(b)[name] : null));
  main.append(
    h("p", { class: "muted" }, `Buckets of ${bucket}; source: ${overall.source}`),
    h("div", { class: "cards" },
      card("Cost by model (USD)", stackedBars(costModel, usd, "Cost per bucket by model"), costModel.names, "chart-cost-model"),
      card("Tokens by model (input + output)", stackedBars(tokensModel, compact, "Tokens per bucket by model"), tokensModel.names, "chart-tokens-model"),
      card("Cost by service (USD)", stackedBars(costService, usd, "Cost per bucket by service"), costService.names, "chart-cost-service"),
      card("Tokens by service (input + output)", stackedBars(tokensService, compact, "Tokens per bucket by service"), tokensService.names, "chart-tokens-service"),
      card("Span latency percentiles", lines(buckets, [{ values: pct("p50") }, { values: pct("p95") }, { values: pct("p99") }], (v) => duration(v), "Latency p50, p95 and p99 per bucket"),
        ["p50", "p95", "p99"], "chart-latency")),
    h("h2", {}, "By model"), totalsTable(llmRows, "model", range),
    h("h2", {}, "By service"), totalsTable(byService.rows, "service", range));
}
