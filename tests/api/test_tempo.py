"""The Tempo endpoints (api/tempo.py) over known traces (tests/ui/seed.py) stored by the
writer's own code: the OTLP answer decoded with the official protobuf classes and compared
span by span with the JSON API; TraceQL-subset searches against the documented meaning,
evaluated here in Python over the JSON API's spans; answer shapes as Tempo's HTTP API
documentation gives them."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from google.protobuf.internal.decoder import _DecodeVarint32
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from api.otlp_out import any_value
from storage.decode import request_rows
from storage.writer import SpanWriter
from tests.api.conftest import AUTH, KEY_USAGE, ClientFactory
from tests.conftest import Database, create_database, drop_database
from tests.ui import seed

TRACES = [seed.tid(n).hex() for n in (1, 2, 3, 4)]
START, END = str(seed.BASE_NS // 10**9 - 60), str(seed.BASE_NS // 10**9 + 600)
WINDOW = {"start": START, "end": END}


@pytest.fixture(scope="module")
async def seeded() -> AsyncIterator[Database]:
    database = create_database("obs_tempo_test")
    try:
        async with await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True) as conn:
            assert await SpanWriter(conn).write(request_rows(seed.request())) == seed.SPAN_COUNT
        yield database
    finally:
        drop_database(database.name)


@pytest.fixture
async def tempo(make_client: ClientFactory, seeded: Database) -> TestClient:
    return await make_client(seeded)


async def json_trace(client: TestClient, trace_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/traces/{trace_id}", headers=AUTH)
    assert answer.status == 200
    return await answer.json()


async def otlp_trace(client: TestClient, trace_id: str, path: str = "/api/traces/") -> TracesData:
    answer = await client.get(path + trace_id, headers={**AUTH, "Accept": "application/protobuf"})
    assert answer.status == 200 and answer.content_type == "application/protobuf"
    return TracesData.FromString(await answer.read())


def plain(value: Any) -> Any:
    """An AnyValue as the JSON API's plain value (docs/API.md, "Attribute values"): the oracle's own conversion."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)
    return None if which is None else getattr(value, which)



@pytest.mark.parametrize("trace_id", TRACES)
async def test_otlp_answer_equals_the_json_api_span_by_span(tempo: TestClient, trace_id: str) -> None:
    data, doc = await otlp_trace(tempo, trace_id), await json_trace(tempo, trace_id)
    by_id = {s["span_id"]: s for s in doc["spans"]}
    seen = set()
    for rs in data.resource_spans:
        resource = {kv.key: plain(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                j = by_id[span.span_id.hex()]
                seen.add(span.span_id.hex())
                assert span.trace_id.hex() == trace_id == j["trace_id"]
                assert (span.parent_span_id.hex() or None) == j["parent_span_id"]
                assert span.name == j["name"] and span.kind == ["unspecified", "internal", "server", "client", "producer", "consumer"].index(j["kind"])
                assert (span.start_time_unix_nano, span.end_time_unix_nano) == (j["start_time_unix_nano"], j["end_time_unix_nano"])
                assert span.status.code == ["unset", "ok", "error"].index(j["status"]["code"])
                assert (span.status.message or None) == j["status"]["message"]
                assert {kv.key: plain(kv.value) for kv in span.attributes} == j["attributes"]
                for kv in span.attributes:  # the JSON API's exact form names the OTLP type plain JSON loses
                    exact = j["exact_values"].get("attributes", {}).get(kv.key)
                    kind = kv.value.WhichOneof("value")
                    if kind == "bytes_value" or (kind == "double_value" and float(kv.value.double_value).is_integer()):
                        assert exact is not None and any_value(None, exact) == kv.value, kv.key
                    else:
                        assert exact is None, kv.key
                assert resource == j["resource_attributes"] and resource["service.name"] == j["service_name"]
                assert (ss.scope.name, ss.scope.version) == (j["scope"]["name"], j["scope"]["version"])
                assert [(e.name, e.time_unix_nano, {kv.key: plain(kv.value) for kv in e.attributes}) for e in span.events] == [
                    (e["name"], e["time_unix_nano"], e["attributes"]) for e in j["events"]]
                assert [(link.trace_id.hex(), link.span_id.hex(), {kv.key: plain(kv.value) for kv in link.attributes}) for link in span.links] == [
                    (link["trace_id"], link["span_id"], link["attributes"]) for link in j["links"]]
    assert seen == set(by_id)


async def test_v2_wraps_the_same_trace_and_json_uses_hex_ids(tempo: TestClient) -> None:
    v1 = await otlp_trace(tempo, TRACES[0])
    answer = await tempo.get(f"/api/v2/traces/{TRACES[0]}", headers={**AUTH, "Accept": "application/protobuf"})
    body = await answer.read()
    length, at = _DecodeVarint32(body, 1)  # tempopb.TraceByIDResponse: field 1 (a Trace: TracesData's wire shape)
    assert body[0] == 0x0A and at + length == len(body) and TracesData.FromString(body[at:]) == v1
    as_json = await (await tempo.get(f"/api/traces/{TRACES[0]}", headers=AUTH)).json()
    spans = [s for rs in as_json["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["spanId"] for s in spans} == {s.span_id.hex() for rs in v1.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert all(re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) for s in spans)
    v2_json = await (await tempo.get(f"/api/v2/traces/{TRACES[0]}", headers=AUTH)).json()
    assert v2_json == {"trace": as_json}


async def test_short_ids_are_left_padded_and_unknown_ids_are_404(tempo: TestClient) -> None:
    assert (await tempo.get("/api/traces/" + "0" * 31 + "9", headers=AUTH)).status == 404
    assert (await tempo.get("/api/traces/xyz", headers=AUTH)).status == 400
    assert (await tempo.get("/api/traces/" + "0" * 32, headers=AUTH)).status == 400


# --- search -----------------------------------------------------------------------------------

Spans = list[dict[str, Any]]
# query -> the documented meaning, as a predicate over one span of the JSON API
QUERIES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "{}": lambda s: True,
    '{ resource.service.name = "llm-gateway" }': lambda s: s["service_name"] == "llm-gateway",
    '{ .service.name = "llm-gateway" && duration > 100ms }': lambda s: s["service_name"] == "llm-gateway" and s["duration_ns"] > 100e6,
    '{ resource.service.name != "llm-gateway" && duration >= 900ms }': lambda s: s["service_name"] != "llm-gateway" and s["duration_ns"] >= 900e6,
    "{ status = error }": lambda s: s["status"]["code"] == "error",
    "{ status != unset }": lambda s: s["status"]["code"] != "unset",
    "{ kind = client }": lambda s: s["kind"] == "client",
    '{ name = "agent run" }': lambda s: s["name"] == "agent run",
    '{ name =~ "chat.*" }': lambda s: re.fullmatch("chat.*", s["name"]) is not None,
    '{ span.gen_ai.request.model = "gpt-4o-mini" }': lambda s: s["attributes"].get("gen_ai.request.model") == "gpt-4o-mini",
    "{ span.gen_ai.usage.input_tokens > 100 }": lambda s: (s["attributes"].get("gen_ai.usage.input_tokens") or 0) > 100,
    "{ span.retrieval.top_k = 4 }": lambda s: s["attributes"].get("retrieval.top_k") == 4,
    '{ .deployment.environment = "demo" && duration < 300ms }': lambda s: s["resource_attributes"].get("deployment.environment") == "demo" and s["duration_ns"] < 300e6,
    '{ span.gen_ai.system != "openai" }': lambda s: "gen_ai.system" in s["attributes"] and s["attributes"]["gen_ai.system"] != "openai",
    "{ duration = 1.2s }": lambda s: s["duration_ns"] == 1_200_000_000,
}


async def spans_of_all(tempo: TestClient) -> Spans:
    return [s for trace_id in TRACES for s in (await json_trace(tempo, trace_id))["spans"]]


@pytest.mark.parametrize("query", list(QUERIES))
async def test_search_finds_the_traces_with_a_matching_span(tempo: TestClient, query: str) -> None:
    spans = await spans_of_all(tempo)
    meaning = QUERIES[query]
    expected = {s["trace_id"] for s in spans if meaning(s)}
    answer = await tempo.get("/api/search", params={"q": query, **WINDOW, "limit": "100", "spss": "100"}, headers=AUTH)
    assert answer.status == 200, await answer.text()
    body = await answer.json()
    assert {t["traceID"] for t in body["traces"]} == expected
    for trace in body["traces"]:
        matched = {s["span_id"] for s in spans if s["trace_id"] == trace["traceID"] and meaning(s)}
        assert {s["spanID"] for s in trace["spanSets"][0]["spans"]} == matched
        assert trace["spanSets"][0]["matched"] == len(matched) and trace["spanSet"] == trace["spanSets"][0]


async def test_search_answer_has_tempos_shape(tempo: TestClient) -> None:
    body = await (await tempo.get("/api/search", params={"q": "{ kind = client }", **WINDOW, "spss": "1"}, headers=AUTH)).json()
    assert set(body) == {"traces", "metrics"} and body["traces"]
    weather = next(t for t in body["traces"] if t["traceID"] == TRACES[0])
    assert weather["rootServiceName"] == "web-frontend" and weather["rootTraceName"] == "POST /ask"
    assert weather["startTimeUnixNano"] == str(seed.BASE_NS) and weather["durationMs"] == 1800
    span = weather["spanSets"][0]["spans"][0]
    assert set(span) == {"spanID", "name", "startTimeUnixNano", "durationNanos", "attributes"}
    assert re.fullmatch(r"[0-9a-f]{16}", span["spanID"]) and span["durationNanos"].isdigit() and span["startTimeUnixNano"].isdigit()
    assert len(weather["spanSets"][0]["spans"]) == 1 and weather["spanSets"][0]["matched"] == 1


async def test_search_limit_window_and_tag_search(tempo: TestClient) -> None:
    limited = await (await tempo.get("/api/search", params={"q": "{}", **WINDOW, "limit": "2"}, headers=AUTH)).json()
    assert [t["traceID"] for t in limited["traces"]] == [TRACES[3], TRACES[2]]  # newest first
    before = await (await tempo.get("/api/search", params={"q": "{}", "start": "1000", "end": "2000"}, headers=AUTH)).json()
    assert before["traces"] == []
    tags = await (await tempo.get("/api/search", params={"tags": "service.name=support-bot", "minDuration": "850ms", **WINDOW}, headers=AUTH)).json()
    assert [t["traceID"] for t in tags["traces"]] == [TRACES[1]]


@pytest.mark.parametrize(("query", "says"), [
    ('{ name = "a" || name = "b" }', "||"),
    ('{ name = "a" } && { name = "b" }', "one spanset"),
    ("{ status = broken }", "status is one of"),
    ("{ duration > 5 }", "duration"),
    ('{ trace:rootService = "x" }', "not in the supported subset"),
    ("{ span.x > \"a\" }", "number"),
    ("name = 1", "braces"),
])
async def test_unsupported_queries_are_400_naming_why(tempo: TestClient, query: str, says: str) -> None:
    answer = await tempo.get("/api/search", params={"q": query, **WINDOW}, headers=AUTH)
    assert answer.status == 400
    assert says in (await answer.json())["detail"]


async def test_tags_and_values(tempo: TestClient) -> None:
    tags = await (await tempo.get("/api/v2/search/tags", params=WINDOW, headers=AUTH)).json()
    scopes = {s["name"]: s["tags"] for s in tags["scopes"]}
    assert set(scopes) == {"resource", "span", "intrinsic"}
    assert scopes["resource"] == ["deployment.environment", "service.name"]
    assert {"gen_ai.request.model", "retrieval.top_k", "http.route"} <= set(scopes["span"])
    assert {"name", "status", "duration", "kind"} <= set(scopes["intrinsic"])
    only_span = await (await tempo.get("/api/v2/search/tags", params={**WINDOW, "scope": "span"}, headers=AUTH)).json()
    assert [s["name"] for s in only_span["scopes"]] == ["span"]
    v1 = await (await tempo.get("/api/search/tags", params=WINDOW, headers=AUTH)).json()
    assert "service.name" in v1["tagNames"] and "gen_ai.request.model" in v1["tagNames"]

    services = await (await tempo.get("/api/v2/search/tag/resource.service.name/values", params=WINDOW, headers=AUTH)).json()
    assert services == {"tagValues": [{"type": "string", "value": v} for v in sorted(
        ["web-frontend", "retriever", "llm-gateway", "support-bot", "batch-summarizer", "events-app"])]}
    top_k = await (await tempo.get("/api/v2/search/tag/span.retrieval.top_k/values", params=WINDOW, headers=AUTH)).json()
    assert top_k == {"tagValues": [{"type": "int", "value": "4"}]}
    status = await (await tempo.get("/api/v2/search/tag/status/values", params=WINDOW, headers=AUTH)).json()
    assert {"type": "keyword", "value": "error"} in status["tagValues"]
    filtered = await (await tempo.get("/api/v2/search/tag/name/values", params={**WINDOW, "q": '{ resource.service.name = "support-bot" }'}, headers=AUTH)).json()
    assert [v["value"] for v in filtered["tagValues"]] == ["ChatAnthropic", "agent run"]
    v1_values = await (await tempo.get("/api/search/tag/service.name/values", params=WINDOW, headers=AUTH)).json()
    assert "support-bot" in v1_values["tagValues"]


async def test_echo_and_credentials(tempo: TestClient) -> None:
    echo = await tempo.get("/api/echo", headers=AUTH)
    assert echo.status == 200 and await echo.text() == "echo"
    for path in ("/api/echo", "/api/search", f"/api/traces/{TRACES[0]}", "/api/v2/search/tags"):
        assert (await tempo.get(path)).status == 401
        assert (await tempo.get(path, headers={"Authorization": f"Bearer {KEY_USAGE}"})).status == 403


def test_exact_values_are_what_plain_json_cannot_hold() -> None:
    assert math.isnan(any_value("nan", {"doubleValue": "NaN"}).double_value) and plain(any_value(None, {"doubleValue": "NaN"})) == "nan"
    assert any_value("AAE=", {"bytesValue": "AAE="}).bytes_value == b"\x00\x01" and any_value("AAE=", None).string_value == "AAE="
    assert math.copysign(1, any_value(None, {"doubleValue": "-0.0"}).double_value) == -1
    assert any_value(3, None).WhichOneof("value") == "int_value" and any_value(3.0, {"doubleValue": 3.0}).WhichOneof("value") == "double_value"


async def test_search_reads_matches_in_steps_and_finds_the_same_traces(tempo: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from api import tempo as module

    whole = await (await tempo.get("/api/search", params={"q": "{ duration > 1ms }", **WINDOW, "limit": "100"}, headers=AUTH)).json()
    monkeypatch.setattr(module, "SCAN_CHUNK", 2)  # every step reads two spans: the keyset walk crosses many steps
    stepped = await (await tempo.get("/api/search", params={"q": "{ duration > 1ms }", **WINDOW, "limit": "100"}, headers=AUTH)).json()
    assert [t["traceID"] for t in stepped["traces"]] == [t["traceID"] for t in whole["traces"]] == [TRACES[3], TRACES[2], TRACES[1], TRACES[0]]
    three = await (await tempo.get("/api/search", params={"q": "{}", **WINDOW, "limit": "3"}, headers=AUTH)).json()
    assert [t["traceID"] for t in three["traces"]] == [TRACES[3], TRACES[2], TRACES[1]]


# --- a trace larger than API_TEMPO_TRACE_MAX_SPANS ------------------------------------------------

LONG_TRACE = bytes.fromhex("7e" * 16)
LONG_SPANS = 3000
LONG_LIMIT = 10  # API_TEMPO_TRACE_MAX_SPANS in these tests: 40 events and 40 links at most
CROWDED = 60  # events of the root and links of span 2: more than the answer may hold


def long_trace_request() -> ExportTraceServiceRequest:
    """A root, then LONG_SPANS - 1 children 1 ms apart, sent as an SDK sends them (in one
    request, newest first, so storage order is not start order)."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add()
    scope_spans.resource.attributes.add(key="service.name").value.string_value = "long-runner"
    spans = scope_spans.scope_spans.add().spans
    for n in range(LONG_SPANS, 0, -1):
        start = seed.BASE_NS + n * 1_000_000
        span = spans.add(trace_id=LONG_TRACE, span_id=n.to_bytes(8, "big"), name=f"step {n}",
                         start_time_unix_nano=start, end_time_unix_nano=start + 500_000)
        if n > 1:
            span.parent_span_id = (1).to_bytes(8, "big")
        if n == 1:
            for i in range(CROWDED):
                span.events.add(time_unix_nano=start + i, name=f"tick {i}")
        if n == 2:
            for i in range(CROWDED):
                span.links.add(trace_id=seed.tid(1), span_id=(i + 1).to_bytes(8, "big"))
    return request


@pytest.fixture(scope="module")
async def long_trace() -> AsyncIterator[Database]:
    database = create_database("obs_tempo_long")
    try:
        async with await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True) as conn:
            assert await SpanWriter(conn).write(request_rows(long_trace_request())) == LONG_SPANS
        yield database
    finally:
        drop_database(database.name)


def spans_in(data: TracesData) -> list[Any]:
    return [span for rs in data.resource_spans for ss in rs.scope_spans for span in ss.spans]


@pytest.mark.parametrize("path", ["/api/traces/", "/api/v2/traces/"])
async def test_a_trace_over_the_limit_is_answered_bounded_and_says_so(make_client: ClientFactory, long_trace: Database, path: str) -> None:
    client = await make_client(long_trace, tempo_trace_max_spans=LONG_LIMIT)
    answer = await client.get(path + LONG_TRACE.hex(), headers={**AUTH, "Accept": "application/protobuf"})
    assert answer.status == 200 and answer.content_type == "application/protobuf"
    said = f"spans={LONG_LIMIT} of {LONG_SPANS}, events={4 * LONG_LIMIT}, links={4 * LONG_LIMIT}"
    assert answer.headers["X-Observatory-Truncated"] == said
    body = await answer.read()
    if path == "/api/v2/traces/":  # tempopb.TraceByIDResponse: trace (1), status (3) PARTIAL = 1, message (4)
        length, at = _DecodeVarint32(body, 1)
        trace_bytes, rest = body[at:at + length], body[at + length:]
        assert body[0] == 0x0A and rest[:2] == b"\x18\x01" and rest[2] == 0x22
        message_length, message_at = _DecodeVarint32(rest, 3)
        message = rest[message_at:].decode()
        assert message_at + message_length == len(rest)
        assert "partial" in message and "API_TEMPO_TRACE_MAX_SPANS" in message and said in message
        body = trace_bytes
    spans = spans_in(TracesData.FromString(body))
    # the earliest spans by start time, whatever order they were stored in
    assert [int.from_bytes(s.span_id, "big") for s in spans] == sorted(int.from_bytes(s.span_id, "big") for s in spans)
    assert sorted(int.from_bytes(s.span_id, "big") for s in spans) == list(range(1, LONG_LIMIT + 1))
    root = next(s for s in spans if s.span_id == (1).to_bytes(8, "big"))
    linking = next(s for s in spans if s.span_id == (2).to_bytes(8, "big"))
    assert [e.name for e in root.events] == [f"tick {i}" for i in range(4 * LONG_LIMIT)]
    assert [int.from_bytes(link.span_id, "big") for link in linking.links] == list(range(1, 4 * LONG_LIMIT + 1))
    assert all(s.trace_id == LONG_TRACE for s in spans)


async def test_a_cut_trace_in_json_says_partial_and_a_whole_one_does_not(
    make_client: ClientFactory, long_trace: Database, capsys: pytest.CaptureFixture[str],
) -> None:
    client = await make_client(long_trace, tempo_trace_max_spans=LONG_LIMIT)
    v2 = await client.get(f"/api/v2/traces/{LONG_TRACE.hex()}", headers=AUTH)
    logged = "".join(capsys.readouterr())
    assert "tempo trace answer truncated" in logged and LONG_TRACE.hex() in logged and f"spans={LONG_LIMIT} of {LONG_SPANS}" in logged
    document = await v2.json()
    assert document["status"] == "PARTIAL" and f"spans={LONG_LIMIT} of {LONG_SPANS}" in document["message"]
    assert len([s for rs in document["trace"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]) == LONG_LIMIT
    v1 = await client.get(f"/api/traces/{LONG_TRACE.hex()}", headers=AUTH)
    assert v1.headers["X-Observatory-Truncated"].startswith(f"spans={LONG_LIMIT} of {LONG_SPANS}")
    assert set(await v1.json()) == {"resourceSpans"}  # v1 is bare TracesData: the header is its only signal

    whole = await make_client(long_trace, tempo_trace_max_spans=LONG_SPANS)  # events and links fit as well
    answer = await whole.get(f"/api/v2/traces/{LONG_TRACE.hex()}", headers={**AUTH, "Accept": "application/protobuf"})
    body = await answer.read()
    length, at = _DecodeVarint32(body, 1)
    assert "X-Observatory-Truncated" not in answer.headers and at + length == len(body)
    spans = spans_in(TracesData.FromString(body[at:]))
    assert len(spans) == LONG_SPANS and sum(len(s.events) for s in spans) == sum(len(s.links) for s in spans) == CROWDED


async def test_health_answers_while_long_traces_are_read_through_tempo(make_client: ClientFactory, long_trace: Database) -> None:
    client = await make_client(long_trace, tempo_trace_max_spans=LONG_LIMIT)
    reads = [asyncio.ensure_future(client.get(f"/api/traces/{LONG_TRACE.hex()}", headers={**AUTH, "Accept": "application/protobuf"}))
             for _ in range(8)]
    started = time.monotonic()
    health = await client.get("/api/v1/health")
    health_seconds = time.monotonic() - started
    responses = await asyncio.gather(*reads)
    assert health.status == 200 and health_seconds < 2, health_seconds
    for response in responses:
        assert response.status == 200 and len(spans_in(TracesData.FromString(await response.read()))) == LONG_LIMIT


async def test_a_whole_trace_carries_no_truncation_mark(tempo: TestClient) -> None:
    for path in ("/api/traces/", "/api/v2/traces/"):
        answer = await tempo.get(path + TRACES[0], headers=AUTH)
        assert answer.status == 200 and "X-Observatory-Truncated" not in answer.headers
        assert "status" not in await answer.json()
