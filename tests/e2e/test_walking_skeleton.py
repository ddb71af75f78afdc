"""Spans from the real OpenTelemetry SDK, through collector, Redis and writer, out of the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_sync

from common.stream import GROUP, StreamKeys
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Stack
from tests.e2e.sdk import SentTrace, send_llm_trace
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def _span_id(span) -> str:  # type: ignore[no-untyped-def]
    return format(span.context.span_id, "016x")


COLLECTOR_COST_KEYS = ("observatory.cost",)  # the cost stage's carrier: the writer stores it in columns, not attributes


def assert_trace_matches(body: dict, sent: SentTrace, service: str) -> None:
    assert body["trace_id"] == sent.trace_id
    stored = {s["name"]: s for s in body["spans"]}
    assert set(stored) == set(sent.spans)
    for name, span in sent.spans.items():
        row = stored[name]
        assert row["trace_id"] == sent.trace_id
        assert row["span_id"] == _span_id(span)
        expected_parent = format(span.parent.span_id, "016x") if span.parent else None
        assert row["parent_span_id"] == expected_parent
        assert row["service_name"] == service
        assert row["start_time_unix_nano"] == span.start_time
        assert row["end_time_unix_nano"] == span.end_time
        assert row["duration_ns"] == span.end_time - span.start_time
        assert row["start_time"].endswith("Z") and len(row["start_time"].split(".")[1]) == 10  # 9 digits + Z
        added = {k: row["attributes"].pop(k) for k in COLLECTOR_COST_KEYS if k in row["attributes"]}
        assert row["attributes"] == {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()}
        assert not added
        assert row["resource_attributes"]["service.name"] == service
        assert row["resource_attributes"]["deployment.environment"] == "test"
    root, retrieval, llm = stored["POST /chat"], stored["retrieve documents"], stored["chat gpt-4o-mini"]
    assert root["kind"] == "server" and root["status"]["code"] == "unset"
    assert retrieval["attributes"]["retrieval.scores"] == [0.9, 0.5]
    assert llm["kind"] == "client"
    assert llm["status"] == {"code": "error", "message": "rate limited"}
    assert llm["llm"]["provider"] == "openai"
    assert llm["llm"]["request_model"] == "gpt-4o-mini"
    assert llm["llm"]["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (llm["llm"]["input_tokens"], llm["llm"]["output_tokens"], llm["llm"]["total_tokens"]) == (1200, 345, 1545)
    assert root["llm"]["input_tokens"] is None
    # gpt-4o-mini list price (OpenAI, 2025-10): $0.15 / $0.60 per 1M input / output tokens
    assert (llm["llm"]["cost_input_usd"], llm["llm"]["cost_output_usd"], llm["llm"]["cost_total_usd"]) == (0.00018, 0.000207, 0.000387)
    assert (llm["llm"]["cost_source"], llm["llm"]["cost_cache_read_usd"]) == ("computed", 0.0)
    assert llm["llm"]["cost_price_ref"].startswith("genai-prices ")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_trace_round_trips(stack: Stack, protocol: str) -> None:
    endpoint = stack.grpc_target if protocol == "grpc" else stack.http_url
    sent = send_llm_trace(protocol, endpoint, service=f"svc-{protocol}")
    body = stack.trace(sent.trace_id, spans=3)
    assert_trace_matches(body, sent, f"svc-{protocol}")


def test_unknown_and_malformed_trace_ids(stack: Stack) -> None:
    status, body = stack.api_get("/api/v1/traces/" + "ab" * 16)
    assert status == 404 and body["status"] == 404
    status, body = stack.api_get("/api/v1/traces/not-a-trace-id")
    assert status == 400 and body["parameter"] == "trace_id"
    status, body = stack.api_get("/api/v1/traces/" + "00" * 16)
    assert status == 400


def test_spans_wait_in_the_stream_while_the_writer_is_down(stack: Stack, tmp_path: Path) -> None:
    assert stack.storage.stop() == 0  # graceful stop exits 0
    sent = send_llm_trace("grpc", stack.grpc_target, service="while-down")
    client = redis_sync.Redis.from_url(REDIS_URL)
    stream = StreamKeys(stack.prefix).stream(0)
    # The export was acknowledged, so its entry is on the stream, not yet read by the group.
    groups = client.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [GROUP.encode()]
    assert groups[0]["lag"] >= 3 or client.xlen(stream) >= 3
    status, _ = stack.api_get(f"/api/v1/traces/{sent.trace_id}")
    assert status == 404
    stack.storage.start().wait_ready()
    body = stack.trace(sent.trace_id, spans=3)
    assert_trace_matches(body, sent, "while-down")
    wait_for(lambda: client.xinfo_groups(stream)[0]["pending"] == 0, what="entries acknowledged")
    client.close()
