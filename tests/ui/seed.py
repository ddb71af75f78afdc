"""Known traces for the explorer and the Tempo endpoints: one per GenAI content convention,
with nesting, several services, an error, events and links. Sent through the real collector
as OTLP/HTTP protobuf."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from common.otlp import key_value as kv

MS = 1_000_000
BASE_NS = (time.time_ns() - 10 * 60 * 1_000_000_000) // MS * MS  # ten minutes ago, whole ms

INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are a weather assistant."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Will it rain in Lisbon tomorrow?"}]},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_forecast", "arguments": {"city": "Lisbon"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rain 80%"}]},
]
OUTPUT_MESSAGES = [
    {"role": "assistant", "parts": [{"type": "text", "content": "Yes: an 80% chance of rain in Lisbon tomorrow."}], "finish_reason": "stop"},
]


def tid(n: int) -> bytes:
    return (0xA1B2C3D4E5F60000 << 64 | n).to_bytes(16, "big")


def sid(n: int) -> bytes:
    return (0x5EED000000000000 | n).to_bytes(8, "big")


@dataclass(frozen=True)
class Known:
    """What the tests expect to see."""

    weather_trace: str = tid(1).hex()
    weather_llm_span: str = sid(3).hex()
    openinference_trace: str = tid(2).hex()
    legacy_trace: str = tid(3).hex()
    events_trace: str = tid(4).hex()
    weather_cost_usd: float = 0.00042
    weather_spans: int = 5


KNOWN = Known()


def _span(trace: int, span: int, parent: int | None, name: str, start_ms: float, dur_ms: float, kind: int = Span.SPAN_KIND_INTERNAL,
          attrs: dict | None = None, error: str | None = None) -> Span:
    s = Span(
        trace_id=tid(trace), span_id=sid(span), parent_span_id=sid(parent) if parent else b"", name=name, kind=kind,
        start_time_unix_nano=BASE_NS + int(start_ms * MS), end_time_unix_nano=BASE_NS + int((start_ms + dur_ms) * MS),
    )
    s.attributes.extend(kv(k, v) for k, v in (attrs or {}).items())
    if error:
        s.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return s


def _resource(request: ExportTraceServiceRequest, service: str, spans: list[Span]) -> ResourceSpans:
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service), kv("deployment.environment", "demo")])
    scope = rs.scope_spans.add()
    scope.scope.name = "tests.ui.seed"
    scope.scope.version = "1.0"
    scope.spans.extend(spans)
    return rs


def request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    # 1: GenAI current convention, three services, a tool call and an error
    _resource(req, "web-frontend", [
        _span(1, 1, None, "POST /ask", 0, 1800, Span.SPAN_KIND_SERVER, {"http.request.method": "POST", "http.route": "/ask"}),
    ])
    retrieval = _span(1, 2, 1, "retrieve documents", 20, 300, attrs={
        "retrieval.top_k": 4, "retrieval.scores": [0.91, 0.5], "retrieval.threshold": 1.0, "cache.digest": b"\xde\xad\xbe\xef"})
    retrieval.events.add(time_unix_nano=BASE_NS + 100 * MS, name="cache miss").attributes.append(kv("cache.key", "lisbon"))
    _resource(req, "retriever", [retrieval])
    llm = _span(1, 3, 1, "chat gpt-4o-mini", 350, 1200, Span.SPAN_KIND_CLIENT, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 400,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.input.messages": json.dumps(INPUT_MESSAGES), "gen_ai.output.messages": json.dumps(OUTPUT_MESSAGES),
        "llm.cost.prompt": 0.00018, "llm.cost.completion": 0.00024, "llm.cost.total": 0.00042,
    })
    llm.links.add(trace_id=tid(2), span_id=sid(21)).attributes.append(kv("link.reason", "same conversation"))
    _resource(req, "llm-gateway", [
        llm,
        _span(1, 4, 3, "tool get_forecast", 600, 200, attrs={"gen_ai.tool.name": "get_forecast"}),
        _span(1, 5, 1, "render answer", 1600, 150, error="template missing"),
    ])
    # 2: OpenInference
    _resource(req, "support-bot", [
        _span(2, 20, None, "agent run", 5000, 900, Span.SPAN_KIND_SERVER),
        _span(2, 21, 20, "ChatAnthropic", 5050, 800, Span.SPAN_KIND_CLIENT, {
            "openinference.span.kind": "LLM", "llm.system": "anthropic", "llm.model_name": "claude-3-5-sonnet",
            "llm.token_count.prompt": 300, "llm.token_count.completion": 80,
            "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Answer briefly.",
            "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Reset my password",
            "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "Use the reset link on the login page.",
        }),
    ])
    # 3: older gen_ai.prompt.{i} / gen_ai.completion.{i} (OpenLLMetry)
    _resource(req, "batch-summarizer", [
        _span(3, 30, None, "openai.chat", 9000, 400, Span.SPAN_KIND_CLIENT, {
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Summarize: the meeting moved to Friday.",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Meeting now on Friday.",
            "gen_ai.completion.0.finish_reason": "stop",
        }),
    ])
    # 4: content as GenAI span events
    ev = _span(4, 40, None, "chat mistral-small", 12000, 250, Span.SPAN_KIND_CLIENT, {
        "gen_ai.system": "mistral_ai", "gen_ai.request.model": "mistral-small", "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
    })
    ev.events.add(time_unix_nano=BASE_NS + 12001 * MS, name="gen_ai.user.message").attributes.append(kv("content", "Say hi"))
    ev.events.add(time_unix_nano=BASE_NS + 12240 * MS, name="gen_ai.choice").attributes.append(kv("content", "Hi!"))
    _resource(req, "events-app", [ev])
    return req


def send(http_url: str, body: ExportTraceServiceRequest | None = None) -> None:
    data = (body or request()).SerializeToString()
    req = urllib.request.Request(http_url, data=data, headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as answer:
        assert answer.status == 200, answer.status


SPAN_COUNT = 9
