// Attribute values as the API gives them: plain JSON, plus, where plain JSON cannot tell the
// value exactly (a double with an integral value, NaN or an infinity, bytes), its OTLP/JSON
// AnyValue in `exact_values` (see docs/API.md, "Attribute values").

import { h } from "./dom.js";

function plainType(value) {
  if (value === null || value === undefined) return "empty";
  if (typeof value === "string") return "string";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "double";
  if (Array.isArray(value)) return "array";
  return "map";
}

function exactText(exact) {
  if ("doubleValue" in exact) return [String(exact.doubleValue).replace(/^(-?\d+)$/, "$1.0"), "double"];
  if ("bytesValue" in exact) return [`base64:${exact.bytesValue}`, "bytes"];
  if ("intValue" in exact) return [String(exact.intValue), "int"];
  if ("arrayValue" in exact) return [JSON.stringify(exact.arrayValue.values || [], null, 1), "array"];
  if ("kvlistValue" in exact) return [JSON.stringify(exact.kvlistValue.values || [], null, 1), "map"];
  return [JSON.stringify(exact), "value"];
}

export function valueCell(plain, exact) {
  let text;
  let type;
  if (exact) [text, type] = exactText(exact);
  else {
    type = plainType(plain);
    text = typeof plain === "string" ? plain : JSON.stringify(plain, null, 1);
  }
  return h("td", { dataset: { type } }, text, h("span", { class: "type" }, type));
}
