"""An ExportTraceServiceRequest body straight into COPY rows for spans, events and links.

This is the writer's hot path: one protobuf parse (upb, in C), one pass over the spans,
attributes serialised once with orjson. Timestamps stay unix nanoseconds here; the
database turns them into timestamptz in the INSERT … SELECT from the staging tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common import genai
from common.otlp import attributes

UNKNOWN_SERVICE = "unknown_service"

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "flags", "name", "kind",
    "status_code", "status_message", "service_name", "scope_name", "scope_version",
    "start_time_unix_nano", "end_time_unix_nano",
    "llm_provider", "llm_operation", "llm_request_model", "llm_response_model",
    "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_input_usd", "cost_output_usd",
    "cost_total_usd", "resource_attributes", "attributes", "dropped_attributes_count",
    "dropped_events_count", "dropped_links_count",
)
SPAN_TYPES = (
    "bytea", "bytea", "bytea", "text", "int4", "text", "int2",
    "int2", "text", "text", "text", "text",
    "int8", "int8",
    "text", "text", "text", "text",
    "int8", "int8", "int8", "int8",
    "int8", "int8", "numeric", "numeric",
    "numeric", "text", "text", "int4",
    "int4", "int4",
)
EVENT_COLUMNS = ("trace_id", "span_id", "span_start_unix_nano", "event_index", "time_unix_nano", "name",
                 "attributes", "dropped_attributes_count")
EVENT_TYPES = ("bytea", "bytea", "int8", "int4", "int8", "text", "text", "int4")
LINK_COLUMNS = ("trace_id", "span_id", "span_start_unix_nano", "link_index", "linked_trace_id", "linked_span_id",
                "trace_state", "flags", "attributes", "dropped_attributes_count")
LINK_TYPES = ("bytea", "bytea", "int8", "int4", "bytea", "bytea", "text", "int4", "text", "int4")


class UndecodableEntry(ValueError):
    """The body is not an ExportTraceServiceRequest; the entry belongs in the dead letters."""


@dataclass
class Rows:
    spans: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    min_start_ns: int | None = None
    max_start_ns: int | None = None

    def extend(self, other: "Rows") -> None:
        self.spans += other.spans
        self.events += other.events
        self.links += other.links
        for ns in (other.min_start_ns, other.max_start_ns):
            if ns is None:
                continue
            self.min_start_ns = ns if self.min_start_ns is None else min(self.min_start_ns, ns)
            self.max_start_ns = ns if self.max_start_ns is None else max(self.max_start_ns, ns)


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _text(value: str) -> str | None:
    # PostgreSQL text cannot hold NUL; it would fail the whole batch.
    if not value:
        return None
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _strip_nul(doc: str) -> str:
    return doc.replace("\\u0000", "\\ufffd") if "\\u0000" in doc else doc


def decode(body: bytes) -> Rows:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableEntry(f"body is not an ExportTraceServiceRequest: {exc}") from None
    return request_rows(request)


def request_rows(request: ExportTraceServiceRequest) -> Rows:
    rows = Rows()
    spans_out, events_out, links_out = rows.spans, rows.events, rows.links
    min_ns: int | None = None
    max_ns: int | None = None
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = str(service) if service not in (None, "") else UNKNOWN_SERVICE
        resource_json = _strip_nul(_json(resource))
        for scope_spans in resource_spans.scope_spans:
            scope_name = _text(scope_spans.scope.name)
            scope_version = _text(scope_spans.scope.version)
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                if len(trace_id) != 16 or len(span_id) != 8:
                    raise UndecodableEntry(
                        f"span {span.name!r} has a {len(trace_id)}-byte trace id and a {len(span_id)}-byte span id"
                    )
                start = span.start_time_unix_nano
                end = max(span.end_time_unix_nano, start)
                if min_ns is None or start < min_ns:
                    min_ns = start
                if max_ns is None or start > max_ns:
                    max_ns = start
                attrs = attributes(span.attributes)
                llm = genai.extract(attrs)
                spans_out.append((
                    trace_id, span_id, span.parent_span_id or None, _text(span.trace_state), span.flags,
                    _text(span.name) or "", span.kind, span.status.code, _text(span.status.message),
                    service_name, scope_name, scope_version, start, end,
                    llm.provider, llm.operation, llm.request_model, llm.response_model,
                    llm.input_tokens, llm.output_tokens, llm.total_tokens, llm.cache_read_tokens,
                    llm.cache_write_tokens, llm.reasoning_tokens, llm.cost_input_usd, llm.cost_output_usd,
                    llm.cost_total_usd, resource_json, _strip_nul(_json(attrs)), span.dropped_attributes_count,
                    span.dropped_events_count, span.dropped_links_count,
                ))
                for index, event in enumerate(span.events):
                    events_out.append((
                        trace_id, span_id, start, index, event.time_unix_nano, _text(event.name) or "",
                        _strip_nul(_json(attributes(event.attributes))), event.dropped_attributes_count,
                    ))
                for index, link in enumerate(span.links):
                    links_out.append((
                        trace_id, span_id, start, index, link.trace_id, link.span_id, _text(link.trace_state),
                        link.flags, _strip_nul(_json(attributes(link.attributes))), link.dropped_attributes_count,
                    ))
    rows.min_start_ns, rows.max_start_ns = min_ns, max_ns
    return rows
