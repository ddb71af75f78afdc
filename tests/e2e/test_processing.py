"""Sampling, redaction and cost inside the real collector process: what reaches storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.e2e.sdk import exporter
from tests.support import wait_for

pytestmark = pytest.mark.e2e

PROMPT = "Refund order 88 for jane.doe@example.com, card 4111 1111 1111 1111, phone +44 20 7946 0958"


def _send(endpoint: str) -> tuple[str, str]:
    """An errored LLM call with PII in its prompt, event and status, and a quiet trace; their ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", "host.ip": "203.0.113.9"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter("grpc", endpoint)))
    tracer = provider.get_tracer("tests.e2e")
    with tracer.start_as_current_span("chat claude", kind=SpanKind.CLIENT, attributes={
        "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 10_000, "gen_ai.usage.output_tokens": 200,
        "gen_ai.input.messages": PROMPT, "http.request.header.authorization": "Bearer abc",
    }) as llm:
        llm.add_event("exception", {"exception.message": "declined for jane.doe@example.com"})
        llm.set_status(Status(StatusCode.ERROR, "upstream 81.2.69.160 refused"))  # a public address: private ones are kept by default
        kept = format(llm.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("health check") as quiet:
        dropped = format(quiet.get_span_context().trace_id, "032x")
    provider.force_flush()
    provider.shutdown()
    return kept, dropped


def test_pii_is_redacted_cost_added_and_tail_sampling_keeps_the_error(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    stack = start_stack(fresh_database, redis_prefix, tmp_path, ENABLE_SAMPLING="true", SAMPLING_PERCENTAGE="100",
                        TAIL_SAMPLING="true", TAIL_DECISION_WAIT="0.3", TAIL_PERCENTAGE="0")
    try:
        kept, dropped = _send(stack.grpc_target)
        trace = stack.trace(kept, 1)
        span = trace["spans"][0]
        attrs = span["attributes"]
        assert attrs["gen_ai.input.messages"] == "Refund order 88 for [REDACTED:EMAIL], card [REDACTED:CARD], phone [REDACTED:PHONE]"
        assert attrs["http.request.header.authorization"] == "[REDACTED:KEY]"
        assert attrs["redaction.masked.count"] == 6
        assert span["status"]["message"] == "upstream [REDACTED:IPV4] refused"
        assert span["resource_attributes"]["host.ip"] == "[REDACTED:IPV4]"
        assert "jane" not in str(trace)
        # Anthropic convention: 1,000 uncached × $3 + 10,000 cache reads × $0.30 + 200 × $15 per 1M.
        assert span["llm"]["cost_total_usd"] == pytest.approx(0.003 + 0.003 + 0.003)
        status, body = stack.api_get(f"/api/v1/traces/{dropped}")
        assert status == 404, body  # the tail sampler dropped the trace with no error, cost or rule
    finally:
        stack.stop()


def test_sigterm_publishes_the_traces_tail_sampling_holds(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    # A decision window far longer than the test: only the shutdown path can publish the trace.
    stack = start_stack(fresh_database, redis_prefix, tmp_path, TAIL_SAMPLING="true", TAIL_DECISION_WAIT="600", TAIL_PERCENTAGE="100")
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "held"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter("http", stack.http_url)))
        with provider.get_tracer("tests.e2e").start_as_current_span("quiet work") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        wait_for(lambda: stack.collector.metric("observatory_collector_tail_held_traces") == 1, what="the trace to be held")
        assert stack.api_get(f"/api/v1/traces/{trace_id}")[0] == 404  # answered 200, not yet on the stream
        assert stack.collector.stop() == 0
        assert stack.trace(trace_id, 1)["spans"][0]["name"] == "quiet work"
    finally:
        stack.stop()
