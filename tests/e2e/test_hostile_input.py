"""Values real clients and attackers send, through the real collector, writer and API.

Each request mixes ordinary spans with one edge value. What must hold for every one: the
answer says exactly which spans were rejected and why (partial success), the ordinary
spans of the same request are stored, the edge span is stored normalized or not at all,
nothing reaches the dead-letter stream, and the writer keeps running and storing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from decimal import Decimal

import orjson
import psycopg
import pytest
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.processors.validation import INDEXED_TEXT_BYTES, MAX_TOKENS, TRUNCATED_MARK
from collector.receivers.otlp_json import DEPTH_MARK, encode_request
from common.otlp import key_value as kv
from common.stream import StreamKeys
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Stack, own_stack
from tests.support import http_post, wait_for

pytestmark = pytest.mark.e2e
SECRET = "never-echo-this"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def export(service: str = "hostile-test", spans: int = 3) -> tuple[ExportTraceServiceRequest, list[Span]]:
    """A request of `spans` ordinary spans (one trace); the caller adds or edits one."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    scope = rs.scope_spans.add()
    trace_id, now = os.urandom(16), time.time_ns()
    for n in range(spans):
        scope.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"ordinary-{n}",
                        start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000)
    return req, list(scope.spans)


def send(stack: Stack, req: ExportTraceServiceRequest, json: bytes | None = None) -> ExportTraceServiceResponse:
    if json is None:
        status, _, body = http_post(stack.http_url, req.SerializeToString())
        assert status == 200, body
        return ExportTraceServiceResponse.FromString(body)
    status, _, body = http_post(stack.http_url, json, "application/json")
    assert status == 200, body
    answer = orjson.loads(body)
    response = ExportTraceServiceResponse()
    partial = answer.get("partialSuccess") or {}
    response.partial_success.rejected_spans = int(partial.get("rejectedSpans", 0))
    response.partial_success.error_message = partial.get("errorMessage", "")
    return response


def stored(stack: Stack, span_ids: list[bytes], columns: str = "name") -> dict[bytes, tuple]:
    """Rows of these spans, once all of them are in (by span id)."""
    def query() -> dict[bytes, tuple] | None:
        with psycopg.connect(stack.database.admin_dsn) as conn:
            rows = conn.execute(f"SELECT span_id, {columns} FROM spans WHERE span_id = ANY(%s)", (span_ids,)).fetchall()
        return {bytes(r[0]): tuple(r[1:]) for r in rows} if len(rows) == len(span_ids) else None
    return wait_for(query, 20, 0.1, f"{len(span_ids)} spans stored")


def assert_writer_healthy(stack: Stack) -> None:
    """Still running, nothing dead-lettered, and still storing what comes next."""
    keys = StreamKeys(stack.prefix, 1)
    client = redis_sync.Redis.from_url(REDIS_URL)
    try:
        assert client.xlen(keys.dlq) == 0
    finally:
        client.close()
    assert stack.storage.proc is not None and stack.storage.proc.poll() is None
    req, spans = export(service="after")
    assert send(stack, req).partial_success.rejected_spans == 0
    stored(stack, [s.span_id for s in spans])


def test_token_counts_at_the_int64_maximum_are_clamped_and_rollups_keep_counting(stack: Stack) -> None:
    req, spans = export()
    llm = spans[1]
    llm.attributes.extend([kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.provider.name", "openai"),
                           kv("gen_ai.usage.input_tokens", 2**63 - 1), kv("gen_ai.usage.output_tokens", 2**63 - 1)])
    assert send(stack, req).partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans], "input_tokens, output_tokens, total_tokens")
    assert rows[llm.span_id] == (MAX_TOKENS, MAX_TOKENS, 2 * MAX_TOKENS)
    # Later spans of the same service, model and hour are still stored and counted.
    for _ in range(3):
        again, more = export()
        more[0].attributes.extend([kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.provider.name", "openai"),
                                   kv("gen_ai.usage.input_tokens", 2**62)])
        assert send(stack, again).partial_success.rejected_spans == 0
        stored(stack, [s.span_id for s in more])
    with psycopg.connect(stack.database.admin_dsn) as conn:
        (tokens,) = conn.execute("SELECT sum(input_tokens) FROM span_rollups_1h WHERE model = 'gpt-4o'").fetchone()
    assert tokens == 4 * MAX_TOKENS
    assert_writer_healthy(stack)


def test_cost_values_a_client_sends_in_the_collectors_own_keys_are_bounded(stack: Stack) -> None:
    """observatory.cost and observatory.usage.input_tokens are what the cost stage writes for
    the writer; a client can send them too, and a token count as a string."""
    req, spans = export(spans=4)
    huge, nul_ref, counts = spans[1], spans[2], spans[3]
    huge.attributes.extend([kv("gen_ai.request.model", "in-house-model"), kv("gen_ai.usage.input_tokens", 10),
                            kv("observatory.cost", "1|computed|" + "9" * 30 + "|0|0|0|0|1||2026-01-01|x")])
    nul_ref.attributes.extend([kv("gen_ai.request.model", "in-house-model"), kv("gen_ai.usage.input_tokens", 10),
                               kv("observatory.cost", "1|override|5|0|0|0|0|1000||2026-01-01|bad\x00ref")])
    counts.attributes.extend([kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.provider.name", "openai"),
                              kv("gen_ai.usage.input_tokens", 100), kv("gen_ai.usage.output_tokens", "9000000000000000000"),
                              kv("observatory.usage.input_tokens", 2**63 - 1)])
    assert send(stack, req).partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans],
                  "input_tokens, output_tokens, total_tokens, cost_total_usd, cost_source, cost_price_ref")
    assert rows[huge.span_id] == (10, None, 10, None, None, None)  # not a figure the columns can hold: no cost
    assert rows[nul_ref.span_id] == (10, None, 10, Decimal("0.005"), "override", "bad\ufffdref")
    assert rows[counts.span_id][:3] == (MAX_TOKENS, MAX_TOKENS, 2 * MAX_TOKENS)
    assert rows[counts.span_id][4] == "computed"
    assert_writer_healthy(stack)


def test_a_service_name_and_model_past_the_index_limit_are_cut_with_a_mark(stack: Stack) -> None:
    service = os.urandom(1500).hex()  # 3 KB of random text: no compression saves the btree entry
    req, spans = export(service=service)
    spans[0].attributes.append(kv("gen_ai.request.model", os.urandom(5000).hex()))
    assert send(stack, req).partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans], "service_name, llm_request_model")
    for service_name, model in rows.values():
        assert service_name.endswith(TRUNCATED_MARK) and service_name.startswith(service[:100])
        assert len(service_name.encode()) <= INDEXED_TEXT_BYTES
    model = rows[spans[0].span_id][1]
    assert model.endswith(TRUNCATED_MARK) and len(model.encode()) <= INDEXED_TEXT_BYTES
    assert_writer_healthy(stack)


def test_times_past_int64_or_days_ahead_reject_only_their_span(stack: Stack) -> None:
    req, spans = export(spans=5)
    spans[0].name = SECRET
    spans[0].end_time_unix_nano = 2**64 - 1
    spans[1].start_time_unix_nano = spans[1].end_time_unix_nano = time.time_ns() + 8 * 86_400 * 10**9
    spans[2].events.add(time_unix_nano=2**63, name="late")
    answer = send(stack, req).partial_success
    assert answer.rejected_spans == 3
    assert "2 span(s) had a start, end or event time past 2^63-1 ns" in answer.error_message
    assert "1 span(s) started or ended more than FUTURE_SPAN_WINDOW" in answer.error_message
    assert SECRET not in answer.error_message
    stored(stack, [s.span_id for s in spans[3:]])
    with psycopg.connect(stack.database.admin_dsn) as conn:
        rejected = conn.execute("SELECT count(*) FROM spans WHERE span_id = ANY(%s)", ([s.span_id for s in spans[:3]],)).fetchone()
        future = conn.execute("SELECT count(*) FROM spans_default").fetchone()
    assert rejected == (0,) and future == (0,)
    assert_writer_healthy(stack)


def test_nul_in_every_text_column_is_replaced(stack: Stack) -> None:
    req, spans = export(service="nul\x00service")
    spans[0].name = "nul\x00name"
    spans[0].attributes.extend([kv("gen_ai.request.model", "gpt\x00-4o"), kv("gen_ai.system", "open\x00ai"),
                                kv("gen_ai.operation.name", "chat\x00"), kv("plain", "in\x00json")])
    assert send(stack, req).partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans], "service_name, name, llm_request_model, llm_provider, llm_operation, attributes->>'plain'")
    assert rows[spans[0].span_id] == ("nul\ufffdservice", "nul\ufffdname", "gpt\ufffd-4o", "open\ufffdai", "chat\ufffd", "in\ufffdjson")
    assert_writer_healthy(stack)


@pytest.mark.parametrize("levels", [60, 250])
def test_deep_json_values_are_cut_and_the_request_stored(stack: Stack, levels: int) -> None:
    req, spans = export()
    document = orjson.loads(encode_request(req))
    text = orjson.dumps(document).decode()
    nested = '{"arrayValue":{"values":[' * levels + '{"stringValue":"leaf"}' + "]}}" * levels
    first = spans[0].span_id.hex()
    marker = f'"spanId":"{first}"'
    text = text.replace(marker, marker + f',"attributes":[{{"key":"deep","value":{nested}}}]')
    answer = send(stack, req, json=text.encode())
    assert answer.partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans], "attributes->'deep'")
    assert DEPTH_MARK in orjson.dumps(rows[spans[0].span_id][0]).decode()
    assert_writer_healthy(stack)


def test_an_all_zero_parent_is_a_root_and_its_trace_is_found(stack: Stack) -> None:
    req, spans = export(spans=2)
    spans[0].name = "zero-parent-root"
    spans[0].parent_span_id = bytes(8)
    spans[1].parent_span_id = spans[0].span_id
    assert send(stack, req).partial_success.rejected_spans == 0
    rows = stored(stack, [s.span_id for s in spans], "parent_span_id")
    assert rows[spans[0].span_id] == (None,)
    trace_id = spans[0].trace_id.hex()

    def found() -> bool:
        status, body = stack.api_get("/api/v1/traces?root_name=zero-parent-root")
        return status == 200 and trace_id in orjson.dumps(body).decode()
    wait_for(found, 20, 0.2, "the trace in trace search")
    assert_writer_healthy(stack)
