// How numbers, times and durations read on screen. Times are shown in UTC so that a shared
// link reads the same everywhere.

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms === 0) return "0";
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 0)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60_000)} m ${((ms % 60_000) / 1000).toFixed(0)} s`;
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "$0";
  const digits = Math.abs(value) >= 1 ? 2 : Math.abs(value) >= 0.01 ? 4 : 6;
  return `$${value.toFixed(digits)}`;
}

export function int(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US");
}

export function compact(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return abs < 1 && abs > 0 ? value.toPrecision(2) : String(Math.round(value * 100) / 100);
}

// "2026-12-01T10:00:00.020000123Z" -> "2026-12-01 10:00:00.020 UTC"
export function time(rfc3339) {
  if (!rfc3339) return "–";
  return rfc3339.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1 UTC").replace(/Z$/, " UTC");
}

export function shortTime(unixNano) {
  const d = new Date(Number(unixNano) / 1e6);
  return d.toISOString().slice(11, 19);
}

// Relative ranges the forms offer, in seconds.
export const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };

export function rangeWindow(range) {
  const seconds = RANGES[range] || 3600;
  const end = new Date();
  const start = new Date(end.getTime() - seconds * 1000);
  return { start: start.toISOString(), end: end.toISOString() };
}

// One colour per service, stable across pages: a hue from the name's hash.
export function serviceColour(name) {
  let hash = 2166136261;
  for (const ch of String(name)) { hash ^= ch.codePointAt(0); hash = Math.imul(hash, 16777619); }
  const hue = (hash >>> 0) % 360;
  return `hsl(${hue} 60% 52%)`;
}

// Distinct colours for the services of one trace, in the order given.
export function paletteFor(names) {
  const sorted = [...new Set(names)].sort();
  return new Map(sorted.map((name, i) => [name, i < SERIES.length ? SERIES[i] : serviceColour(name)]));
}

export const SERIES = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395"];
