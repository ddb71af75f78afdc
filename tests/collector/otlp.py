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


def make_logs_request(records: int = 3, service: str = "checkout", trace_id: bytes | None = None) -> "ExportLogsServiceRequest":
    """One resource, one scope, `records` log records of one trace: a string body, a
    structured body, severities, an event name."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: PLC0415

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = service
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "tests.collector.logs"
    trace_id = trace_id or os.urandom(16)
    for n in range(records):
        record = scope_logs.log_records.add(trace_id=trace_id, span_id=os.urandom(8), severity_number=9 + n % 12,
                                            severity_text="INFO", event_name=f"event.{n}")
        record.time_unix_nano = 1_700_000_000_000_000_000 + n
        record.observed_time_unix_nano = record.time_unix_nano + 5
        if n % 2:
            record.body.kvlist_value.values.add(key="content").value.string_value = f"structured {n}"
        else:
            record.body.string_value = f"line {n}"
        record.attributes.add(key="attr.n").value.int_value = n
    return request


def make_metrics_request(points: int = 2, service: str = "checkout") -> "ExportMetricsServiceRequest":
    """A gauge, a monotonic cumulative sum and a histogram, `points` points each."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest  # noqa: PLC0415

    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name").value.string_value = service
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = "tests.collector.metrics"
    gauge = scope_metrics.metrics.add(name="queue.depth", unit="1", description="items waiting")
    total = scope_metrics.metrics.add(name="requests", unit="1")
    total.sum.is_monotonic, total.sum.aggregation_temporality = True, 2
    histogram = scope_metrics.metrics.add(name="latency", unit="ms")
    histogram.histogram.aggregation_temporality = 2
    for n in range(points):
        at = 1_700_000_000_000_000_000 + n * 1_000_000_000
        point = gauge.gauge.data_points.add(time_unix_nano=at, as_double=1.5 * n)
        point.attributes.add(key="queue").value.string_value = "jobs"
        total.sum.data_points.add(start_time_unix_nano=at - 10, time_unix_nano=at, as_int=10 * n)
        h = histogram.histogram.data_points.add(start_time_unix_nano=at - 10, time_unix_nano=at, count=6, sum=60.0,
                                                min=1.0, max=30.0, explicit_bounds=[5.0, 10.0], bucket_counts=[1, 2, 3])
        h.exemplars.add(time_unix_nano=at, as_double=30.0, trace_id=os.urandom(16), span_id=os.urandom(8))
    return request
