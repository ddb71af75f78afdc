"""Realistic LLM spans for the processor benchmarks: ~1.5 KB, ~20 attributes, prompt text.

Deterministic (seeded) so that runs compare. A share of the spans carry PII in the prompt
(PII_SHARE), as production traffic with redaction on would.
"""

from __future__ import annotations

import json
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from common.otlp import key_value as _kv

PII_SHARE = 0.1
WORDS = (
    "the customer asked about their order status and whether the refund was processed "
    "please summarise the following document in three bullet points keeping numbers exact "
    "version 2.3.1 of the service returned 429 after 1500 ms so retry with backoff "
    "translate into French and keep the markdown formatting of headings and tables intact"
).split()
PII = (
    "contact me at jane.doe@example.com", "my card is 4111 1111 1111 1111", "call +44 20 7946 0958",
    "ssn 123-45-6789", "key sk-proj-abcdefghijklmnopqrstuvwxyz123456", "from 203.0.113.42",
)
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("gcp.gemini", "gemini-2.5-flash"))


def _prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def request(spans: int, seed: int = 1) -> ExportTraceServiceRequest:
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "chat-api"), _kv("telemetry.sdk.language", "python"),
                                   _kv("host.name", "web-7f9c"), _kv("deployment.environment", "prod")])
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai"
    for index in range(spans):
        provider, model = rng.choice(MODELS)
        prompt = _prose(rng, 70)
        if rng.random() < PII_SHARE:
            prompt += " " + rng.choice(PII)
        span = ss.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), name=f"chat {model}", kind=3,
                            start_time_unix_nano=1_700_000_000_000_000_000 + index, end_time_unix_nano=1_700_000_001_000_000_000 + index)
        span.attributes.extend([
            _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.provider.name", provider),
            _kv("gen_ai.request.model", model), _kv("gen_ai.response.model", model + "-2025-01-01"),
            _kv("gen_ai.usage.input_tokens", rng.randint(50, 4000)), _kv("gen_ai.usage.output_tokens", rng.randint(10, 800)),
            _kv("gen_ai.request.temperature", 0.7), _kv("gen_ai.request.max_tokens", 1024),
            _kv("gen_ai.response.id", f"chatcmpl-{rng.randbytes(12).hex()}"), _kv("gen_ai.response.finish_reasons", "stop"),
            _kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}])),
            _kv("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": _prose(rng, 40)}]}])),
            _kv("server.address", "api.openai.com"), _kv("server.port", 443), _kv("http.response.status_code", 200),
            _kv("session.id", rng.randbytes(16).hex()), _kv("app.request_id", f"{rng.randbytes(4).hex()}-{rng.randint(1, 10**6)}"),
            _kv("app.latency_ms", rng.random() * 3000), _kv("app.retry", False), _kv("app.region", "eu-west-1"),
        ])
    return req
