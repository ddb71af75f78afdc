"""Realistic LLM export requests: ~1.5 KB spans with 20 attributes, prompt and completion text.

One span in ten carries personal data in its prompt (an e-mail address, a phone number, a
card number), so a redaction stage has real matches to make, as it would in production.
"""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from common.otlp import key_value as _kv

PROMPTS = (
    "You are a support assistant for an online bookshop. Answer briefly and cite the order policy. "
    "Customer question: my parcel was supposed to arrive on Tuesday but the tracking page still shows "
    "'label created'. Can you check what is going on and whether I can get a refund for express shipping? ",
    "Summarise the following meeting notes in five bullet points for the engineering newsletter. Notes: "
    "the team migrated the ingestion service to the new cluster, latency dropped by a third, two incidents "
    "were caused by an expired certificate and a misconfigured autoscaler, next quarter focuses on cost. ",
    "Translate the product description into French, keeping the brand names unchanged: The Aurora 2 lamp "
    "gives warm, dimmable light for reading and working, charges over USB-C in two hours and lasts a week. ",
)
PII = (
    " You can reach me at jane.doe@example.com or +1 415 555 0132.",
    " My card 4111 1111 1111 1111 was charged twice, my phone is (212) 555-0187.",
)
COMPLETION = (
    "I have checked your order: the carrier scanned it this morning and it should arrive tomorrow. "
    "Express shipping is refunded automatically when delivery is late; you will see it within five days."
)
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-sonnet-20241022"), ("google", "gemini-1.5-pro"))


def llm_span(rng: random.Random, trace_id: bytes, with_pii: bool) -> Span:
    provider, model = rng.choice(MODELS)
    prompt = rng.choice(PROMPTS) + (rng.choice(PII) if with_pii else "")
    start = 1_763_000_000_000_000_000 + rng.randrange(10**12)
    span = Span(
        trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=rng.randbytes(8),
        name=f"chat {model}", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start, end_time_unix_nano=start + rng.randrange(200_000_000, 4_000_000_000),
    )
    input_tokens, output_tokens = rng.randrange(200, 4000), rng.randrange(20, 800)
    span.attributes.extend([
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", provider),
        _kv("gen_ai.request.model", model),
        _kv("gen_ai.response.model", model),
        _kv("gen_ai.request.temperature", 0.2),
        _kv("gen_ai.request.max_tokens", 1024),
        _kv("gen_ai.usage.input_tokens", input_tokens),
        _kv("gen_ai.usage.output_tokens", output_tokens),
        _kv("gen_ai.usage.cache_read.input_tokens", input_tokens // 4),
        _kv("gen_ai.response.id", f"chatcmpl-{rng.randbytes(12).hex()}"),
        _kv("gen_ai.response.finish_reasons", ["stop"]),
        _kv("gen_ai.conversation.id", rng.randbytes(16).hex()),
        _kv("gen_ai.system_instructions", "Be concise and polite."),
        _kv("gen_ai.input.messages", f'[{{"role":"user","parts":[{{"type":"text","content":"{prompt}"}}]}}]'),
        _kv("gen_ai.output.messages", f'[{{"role":"assistant","parts":[{{"type":"text","content":"{COMPLETION}"}}]}}]'),
        _kv("server.address", "api.example-llm.com"),
        _kv("server.port", 443),
        _kv("http.response.status_code", 200),
        _kv("user.id", f"user-{rng.randrange(10**6)}"),
        _kv("app.feature", "support-chat"),
    ])
    return span


def export_request(rng: random.Random, spans: int, pii_every: int = 10) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([
        _kv("service.name", "support-bot"), _kv("service.version", "2.4.1"),
        _kv("deployment.environment", "production"), _kv("host.name", "web-7f9c"),
        _kv("telemetry.sdk.language", "python"), _kv("telemetry.sdk.version", "1.45.0"),
    ])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai"
    scope_spans.scope.version = "0.48b0"
    trace_id = rng.randbytes(16)
    for n in range(spans):
        if n % 4 == 0:
            trace_id = rng.randbytes(16)  # a few LLM calls per trace
        scope_spans.spans.append(llm_span(rng, trace_id, with_pii=n % pii_every == 0))
    return request
