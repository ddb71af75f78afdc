// The messages of an LLM call, from whichever convention the SDK used:
//  - OpenTelemetry GenAI (current): gen_ai.system_instructions, gen_ai.input.messages,
//    gen_ai.output.messages (a JSON string on a span, or structured values);
//  - OpenTelemetry GenAI (older) / OpenLLMetry: gen_ai.prompt.{i}.*, gen_ai.completion.{i}.*;
//  - OpenInference: llm.input_messages.{i}.message.*, llm.output_messages.{i}.message.*,
//    else input.value / output.value;
//  - GenAI events and log records: gen_ai.system.message, gen_ai.user.message,
//    gen_ai.assistant.message, gen_ai.tool.message, gen_ai.choice,
//    gen_ai.client.inference.operation.details, and OpenLIT's gen_ai.content.prompt /
//    gen_ai.content.completion.
// Each message: {role, parts: [{type: "text"|"tool_call"|"tool_result"|"other", ...}], finish}.

function parseMaybeJson(value) {
  if (typeof value !== "string") return value;
  const text = value.trim();
  if (!(text.startsWith("[") || text.startsWith("{"))) return value;
  try { return JSON.parse(text); } catch { return value; }
}

function asText(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// "prefix.3.rest" keys -> [{rest: value}] by index
function indexed(attributes, prefix) {
  const found = [];
  const head = prefix + ".";
  for (const [key, value] of Object.entries(attributes || {})) {
    if (!key.startsWith(head)) continue;
    const match = /^(\d+)\.(.+)$/.exec(key.slice(head.length));
    if (!match) continue;
    const index = Number(match[1]);
    (found[index] ||= {})[match[2]] = value;
  }
  return found.filter(Boolean);
}

function partsOf(content) {
  content = parseMaybeJson(content);
  if (Array.isArray(content)) return content.map(part);
  if (content && typeof content === "object") return [part(content)];
  return content === undefined || content === null || content === "" ? [] : [{ type: "text", text: String(content) }];
}

function part(p) {
  if (typeof p === "string") return { type: "text", text: p };
  if (!p || typeof p !== "object") return { type: "text", text: asText(p) };
  const type = p.type;
  if (type === "text" || type === "reasoning" || (type === undefined && ("content" in p || "text" in p))) {
    return { type: "text", text: asText(p.content ?? p.text), reasoning: type === "reasoning" };
  }
  if (type === "tool_call" || type === "function") {
    const fn = p.function || {};
    return { type: "tool_call", id: p.id, name: p.name ?? fn.name, args: asText(p.arguments ?? fn.arguments) };
  }
  if (type === "tool_call_response") return { type: "tool_result", id: p.id, text: asText(p.response ?? p.result) };
  return { type: "other", text: asText(p) };
}

// A GenAI message object: {role, parts|content, tool_calls, finish_reason}
function genaiMessage(m, fallbackRole) {
  if (typeof m === "string") return { role: fallbackRole, parts: [{ type: "text", text: m }] };
  if (!m || typeof m !== "object") return null;
  const inner = m.message && typeof m.message === "object" ? m.message : m;
  const parts = inner.parts ? partsOf(inner.parts) : partsOf(inner.content);
  for (const call of inner.tool_calls || []) {
    const fn = call.function || {};
    parts.push({ type: "tool_call", id: call.id, name: fn.name ?? call.name, args: asText(fn.arguments ?? call.arguments) });
  }
  const role = inner.role || fallbackRole;
  if (role === "tool" && inner.tool_call_id) parts.forEach((p) => { if (p.type === "text") { p.type = "tool_result"; p.id = inner.tool_call_id; } });
  return { role, parts, finish: m.finish_reason ?? inner.finish_reason };
}

function fromGenai(attributes) {
  const input = [];
  const output = [];
  const system = attributes["gen_ai.system_instructions"];
  if (system !== undefined) input.push({ role: "system", parts: partsOf(system) });
  for (const [key, into, role] of [["gen_ai.input.messages", input, "user"], ["gen_ai.output.messages", output, "assistant"]]) {
    const value = parseMaybeJson(attributes[key]);
    if (value === undefined) continue;
    for (const m of Array.isArray(value) ? value : [value]) {
      const message = genaiMessage(m, role);
      if (message) into.push(message);
    }
  }
  return { input, output };
}

function flatMessage(fields, fallbackRole, base) {
  // fields of one indexed message: role, content, tool_calls.{j}.name ... (prefix `base`)
  const get = (name) => fields[base + name];
  const parts = partsOf(get("content"));
  for (const call of indexed(Object.fromEntries(Object.entries(fields).filter(([k]) => k.startsWith(base + "tool_calls."))
    .map(([k, v]) => [k.slice(base.length), v])), "tool_calls")) {
    const name = call.name ?? call["tool_call.function.name"] ?? call["function.name"];
    const args = call.arguments ?? call["tool_call.function.arguments"] ?? call["function.arguments"];
    parts.push({ type: "tool_call", id: call.id ?? call["tool_call.id"], name, args: asText(args) });
  }
  for (const content of indexed(Object.fromEntries(Object.entries(fields).filter(([k]) => k.startsWith(base + "contents."))
    .map(([k, v]) => [k.slice(base.length), v])), "contents")) {
    const text = content["message_content.text"];
    if (text !== undefined) parts.push({ type: "text", text: asText(text) });
  }
  const role = get("role") || fallbackRole;
  const toolCallId = get("tool_call_id");
  if (role === "tool" && toolCallId) parts.forEach((p) => { if (p.type === "text") { p.type = "tool_result"; p.id = toolCallId; } });
  return { role, parts, finish: get("finish_reason") };
}

function fromIndexed(attributes) {
  const input = indexed(attributes, "gen_ai.prompt").map((f) => flatMessage(f, "user", ""));
  const output = indexed(attributes, "gen_ai.completion").map((f) => flatMessage(f, "assistant", ""));
  return { input, output };
}

function fromOpenInference(attributes) {
  const input = indexed(attributes, "llm.input_messages").map((f) => flatMessage(f, "user", "message."));
  const output = indexed(attributes, "llm.output_messages").map((f) => flatMessage(f, "assistant", "message."));
  if (!input.length && attributes["input.value"] !== undefined) input.push({ role: "input", parts: partsOf(attributes["input.value"]) });
  if (!output.length && attributes["output.value"] !== undefined) output.push({ role: "output", parts: partsOf(attributes["output.value"]) });
  return { input, output };
}

const EVENT_ROLES = {
  "gen_ai.system.message": "system", "gen_ai.user.message": "user",
  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
};

// Span events (attributes) and log records (body + attributes) of the GenAI conventions.
function fromRecords(records) {
  const input = [];
  const output = [];
  for (const record of records) {
    const name = record.event_name || record.name || (record.attributes || {})["event.name"];
    const attributes = record.attributes || {};
    const body = parseMaybeJson(record.body);
    if (name in EVENT_ROLES) {
      const source = body && typeof body === "object" ? body : { content: body ?? attributes.content ?? attributes["gen_ai.event.content"] };
      const message = genaiMessage({ ...source, role: source.role || EVENT_ROLES[name] }, EVENT_ROLES[name]);
      if (message) input.push(message);
    } else if (name === "gen_ai.choice") {
      const source = body && typeof body === "object" ? body : { message: { content: body ?? attributes.content } };
      const message = genaiMessage(source, "assistant");
      if (message) output.push(message);
    } else if (name === "gen_ai.client.inference.operation.details") {
      const found = fromGenai({ ...attributes, ...(body && typeof body === "object" && !Array.isArray(body) ? body : {}) });
      input.push(...found.input);
      output.push(...found.output);
    } else if (name === "gen_ai.content.prompt") {
      input.push(...partsToMessages(attributes["gen_ai.prompt"], "user"));
    } else if (name === "gen_ai.content.completion") {
      output.push(...partsToMessages(attributes["gen_ai.completion"], "assistant"));
    }
  }
  return { input, output };
}

function partsToMessages(value, role) {
  const parsed = parseMaybeJson(value);
  if (Array.isArray(parsed) && parsed.every((m) => m && typeof m === "object" && "role" in m)) return parsed.map((m) => genaiMessage(m, role));
  return value === undefined ? [] : [{ role, parts: partsOf(value) }];
}

// {input, output, source}: the first convention that yields messages, in the order above.
export function conversation(span) {
  const attributes = span.attributes || {};
  const candidates = [
    ["gen_ai.input/output.messages", () => fromGenai(attributes)],
    ["gen_ai.prompt/completion.{i}", () => fromIndexed(attributes)],
    ["OpenInference llm.*_messages", () => fromOpenInference(attributes)],
    ["span events", () => fromRecords(span.events || [])],
    ["log records", () => fromRecords(span.logs || [])],
  ];
  for (const [source, read] of candidates) {
    const found = read();
    if (found.input.length || found.output.length) return { ...found, source };
  }
  return { input: [], output: [], source: null };
}
