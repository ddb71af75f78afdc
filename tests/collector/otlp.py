"""Export requests for collector tests, in protobuf and in OTLP/JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from collector.receivers.otlp_json import encode_request


def make_request(spans: int = 3, service: str = "checkout", attributes: int = 2, trace_id: bytes | None = None) -> ExportTraceServiceRequest:
    """One resource, one scope, `spans` spans of one trace with a few plain attributes."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name"))
    resource_spans.resource.attributes[0].value.string_value = service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests.collector"
    trace_id = trace_id or os.urandom(16)
    for n in range(spans):
        span = scope_spans.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"step {n}", kind=1 + n % 5)
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + n
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
        for a in range(attributes):
            kv = span.attributes.add(key=f"attr.{a}")
            kv.value.int_value = a
    return request


def to_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON as an SDK writes it: lowerCamelCase, hex ids, enums as integers."""
    return json.loads(encode_request(request))


def span_ids(request: ExportTraceServiceRequest) -> list[bytes]:
    return [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
