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
LOG_RECORD = _obj({
    "time": TIME, "time_unix_nano": INT, "observed_time": TIME, "observed_time_unix_nano": INT,
    "trace_id": {"type": ["string", "null"]}, "span_id": {"type": ["string", "null"]}, "flags": INT,
    "severity_number": INT, "severity_text": NULL_STR, "service_name": STR, "event_name": NULL_STR,
    "body": {"description": "the AnyValue as JSON: a string, number, boolean, array, object or null"},
    "attributes": ATTRS, "resource_attributes": ATTRS,
    "scope": _obj({"name": NULL_STR, "version": NULL_STR, "attributes": ATTRS}),
    "dropped_attributes_count": INT, "record_id": {"type": "string", "description": "32 hex characters: the record's key"},
})
PART = {"type": "object", "description": "{type: text, content} | {type: tool_call, id, name, arguments} | {type: tool_call_response, id, response} | as sent"}
MESSAGE = _obj({
    "role": NULL_STR, "parts": {"type": "array", "items": PART},
    "direction": {"type": "string", "enum": ["system", "input", "output"]},
    "source": {"type": "string", "enum": ["span", "event", "log"], "description": "span attributes, a span event, or a log record"},
    "finish_reason": NULL_STR, "index": NULL_INT,
}, required=False) | {"required": ["role", "parts", "direction", "source"]}
SPAN_DETAIL = {"allOf": [SPAN, _obj({
    "events": {"type": "array", "items": EVENT}, "links": {"type": "array", "items": LINK},
    "logs": {"type": "array", "items": LOG_RECORD, "description": "log records naming this span"},
    "messages": {"type": "array", "items": MESSAGE, "description": "GenAI content (gen_ai.* attributes, events and log records) as messages"},
})]}
TREE_SPAN = {"allOf": [SPAN_DETAIL, _obj({"depth": {"type": "integer", "minimum": 0}})]}
TOTALS = {"span_count": INT, "error_count": INT, "services": {"type": "array", "items": STR}, "input_tokens": INT, "output_tokens": INT, "cost_usd": NUM}
TRACE_SUMMARY = _obj({"trace_id": HEX32, "root": ROOT, **TIMES, **TOTALS})
TRACE = _obj({
    "trace_id": HEX32, "summary": _obj({"root": ROOT, **TIMES, **TOTALS}), "span_count": INT,
    "spans": {"type": "array", "items": TREE_SPAN, "description": "depth-first: each parent before its children"},
    "logs": {"type": "array", "items": LOG_RECORD, "description": "log records of the trace that name none of its spans"},
})
SERIES_POINT = _obj({"bucket": TIME, "bucket_unix_nano": INT, "value": NULL_NUM})
METRIC_SERIES = _obj({
    "window": WINDOW, "name": STR, "bucket": STR, "aggregation": STR,
    "metric": {"type": ["object", "null"], "properties": {
        "type": {"type": "string", "enum": ["gauge", "sum", "histogram", "exponential_histogram", "summary"]},
        "unit": NULL_STR, "description": NULL_STR, "temporality": NULL_STR, "monotonic": {"type": ["boolean", "null"]}}},
    "series": {"type": "array", "items": _obj({
        "attributes": ATTRS, "service_name": STR, "resource_attributes": ATTRS,
        "points": {"type": "array", "items": SERIES_POINT}})},
})
NEXT = {"type": ["string", "null"], "description": "pass as cursor for the next page; null on the last"}
LATENCY = _obj({k: NULL_NUM for k in ("p50", "p95", "p99", "avg", "max")})
USAGE_ROW = _obj({
    "bucket": TIME, "bucket_unix_nano": INT, "service": NULL_STR, "model": NULL_STR, "provider": NULL_STR,
    "request_count": INT, "error_count": INT, "error_rate": NUM, "input_tokens": INT, "output_tokens": INT,
    "cost_usd": NUM, "latency_ms": LATENCY,
}, required=False)
SOURCE = {"type": "string", "enum": ["rollups", "raw", "rollups+raw"]}
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
    "LogPage": _obj({"window": WINDOW, "logs": {"type": "array", "items": LOG_RECORD}, "next_cursor": NEXT}),
    "MetricSeries": METRIC_SERIES,
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
