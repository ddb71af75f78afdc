"""The real OpenTelemetry Python SDK's log and metric exporters (gRPC and HTTP), through the
collector and the writer into PostgreSQL, and back out of the API, field by field.

The oracle is the SDK itself: its in-memory exporter keeps the log records it sent, and the
metric values are the ones the test recorded; nothing here reads the tables' code.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry._logs import SeverityNumber

from tests.e2e.conftest import Stack
from tests.e2e.sdk import exporter as span_exporter
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def _exporters(kind: str, stack: Stack) -> tuple[Any, Any]:
    if kind == "grpc":
        return (GrpcLogExporter(endpoint=stack.grpc_target, insecure=True, compression=grpc.Compression.Gzip),
                GrpcMetricExporter(endpoint=stack.grpc_target, insecure=True))
    base = stack.http_url.rsplit("/v1/", 1)[0]
    return (HttpLogExporter(endpoint=f"{base}/v1/logs", compression=Compression.Gzip),
            HttpMetricExporter(endpoint=f"{base}/v1/metrics"))


def _plain(value: Any) -> Any:
    """An SDK attribute or body value as the API shows it: tuples as lists, bytes as base64."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_sdk_logs_and_metrics_round_trip(stack: Stack, kind: str) -> None:
    service = f"logs-metrics-{kind}"
    resource = Resource.create({"service.name": service, "deployment.environment": "test"})
    log_exporter, metric_exporter = _exporters(kind, stack)
    memory = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter(kind, stack.grpc_target if kind == "grpc" else stack.http_url)))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    logger = logger_provider.get_logger("tests.e2e.logs", "2.0")
    tracer = tracer_provider.get_tracer("tests.e2e.logs")
    meter = meter_provider.get_meter("tests.e2e.metrics", "3.0")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}", description="tokens per call")
    calls = meter.create_counter("app.calls", unit="1", description="calls made")
    depth = meter.create_gauge("app.queue.depth", unit="1")
    with tracer.start_as_current_span("handle request") as span:
        logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="request accepted",
                    attributes={"http.route": "/chat", "retry": 2, "ratio": 0.25, "flags": [True, False]})
        logger.emit(severity_number=SeverityNumber.ERROR, severity_text="ERROR", event_name="app.failure",
                    body={"reason": "timeout", "attempts": [1, 2, 3], "nested": {"ok": False}},
                    attributes={"error.type": "TimeoutError"})
        trace_id = format(span.get_span_context().trace_id, "032x")
        span_id = format(span.get_span_context().span_id, "016x")
    for value in (120, 480, 15):
        tokens.record(value, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o-mini"})
    calls.add(3, {"route": "/chat"})
    calls.add(4, {"route": "/chat"})
    depth.set(11, {"queue": "jobs"})
    logger_provider.force_flush()
    tracer_provider.force_flush()
    meter_provider.force_flush()
    for provider in (logger_provider, tracer_provider, meter_provider):
        provider.shutdown()

    # Logs: with their span in the trace answer, exactly as the SDK recorded them.
    trace = stack.trace(trace_id, spans=1)
    (answer_span,) = trace["spans"]
    def span_logs() -> list[dict[str, Any]] | None:
        records = stack.trace(trace_id, spans=1)["spans"][0]["logs"]
        return records if len(records) == 2 else None

    got = wait_for(span_logs, 20, 0.2, "two log records with their span")
    sent = sorted((r.log_record for r in memory.get_finished_logs()), key=lambda r: r.observed_timestamp)
    assert len(sent) == 2
    for record, shown in zip(sent, got):
        # The SDK leaves the time unset when the caller gives none: it takes the observed time.
        assert shown["time_unix_nano"] == (record.timestamp or record.observed_timestamp)
        assert shown["observed_time_unix_nano"] == record.observed_timestamp
        assert shown["trace_id"] == trace_id and shown["span_id"] == span_id
        assert shown["flags"] == int(record.trace_flags)
        assert shown["severity_number"] == record.severity_number.value
        assert shown["severity_text"] == record.severity_text
        assert shown["event_name"] == record.event_name
        assert shown["body"] == _plain(record.body)
        assert shown["attributes"] == _plain(dict(record.attributes))
        assert shown["service_name"] == service
        assert shown["resource_attributes"]["deployment.environment"] == "test"
        assert shown["scope"] == {"name": "tests.e2e.logs", "version": "2.0", "attributes": {}}
    assert answer_span["span_id"] == span_id and trace["logs"] == []

    # Log search finds them by service, severity, event name, text and trace.
    status, page = stack.api_get(f"/api/v1/logs?service={service}&min_severity=error")
    assert status == 200 and [r["event_name"] for r in page["logs"]] == ["app.failure"]
    status, page = stack.api_get(f"/api/v1/logs?trace_id={trace_id}&text=ACCEPTED")
    assert status == 200 and [r["body"] for r in page["logs"]] == ["request accepted"]

    # Metrics: every point stored with its kind and values, and served as series. The SDK
    # exports its cumulative state at force_flush and again at shutdown: the latest point of
    # each metric is compared.
    def stored() -> list[tuple] | None:
        with psycopg.connect(stack.database.admin_dsn) as conn:
            rows = conn.execute(
                """SELECT DISTINCT ON (metric_name) metric_name, metric_type, unit, description, temporality, is_monotonic, value, int_value, count, sum,
                          min, max, explicit_bounds, bucket_counts, attributes, scope_name, scope_version
                   FROM metric_points WHERE service_name = %s ORDER BY metric_name, time_unix_nano DESC""", (service,)).fetchall()
        return rows if len(rows) == 3 else None

    rows = wait_for(stored, 20, 0.2, "three metric points")
    calls_row, depth_row, tokens_row = rows
    assert calls_row == ("app.calls", "sum", "1", "calls made", 2, True, 7.0, 7, None, None, None, None, None, None,
                         {"route": "/chat"}, "tests.e2e.metrics", "3.0")
    assert depth_row[:8] == ("app.queue.depth", "gauge", "1", None, None, None, 11.0, 11)
    assert depth_row[14] == {"queue": "jobs"}
    name, kind_, unit, description, temporality, monotonic, value, int_value, count, total, low, high, bounds, buckets = tokens_row[:14]
    assert (name, kind_, unit, description, temporality, monotonic, value, int_value) == (
        "gen_ai.client.token.usage", "histogram", "{token}", "tokens per call", 2, None, None, None)
    assert (count, total, low, high) == (3, 615.0, 15.0, 480.0)
    assert len(bucket_counts := buckets) == len(bounds) + 1 and sum(bucket_counts) == 3
    assert tokens_row[14] == {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o-mini"}

    status, gauge = stack.api_get(f"/api/v1/metric-series?name=app.queue.depth&aggregation=last&bucket=1d")
    assert status == 200 and gauge["metric"]["type"] == "gauge"
    assert [[p["value"] for p in s["points"]] for s in gauge["series"]] == [[11.0]]
    status, total_calls = stack.api_get(f"/api/v1/metric-series?name=app.calls&aggregation=last&service={service}&attr.route=/chat&bucket=1d")
    assert status == 200 and total_calls["series"][0]["points"][0]["value"] == 7.0
    assert total_calls["metric"] == {"type": "sum", "unit": "1", "description": "calls made", "temporality": "cumulative", "monotonic": True}
