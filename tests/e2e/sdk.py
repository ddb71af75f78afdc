"""Traces sent with the real OpenTelemetry Python SDK and its OTLP exporters."""

from __future__ import annotations

import gzip as gzip_module
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.receivers.otlp_json import encode_request


@dataclass
class SentTrace:
    trace_id: str
    spans: dict[str, ReadableSpan]  # by name


def exporter(kind: str, endpoint: str, gzip: bool = False):  # type: ignore[no-untyped-def]
    if kind == "grpc":
        return GrpcExporter(endpoint=endpoint, insecure=True, timeout=10, compression=grpc.Compression.Gzip if gzip else None)
    if kind == "json":
        return JsonHttpExporter(endpoint, gzip)
    return HttpExporter(endpoint=endpoint, timeout=10, compression=HttpCompression.Gzip if gzip else None)


class JsonHttpExporter(SpanExporter):
    """OTLP/JSON over HTTP, as SDKs without protobuf (browsers, some languages) send it:
    the SDK's own encoding of the spans, written with the OTLP/JSON mapping (hex ids)."""

    def __init__(self, endpoint: str, gzip: bool = False) -> None:
        self.endpoint = endpoint
        self.gzip = gzip

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_request(encode_spans(spans))
        headers = {"Content-Type": "application/json"}
        if self.gzip:
            body, headers["Content-Encoding"] = gzip_module.compress(body), "gzip"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return SpanExportResult.SUCCESS if response.status == 200 else SpanExportResult.FAILURE


def send_llm_trace(kind: str, endpoint: str, service: str = "chat-service", gzip: bool = False) -> SentTrace:
    """Root + two children, one of them an LLM call with gen_ai token attributes."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter(kind, endpoint, gzip)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.e2e", "1.0")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"http.request.method": "POST", "http.route": "/chat"}) as root:
        with tracer.start_as_current_span("retrieve documents", attributes={"retrieval.top_k": 5, "retrieval.scores": [0.9, 0.5]}):
            pass
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 345,
        }) as llm:
            llm.set_status(Status(StatusCode.ERROR, "rate limited"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()
    return SentTrace(trace_id, {s.name: s for s in memory.get_finished_spans()})
