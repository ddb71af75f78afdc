"""An ExportTraceServiceRequest body straight into COPY rows for spans, events and links.

This is the writer's hot path: one protobuf parse (upb, in C), one pass over the spans,
attributes serialised once with orjson, the GenAI cross-walk only for spans that carry one
of its keys. Rows come out in the column order of the tables themselves (exact unix
nanoseconds and, beside them, the timestamptz as PostgreSQL's binary form holds it: an int
of microseconds since 2000-01-01 UTC, which storage.writer's COPY sends as is; building a
datetime per timestamp cost a quarter of decode time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isfinite
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from common import genai
from common.otlp import any_value, exact_json

UNKNOWN_SERVICE = "unknown_service"

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "flags", "name", "kind",
    "status_code", "status_message", "service_name", "scope_name", "scope_version",
    "start_time_unix_nano", "end_time_unix_nano",
    "llm_provider", "llm_operation", "llm_request_model", "llm_response_model",
    "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_input_usd", "cost_output_usd",
    "cost_total_usd", "resource_attributes", "attributes", "dropped_attributes_count",
    "dropped_events_count", "dropped_links_count", "start_time", "end_time", "duration_ns",
    # migration 0006: what OTLP carries beside span attributes, and exact_values (below)
    "resource_schema_url", "resource_dropped_attributes_count", "scope_attributes", "scope_schema_url",
    "scope_dropped_attributes_count", "exact_values",
)
SPAN_TYPES = (
    "bytea", "bytea", "bytea", "text", "int8", "text", "int4",
    "int4", "text", "text", "text", "text",
    "int8", "int8",
    "text", "text", "text", "text",
    "int8", "int8", "int8", "int8",
    "int8", "int8", "numeric", "numeric",
    "numeric", "jsonb", "jsonb", "int8",
    "int8", "int8", "timestamptz", "timestamptz", "int8",
    "text", "int8", "jsonb", "text", "int8", "jsonb",
)
EVENT_COLUMNS = ("trace_id", "span_id", "span_start_time", "event_index", "time", "time_unix_nano", "name",
                 "attributes", "dropped_attributes_count", "exact_values")
EVENT_TYPES = ("bytea", "bytea", "timestamptz", "int4", "timestamptz", "int8", "text", "jsonb", "int8", "jsonb")
LINK_COLUMNS = ("trace_id", "span_id", "span_start_time", "link_index", "linked_trace_id", "linked_span_id",
                "trace_state", "flags", "attributes", "dropped_attributes_count", "exact_values")
LINK_TYPES = ("bytea", "bytea", "timestamptz", "int4", "bytea", "bytea", "text", "int8", "jsonb", "int8", "jsonb")
_START_NS = SPAN_COLUMNS.index("start_time_unix_nano")
MAX_UNIX_NANO = 2**63 - 1  # OTLP times are uint64; the exact nanoseconds are kept in a bigint
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in unix microseconds: PostgreSQL's time zero
_NO_LLM = genai.NOT_LLM
_MAYBE_INEXACT = frozenset(("double_value", "bytes_value", "array_value", "kvlist_value"))


class UndecodableEntry(ValueError):
    """The body is not an ExportTraceServiceRequest; the entry belongs in the dead letters."""


@dataclass
class Rows:
    spans: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    min_start_ns: int | None = None
    max_start_ns: int | None = None

    def add(self, unit: "SpanRows") -> None:
        """One span's rows (in the order they came)."""
        self.spans.append(unit.span)
        if unit.events:
            self.events += unit.events
        if unit.links:
            self.links += unit.links
        ns = unit.span[_START_NS]
        if self.min_start_ns is None or ns < self.min_start_ns:
            self.min_start_ns = ns
        if self.max_start_ns is None or ns > self.max_start_ns:
            self.max_start_ns = ns

    @classmethod
    def of(cls, units: Iterable["SpanRows"]) -> "Rows":
        rows = cls()
        for unit in units:
            rows.add(unit)
        return rows

    def extend(self, other: "Rows") -> None:
        self.spans += other.spans
        self.events += other.events
        self.links += other.links
        for ns in (other.min_start_ns, other.max_start_ns):
            if ns is None:
                continue
            self.min_start_ns = ns if self.min_start_ns is None else min(self.min_start_ns, ns)
            self.max_start_ns = ns if self.max_start_ns is None else max(self.max_start_ns, ns)


def _json(value: dict[str, Any]) -> bytes:
    """A JSON document as UTF-8 bytes, which is what COPY sends: no str round trip."""
    doc = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    # jsonb cannot hold \u0000; it would fail the whole batch.
    return doc.replace(b"\\u0000", b"\\ufffd") if b"\\u0000" in doc else doc


def _text(value: str) -> str | None:
    # PostgreSQL text cannot hold NUL; it would fail the whole batch.
    if not value:
        return None
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def pg_micros(ns: int) -> int:
    """Unix nanoseconds as a binary timestamptz: microseconds since 2000-01-01, truncated as
    PostgreSQL would keep them."""
    return ns // 1000 - PG_EPOCH_US



def _attributes(kvs: Iterable[KeyValue], exact: dict[str, Any] | None = None) -> dict[str, Any]:
    """common.otlp.attributes, with the two common value kinds read straight from their fields.

    A non-empty string or a non-zero int answers without WhichOneof; only an empty string, a
    zero or another kind asks which field is set (any_value). A third less than asking for
    every value, on the attributes that are most of decode time. Values plain JSON cannot
    hold exactly (common.otlp.exact_json) also go into `exact`, by key; only that slower
    path can meet one.
    """
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        plain = value.string_value or value.int_value
        if not plain:
            which = value.WhichOneof("value")
            double = value.double_value
            if which == "double_value" and isfinite(double) and not double.is_integer():
                plain = double  # the common double (a cost, a score): exact as JSON, one check
            else:
                plain = any_value(value)
                if exact is not None and which in _MAYBE_INEXACT:
                    typed = exact_json(value)
                    if typed is not None:
                        exact[kv.key] = typed
        out[kv.key] = plain
    return out


def _exact_values(**maps: dict[str, Any]) -> bytes | None:
    kept = {name: values for name, values in maps.items() if values}
    return _json(kept) if kept else None


def parse_request(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableEntry(f"body is not an ExportTraceServiceRequest: {exc}") from None
    return request


def decode(body: bytes) -> Rows:
    """All rows of an entry; UndecodableEntry if the body or any span cannot be decoded."""
    return request_rows(parse_request(body))


def request_rows(request: ExportTraceServiceRequest) -> Rows:
    rows = Rows()
    for unit in span_units(request):
        if isinstance(unit, BadSpan):
            raise UndecodableEntry(unit.reason)
        rows.add(unit)
    return rows


Where = tuple[int, int, int]  # (resource_spans, scope_spans, span) index of a span in its request


def span_request(body: bytes, where: Where) -> bytes:
    """A request holding only the span at `where` of the request in `body`, with its
    resource and scope: the body of that span's dead letter. Parsed again from the entry's
    body (rarely needed), so that batches do not keep every parsed request alive."""
    source = parse_request(body)
    r, s, i = where
    resource_spans, scope_spans = source.resource_spans[r], source.resource_spans[r].scope_spans[s]
    request = ExportTraceServiceRequest()
    target_rs = request.resource_spans.add(schema_url=resource_spans.schema_url)
    target_rs.resource.CopyFrom(resource_spans.resource)
    target_ss = target_rs.scope_spans.add(schema_url=scope_spans.schema_url)
    target_ss.scope.CopyFrom(scope_spans.scope)
    target_ss.spans.append(scope_spans.spans[i])
    return request.SerializeToString()


@dataclass(slots=True)
class SpanRows:
    """One span's rows (the span, its events and links) and about how many bytes they hold."""

    span: tuple[Any, ...]
    events: list[tuple[Any, ...]]
    links: list[tuple[Any, ...]]
    size: int
    where: Where


@dataclass(frozen=True, slots=True)
class BadSpan:
    """A span that cannot be made into rows; the reason names what is wrong, not the content."""

    reason: str
    where: Where


ROW_OVERHEAD = 400  # bytes of a span row beyond its attribute documents: tuple, ids, ints


def span_units(request: ExportTraceServiceRequest) -> Iterator[SpanRows | BadSpan]:
    """The request's spans one at a time, so that a caller can take them in bounded parts
    and a span that cannot be decoded is set apart without its neighbours."""
    for r, resource_spans in enumerate(request.resource_spans):
        try:
            resource_exact: dict[str, Any] = {}
            resource = _attributes(resource_spans.resource.attributes, resource_exact)
            service = resource.get("service.name")
            service_name = str(service) if service not in (None, "") else UNKNOWN_SERVICE
            outer = Outer(service_name, _json(resource), _text(resource_spans.schema_url),
                          resource_spans.resource.dropped_attributes_count, resource_exact)
        except Exception as exc:  # content of this resource: all its spans are set apart
            reason = f"resource attributes cannot be decoded ({type(exc).__name__})"
            for s, scope_spans in enumerate(resource_spans.scope_spans):
                for i in range(len(scope_spans.spans)):
                    yield BadSpan(reason, (r, s, i))
            continue
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            try:
                scope = outer.scope(scope_spans)
            except Exception as exc:  # content of this scope: its spans are set apart
                reason = f"scope attributes cannot be decoded ({type(exc).__name__})"
                for i in range(len(scope_spans.spans)):
                    yield BadSpan(reason, (r, s, i))
                continue
            for i, span in enumerate(scope_spans.spans):
                try:
                    yield _span_rows(span, scope, (r, s, i))
                except UndecodableEntry as exc:
                    yield BadSpan(str(exc), (r, s, i))
                except Exception as exc:  # anything else raised by one span's content is that span's
                    yield BadSpan(f"span cannot be decoded ({type(exc).__name__})", (r, s, i))


@dataclass(frozen=True, slots=True)
class Outer:
    """What a resource gives each of its spans' rows."""

    service_name: str
    resource_json: bytes
    schema_url: str | None
    dropped: int
    exact: dict[str, Any]

    def scope(self, scope_spans: Any) -> "Scope":
        scope = scope_spans.scope
        scope_exact: dict[str, Any] = {}
        scope_json = _json(_attributes(scope.attributes, scope_exact)) if scope.attributes else None
        return Scope(self, _text(scope.name), _text(scope.version), scope_json, _text(scope_spans.schema_url),
                     scope.dropped_attributes_count, scope_exact,
                     _exact_values(resource_attributes=self.exact, scope_attributes=scope_exact))


@dataclass(frozen=True, slots=True)
class Scope:
    """What a scope (and its resource) gives each of its spans' rows."""

    outer: Outer
    name: str | None
    version: str | None
    attributes_json: bytes | None
    schema_url: str | None
    dropped: int
    exact: dict[str, Any]
    outer_exact: bytes | None  # the exact values of the resource and scope, shared by spans that add none


def _span_rows(span: Span, scope: Scope, where: Where) -> SpanRows:
    trace_id = span.trace_id
    span_id = span.span_id
    if len(trace_id) != 16 or len(span_id) != 8:
        raise UndecodableEntry(f"span has a {len(trace_id)}-byte trace id and a {len(span_id)}-byte span id")
    start = span.start_time_unix_nano
    end = max(span.end_time_unix_nano, start)
    if end > MAX_UNIX_NANO:
        raise UndecodableEntry(f"span has a time past year 2262 ({end} ns), beyond a bigint")
    start_time = pg_micros(start)
    span_exact: dict[str, Any] = {}
    attrs = _attributes(span.attributes, span_exact)
    outer = scope.outer
    exact = scope.outer_exact if not span_exact else _exact_values(
        attributes=span_exact, resource_attributes=outer.exact, scope_attributes=scope.exact)
    # Most spans are not LLM calls: skip the cross-walk's dozens of lookups for them.
    llm = _NO_LLM if genai.ALL_KEYS.isdisjoint(attrs) else genai.extract(attrs)
    status = span.status
    attributes_json = _json(attrs)
    parent = span.parent_span_id
    row = (
        trace_id, span_id, parent if parent and parent != ZERO_SPAN else None, _text(span.trace_state), span.flags,
        _text(span.name) or "", span.kind, status.code, _text(status.message),
        outer.service_name, scope.name, scope.version, start, end,
        llm.provider, llm.operation, llm.request_model, llm.response_model,
        llm.input_tokens, llm.output_tokens, llm.total_tokens, llm.cache_read_tokens,
        llm.cache_write_tokens, llm.reasoning_tokens, llm.cost_input_usd, llm.cost_output_usd,
        llm.cost_total_usd, outer.resource_json, attributes_json, span.dropped_attributes_count,
        span.dropped_events_count, span.dropped_links_count, start_time, pg_micros(end), end - start,
        outer.schema_url, outer.dropped, scope.attributes_json, scope.schema_url, scope.dropped, exact,
    )
    size = ROW_OVERHEAD + len(attributes_json)
    events: list[tuple[Any, ...]] = _NONE
    links: list[tuple[Any, ...]] = _NONE
    if span.events:
        events = []
        size += _event_rows(events, trace_id, span_id, start_time, span.events)
    if span.links:
        links = []
        size += _link_rows(links, trace_id, span_id, start_time, span.links)
    return SpanRows(row, events, links, size, where)


_NONE: list[tuple[Any, ...]] = []  # shared and never appended to: most spans have no events or links
ZERO_SPAN = bytes(8)


def _event_rows(out: list[tuple[Any, ...]], trace_id: bytes, span_id: bytes, start_time: int,
                events: Iterable[Span.Event]) -> int:
    size = 0
    for index, event in enumerate(events):
        if event.time_unix_nano > MAX_UNIX_NANO:
            raise UndecodableEntry(f"event {index} of span {span_id.hex()} has a time past year 2262, beyond a bigint")
        exact: dict[str, Any] = {}
        attributes = _json(_attributes(event.attributes, exact))
        size += ROW_OVERHEAD + len(attributes) + len(event.name)
        out.append((
            trace_id, span_id, start_time, index, pg_micros(event.time_unix_nano), event.time_unix_nano,
            _text(event.name) or "", attributes, event.dropped_attributes_count, _exact_values(attributes=exact),
        ))
    return size


def _link_rows(out: list[tuple[Any, ...]], trace_id: bytes, span_id: bytes, start_time: int,
               links: Iterable[Span.Link]) -> int:
    size = 0
    for index, link in enumerate(links):
        exact: dict[str, Any] = {}
        attributes = _json(_attributes(link.attributes, exact))
        size += ROW_OVERHEAD + len(attributes)
        out.append((
            trace_id, span_id, start_time, index, link.trace_id, link.span_id, _text(link.trace_state),
            link.flags, attributes, link.dropped_attributes_count, _exact_values(attributes=exact),
        ))
    return size
