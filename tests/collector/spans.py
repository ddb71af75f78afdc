"""Building export requests for processor tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from collector.pipeline import SpanBatch
from common.otlp import attributes, key_value, to_any_value

value = to_any_value  # the tests' short name


def kvs(mapping: dict[str, Any]) -> list[KeyValue]:
    return [key_value(k, v) for k, v in mapping.items()]


def request(*spans: dict[str, Any], service: str = "svc", resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    """One resource, one scope; each span a dict of Span fields plus `attributes`."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs({"service.name": service, **(resource or {})}))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for index, fields in enumerate(spans):
        fields = dict(fields)
        attrs = fields.pop("attributes", {})
        status = fields.pop("status", None)
        span = ss.spans.add(
            trace_id=fields.pop("trace_id", bytes([1]) * 16), span_id=fields.pop("span_id", (index + 1).to_bytes(8, "big")),
            name=fields.pop("name", f"span {index}"), start_time_unix_nano=fields.pop("start", 1_000), end_time_unix_nano=fields.pop("end", 2_000),
            **fields,
        )
        span.attributes.extend(kvs(attrs))
        if status:
            span.status.code, span.status.message = status
    return req


def batch(req: ExportTraceServiceRequest) -> SpanBatch:
    return SpanBatch(req, 0, "test")


def spans_of(req: ExportTraceServiceRequest) -> list[Any]:
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def span_attributes(req: ExportTraceServiceRequest, index: int = 0) -> dict[str, Any]:
    return attributes(spans_of(req)[index].attributes)
