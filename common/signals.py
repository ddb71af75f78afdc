"""The three OTLP signals, as every service sees them: request and answer types, where each
arrives (HTTP path, gRPC service), what it is counted in, and its streams.

Traces, logs and metrics take the same road (receiver → stages → stream → writer → tables)
with the same guarantees; what differs between them is written here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

# The data fields of a Metric (its oneof), each holding `data_points`.
METRIC_DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def count_spans(request: Any) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def count_log_records(request: Any) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def metric_points(metric: Any) -> Any:
    """The repeated data points of a Metric, whichever kind it is (an empty tuple for none)."""
    kind = metric.WhichOneof("data")
    return getattr(metric, kind).data_points if kind is not None else ()


def count_data_points(request: Any) -> int:
    return sum(len(metric_points(m)) for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)


@dataclass(frozen=True)
class Signal:
    name: str  # traces, logs, metrics: the OTLP name, used in paths and metric labels
    item: str  # what one unit is called in messages: span, log record, data point
    stream: str  # the key segment of its streams: otlp:{stream}:{shard}
    count_field: str  # the stream entry field holding the entry's item count
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str  # the partial-success field naming refused items
    http_path: str
    grpc_service: str
    count: Callable[[Any], int]

    def response(self, rejected: int = 0, message: str = "") -> Message:
        """The OTLP answer: empty, or a partial success naming the rejected items."""
        response = self.response_type()
        if rejected:
            setattr(response.partial_success, self.rejected_field, rejected)
            response.partial_success.error_message = message
        return response

    def parse(self, body: bytes | bytearray) -> Any:
        """A serialized request of this signal; raises google.protobuf's DecodeError."""
        request = self.request_type()
        request.ParseFromString(body)
        return request


TRACES = Signal(
    "traces", "span", "spans", "spans", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans",
    "/v1/traces", "opentelemetry.proto.collector.trace.v1.TraceService", count_spans,
)
LOGS = Signal(
    "logs", "log record", "logs", "records", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records",
    "/v1/logs", "opentelemetry.proto.collector.logs.v1.LogsService", count_log_records,
)
METRICS = Signal(
    "metrics", "data point", "metrics", "points", ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    "rejected_data_points", "/v1/metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService", count_data_points,
)
SIGNALS = (TRACES, LOGS, METRICS)
BY_NAME = {signal.name: signal for signal in SIGNALS}
BY_STREAM = {signal.stream: signal for signal in SIGNALS}
