"""Stored spans back into OTLP: a trace's rows as a `TracesData` message.

Spans with equal resources (attributes, schema URL, dropped count) share one ResourceSpans,
and within it spans with equal scopes one ScopeSpans, in the order their first span starts;
spans keep start-time order. Attribute values come from the plain JSON columns, except where
the writer stored the exact OTLP value beside them (`exact_values`: doubles with integral
values, NaN and infinities, bytes), which is used instead. docs/EXPLORER.md lists what is
normalized on the way (attribute order, duplicate keys, NUL characters).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, TracesData

Row = Mapping[str, Any]


def any_value(plain: Any, exact: Mapping[str, Any] | None = None) -> AnyValue:
    """The AnyValue of an attribute: its exact OTLP/JSON form when stored, else its plain JSON."""
    value = AnyValue()
    if exact is not None:
        json_format.ParseDict(exact, value)
        return value
    if isinstance(plain, bool):
        value.bool_value = plain
    elif isinstance(plain, int):
        value.int_value = plain
    elif isinstance(plain, float):
        value.double_value = plain
    elif isinstance(plain, str):
        value.string_value = plain
    elif isinstance(plain, list):
        value.array_value.values.extend(any_value(v) for v in plain)
    elif isinstance(plain, dict):
        value.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in plain.items())
    return value  # None: an empty AnyValue, as it was sent


def key_values(plain: Mapping[str, Any] | None, exact: Mapping[str, Any] | None) -> list[KeyValue]:
    exact = exact or {}
    return [KeyValue(key=k, value=any_value(v, exact.get(k))) for k, v in (plain or {}).items()]


def _exact(row: Row, name: str) -> Mapping[str, Any] | None:
    values = row.get("exact_values")
    return values.get(name) if values else None


def _canonical(*parts: Any) -> bytes:
    return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def traces_data(rows: list[Row], events: list[Row], links: list[Row]) -> TracesData:
    """One trace's span, event and link rows (events and links ordered by span and index)."""
    by_span_events: dict[tuple[bytes, Any], list[Row]] = {}
    for event in events:
        by_span_events.setdefault((bytes(event["span_id"]), _start_key(event)), []).append(event)
    by_span_links: dict[tuple[bytes, Any], list[Row]] = {}
    for link in links:
        by_span_links.setdefault((bytes(link["span_id"]), _start_key(link)), []).append(link)

    data = TracesData()
    resources: dict[bytes, ResourceSpans] = {}
    scopes: dict[tuple[bytes, bytes], ScopeSpans] = {}
    for row in rows:
        resource_key = _canonical(row["resource_attributes"], _exact(row, "resource_attributes"),
                                  row.get("resource_schema_url"), row.get("resource_dropped_attributes_count"))
        resource_spans = resources.get(resource_key)
        if resource_spans is None:
            resource_spans = resources[resource_key] = data.resource_spans.add()
            resource_spans.resource.attributes.extend(key_values(row["resource_attributes"], _exact(row, "resource_attributes")))
            resource_spans.resource.dropped_attributes_count = row.get("resource_dropped_attributes_count") or 0
            resource_spans.schema_url = row.get("resource_schema_url") or ""
        scope_key = (resource_key, _canonical(row["scope_name"], row["scope_version"], row.get("scope_attributes"),
                                              _exact(row, "scope_attributes"), row.get("scope_schema_url"),
                                              row.get("scope_dropped_attributes_count")))
        scope_spans = scopes.get(scope_key)
        if scope_spans is None:
            scope_spans = scopes[scope_key] = resource_spans.scope_spans.add()
            scope = scope_spans.scope
            scope.name = row["scope_name"] or ""
            scope.version = row["scope_version"] or ""
            scope.attributes.extend(key_values(row.get("scope_attributes"), _exact(row, "scope_attributes")))
            scope.dropped_attributes_count = row.get("scope_dropped_attributes_count") or 0
            scope_spans.schema_url = row.get("scope_schema_url") or ""
        key = (bytes(row["span_id"]), row["start_time"])
        scope_spans.spans.append(span(row, by_span_events.get(key, []), by_span_links.get(key, [])))
    return data


def _start_key(row: Row) -> Any:
    return row["span_start_time"]  # the span's start as a timestamptz: events and links key on it


def span(row: Row, events: list[Row], links: list[Row]) -> Span:
    out = Span(
        trace_id=bytes(row["trace_id"]), span_id=bytes(row["span_id"]), parent_span_id=bytes(row["parent_span_id"] or b""),
        trace_state=row["trace_state"] or "", flags=row.get("flags") or 0, name=row["name"], kind=row["kind"],
        start_time_unix_nano=row["start_time_unix_nano"], end_time_unix_nano=row["end_time_unix_nano"],
        dropped_attributes_count=row["dropped_attributes_count"] or 0, dropped_events_count=row["dropped_events_count"] or 0,
        dropped_links_count=row["dropped_links_count"] or 0,
    )
    out.attributes.extend(key_values(row["attributes"], _exact(row, "attributes")))
    if row["status_code"] or row["status_message"]:  # an unset status stays absent, as most SDKs send it
        out.status.code = row["status_code"]
        out.status.message = row["status_message"] or ""
    for event in events:
        added = out.events.add(time_unix_nano=event["time_unix_nano"], name=event["name"],
                               dropped_attributes_count=event["dropped_attributes_count"] or 0)
        added.attributes.extend(key_values(event["attributes"], _exact(event, "attributes")))
    for link in links:
        added_link = out.links.add(trace_id=bytes(link["linked_trace_id"] or b""), span_id=bytes(link["linked_span_id"] or b""),
                                   trace_state=link["trace_state"] or "", flags=link["flags"] or 0,
                                   dropped_attributes_count=link["dropped_attributes_count"] or 0)
        added_link.attributes.extend(key_values(link["attributes"], _exact(link, "attributes")))
    return out


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def to_json(data: TracesData) -> dict[str, Any]:
    """OTLP/JSON as the specification writes it: ids in hex (the protobuf JSON mapping's
    base64 is what OTLP/JSON replaces), enums as integers, 64-bit integers as strings."""
    doc = json_format.MessageToDict(data, use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for one in scope_spans.get("spans", []):
                _hex_ids(one)
                for link in one.get("links", []):
                    _hex_ids(link)
    return doc


def _hex_ids(doc: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        if name in doc:
            doc[name] = base64.b64decode(doc[name]).hex()
