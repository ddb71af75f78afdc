"""Traces sent with the real OpenTelemetry Python SDK and its OTLP exporters."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


@dataclass
class SentTrace:
    trace_id: str
    spans: dict[str, ReadableSpan]  # by name


def exporter(kind: str, endpoint: str):  # type: ignore[no-untyped-def]
    if kind == "grpc":
        return GrpcExporter(endpoint=endpoint, insecure=True, timeout=10)
    return HttpExporter(endpoint=endpoint, timeout=10)


def send_llm_trace(kind: str, endpoint: str, service: str = "chat-service") -> SentTrace:
    """Root + two children, one of them an LLM call with gen_ai token attributes."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter(kind, endpoint)))
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
