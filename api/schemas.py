"""JSON Schemas of the API's answers (components of /openapi.json)."""

from __future__ import annotations

from typing import Any

from common.otlp import SPAN_KINDS, STATUS_CODES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(properties)
    return schema


STR, INT, NUM, NULL_STR, NULL_INT, NULL_NUM = (
    {"type": "string"}, {"type": "integer"}, {"type": "number"},
    {"type": ["string", "null"]}, {"type": ["integer", "null"]}, {"type": ["number", "null"]},
)
HEX32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
HEX16 = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
TIME = {"type": "string", "description": "RFC 3339, UTC, nanoseconds"}
ATTRS = {"type": "object", "description": "OTLP attributes as JSON (arrays as lists, maps as objects, bytes as base64); see exact_values"}
EXACT = {
    "type": "object",
    "description": "Per attribute map (attributes, resource_attributes, scope_attributes), the keys whose plain JSON value is "
                   "not exact (a double with an integral value, NaN, an infinity, -0.0, bytes, or a list/map holding one) with "
                   "their OTLP/JSON AnyValue, e.g. {\"doubleValue\": \"NaN\"}, {\"bytesValue\": \"AAE=\"}. Empty when all are exact.",
    "additionalProperties": {"type": "object"},
}
TIMES = {
    "start_time": TIME, "end_time": TIME, "start_time_unix_nano": INT, "end_time_unix_nano": INT,
    "duration_ns": INT, "duration_ms": NUM,
}
WINDOW = _obj({"start": TIME, "end": TIME, "start_unix_nano": INT, "end_unix_nano": INT})
ROOT = _obj({"span_id": {"type": ["string", "null"]}, "name": NULL_STR, "service_name": NULL_STR})

SPAN = _obj({
    "trace_id": HEX32, "span_id": HEX16, "parent_span_id": {"type": ["string", "null"]}, "trace_state": NULL_STR,
    "name": STR, "kind": {"type": "string", "description": "one of " + ", ".join(SPAN_KINDS)},
    "status": _obj({"code": {"type": "string", "description": "one of " + ", ".join(STATUS_CODES)}, "message": NULL_STR}),
    "service_name": STR, "flags": INT,
    "scope": _obj({"name": NULL_STR, "version": NULL_STR, "attributes": ATTRS, "schema_url": NULL_STR, "dropped_attributes_count": INT}),
    "resource_schema_url": NULL_STR, "resource_dropped_attributes_count": INT, **TIMES,
    "llm": _obj({
        "provider": NULL_STR, "operation": NULL_STR, "request_model": NULL_STR, "response_model": NULL_STR,
        **{f"{k}_tokens": NULL_INT for k in ("input", "output", "total", "cache_read", "cache_write", "reasoning")},
        **{f"cost_{k}_usd": NULL_NUM for k in ("input", "cache_read", "cache_write", "output", "reasoning", "total", "sdk")},
        "cost_source": {"type": ["string", "null"], "description": "computed (genai-prices), override (PRICING_FILE), sdk, legacy"},
        "cost_price_ref": NULL_STR, "cost_price_date": NULL_STR,
    }),
    "attributes": ATTRS, "resource_attributes": ATTRS,
    "dropped_attributes_count": INT, "dropped_events_count": INT, "dropped_links_count": INT, "exact_values": EXACT,
})
EVENT = _obj({"time": TIME, "time_unix_nano": INT, "name": STR, "attributes": ATTRS, "dropped_attributes_count": INT, "exact_values": EXACT})
LINK = _obj({"trace_id": HEX32, "span_id": HEX16, "trace_state": NULL_STR, "flags": INT, "attributes": ATTRS, "dropped_attributes_count": INT,
             "exact_values": EXACT})
SPAN_DETAIL = {"allOf": [SPAN, _obj({"events": {"type": "array", "items": EVENT}, "links": {"type": "array", "items": LINK}})]}
TREE_SPAN = {"allOf": [SPAN_DETAIL, _obj({"depth": {"type": "integer", "minimum": 0}})]}
TOTALS = {"span_count": INT, "error_count": INT, "services": {"type": "array", "items": STR}, "input_tokens": INT, "output_tokens": INT, "cost_usd": NUM}
TRACE_SUMMARY = _obj({"trace_id": HEX32, "root": ROOT, **TIMES, **TOTALS})
TRACE = _obj({
    "trace_id": HEX32, "summary": _obj({"root": ROOT, **TIMES, **TOTALS}), "span_count": INT,
    "spans": {"type": "array", "items": TREE_SPAN, "description": "depth-first: each parent before its children"},
})
NEXT = {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}
LATENCY = _obj({k: NULL_NUM for k in ("p50", "p95", "p99", "avg", "max")})
USAGE_ROW = _obj({
    "bucket": TIME, "bucket_unix_nano": INT, "service": NULL_STR, "model": NULL_STR, "provider": NULL_STR,
    "request_count": INT, "error_count": INT, "error_rate": NUM, "input_tokens": INT, "output_tokens": INT,
    "cost_usd": NUM, "latency_ms": LATENCY,
    "cost": _obj({k: NUM for k in ("input", "cache_read", "cache_write", "output", "reasoning", "other")}),
    "priced": {"type": "boolean", "description": "models: whether the model's calls with tokens got a cost"},
}, required=False)
UNPRICED = _obj({"model": NULL_STR, "provider": NULL_STR, "request_count": INT, "input_tokens": INT, "output_tokens": INT})
SOURCE = {"type": "string", "enum": ["rollups", "raw", "rollups+raw"]}

COMPONENTS: dict[str, Any] = {
    "Problem": _obj({"type": STR, "title": STR, "status": INT, "detail": STR, "instance": STR, "parameter": STR}, required=False)
    | {"required": ["type", "title", "status", "detail"]},
    "Span": SPAN,
    "SpanDetail": SPAN_DETAIL,
    "Trace": TRACE,
    "TracePage": _obj({"window": WINDOW, "traces": {"type": "array", "items": TRACE_SUMMARY}, "next_cursor": NEXT}),
    "SpanPage": _obj({"window": WINDOW, "spans": {"type": "array", "items": SPAN}, "next_cursor": NEXT}),
    "Usage": _obj({
        "window": WINDOW, "bucket": STR, "group_by": {"type": "array", "items": STR}, "source": SOURCE,
        "latency_sample_fraction": {"type": "number", "minimum": 0, "maximum": 1}, "rows": {"type": "array", "items": USAGE_ROW},
    }),
    "Services": _obj({"window": WINDOW, "source": SOURCE, "services": {"type": "array", "items": USAGE_ROW}}),
    "Models": _obj({"window": WINDOW, "source": SOURCE, "models": {"type": "array", "items": USAGE_ROW},
                    "unpriced": {"type": "array", "items": UNPRICED, "maxItems": 100,
                                 "description": "models whose calls used tokens and got no cost, most used first"}}),
    "Health": _obj({"status": STR, "service": STR}),
    "Ready": _obj({"status": STR, "service": STR, "checks": {"type": "object", "additionalProperties": STR}}),
    "OpenApi": {"type": "object"},
}
