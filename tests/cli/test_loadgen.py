"""The load generator: exact counts, the promised shape, determinism, and the OTLP/JSON encoding."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import orjson
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cli.loadgen import BUILT_IN, Profile, Stats, TraceFactory, plan
from cli.loadgen.models import choose, from_pricing
from collector.receivers.otlp_json import encode_request
from common.otlp import attributes

END = 1_780_000_000 * 1_000_000_000


def build(**overrides: object) -> tuple[list[ExportTraceServiceRequest], Stats, Profile]:
    profile = Profile(**{"count": 3000, "end_ns": END, "seed": 11, **overrides})  # type: ignore[arg-type]
    stats = Stats()
    requests = [b.request for b in TraceFactory(profile).batches(plan(profile), 0, stats)]
    return requests, stats, profile


def spans_of(requests: list[ExportTraceServiceRequest]) -> list[tuple[dict, Span]]:
    return [(attributes(rs.resource.attributes), span) for r in requests for rs in r.resource_spans
            for ss in rs.scope_spans for span in ss.spans]


@pytest.mark.parametrize("count", [1, 2, 7, 999, 3001])
def test_exactly_the_requested_number_of_spans(count: int) -> None:
    requests, stats, _ = build(count=count)
    assert len(spans_of(requests)) == count == stats.spans


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first = [r.SerializeToString(deterministic=True) for r in build()[0]]
    again = [r.SerializeToString(deterministic=True) for r in build()[0]]
    other = [r.SerializeToString(deterministic=True) for r in build(seed=12)[0]]
    assert first == again
    assert first != other


def test_a_slice_of_the_plan_builds_the_same_traces_as_the_whole() -> None:
    profile = Profile(count=2000, end_ns=END, seed=5)
    sizes = plan(profile)
    whole = spans_of([b.request for b in TraceFactory(profile).batches(sizes)])
    tail = spans_of([b.request for b in TraceFactory(profile).batches(sizes[100:], 100)])
    assert len(tail) == sum(sizes[100:])
    assert {s.SerializeToString() for _, s in tail} <= {s.SerializeToString() for _, s in whole}


def test_traces_have_the_promised_shape() -> None:
    requests, stats, profile = build(count=6000, services=4, days=3)
    spans = spans_of(requests)
    by_trace: dict[bytes, list[Span]] = {}
    for _, span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == stats.traces
    for trace in by_trace.values():
        roots = [s for s in trace if not s.parent_span_id]
        assert len(roots) == 1 and roots[0].kind == Span.SPAN_KIND_SERVER and roots[0].name.startswith("POST /v1/")
        assert all(s.parent_span_id == roots[0].span_id for s in trace if s is not roots[0])
        assert all(roots[0].start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano for s in trace)
    assert {r["service.name"] for r, _ in spans} == {"support-chat", "kb-search", "agent-runner", "doc-summarizer"}
    oldest = min(s.start_time_unix_nano for _, s in spans)
    assert END - 3 * 86_400 * 10**9 <= oldest and max(s.start_time_unix_nano for _, s in spans) <= END + 3600 * 10**9

    chats = [s for _, s in spans if s.name.startswith("chat ")]
    names = {m.request for m in BUILT_IN}
    for span in chats:
        attrs = attributes(span.attributes)
        assert attrs["gen_ai.request.model"] in names and attrs["gen_ai.provider.name"]
        assert attrs["gen_ai.operation.name"] == "chat"
        assert span.status.code == Status.STATUS_CODE_ERROR or attrs["gen_ai.usage.output_tokens"] > 0
    sizes = [s.ByteSize() for s in chats]
    assert 1200 <= sum(sizes) / len(sizes) <= 2500  # about 1.5 KB of attributes and text a call
    counts = [len(s.attributes) for s in chats if s.status.code != Status.STATUS_CODE_ERROR]
    assert 18 <= sum(counts) / len(counts) <= 24
    assert {s.name.split()[0] for _, s in spans} >= {"POST", "SELECT", "embeddings", "vector_search", "chat", "execute_tool"}


def test_errors_slow_traces_and_pii_come_at_the_set_rates() -> None:
    _, stats, _ = build(count=20000, error_rate=0.1, slow_rate=0.05, pii_rate=0.2)
    assert 0.07 < stats.error_traces / stats.traces < 0.13
    assert 0.03 < stats.slow_traces / stats.traces < 0.07
    assert 0.16 < sum(stats.pii.values()) / stats.traces < 0.24
    assert stats.events == stats.error_traces  # one exception event per failed call
    none, quiet, _ = build(count=2000, error_rate=0, slow_rate=0, pii_rate=0)
    assert quiet.error_traces == quiet.slow_traces == sum(quiet.pii.values()) == 0
    assert all(s.status.code != Status.STATUS_CODE_ERROR for _, s in spans_of(none))


def test_failed_calls_carry_an_exception_event_and_fail_the_root() -> None:
    requests, _, _ = build(count=2000, error_rate=1.0)
    spans = spans_of(requests)
    failed = [s for _, s in spans if s.name.startswith("chat ") and s.status.code == Status.STATUS_CODE_ERROR]
    assert failed
    for span in failed:
        assert [e.name for e in span.events] == ["exception"]
        assert "exception.type" in attributes(span.events[0].attributes)
    roots = [s for _, s in spans if not s.parent_span_id]
    assert all(s.status.code == Status.STATUS_CODE_ERROR for s in roots if len(s.name) and s.end_time_unix_nano)


def test_otlp_json_has_hex_ids_and_integer_enums_and_round_trips() -> None:
    request = build(count=50)[0][0]
    document = orjson.loads(encode_request(request))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16) >= 0
    assert isinstance(span["kind"], int)
    for rs in document["resourceSpans"]:  # back to the generic mapping, then compare with the original
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    assert ParseDict(document, ExportTraceServiceRequest()) == request


def test_models_come_from_a_pricing_table_when_it_has_literal_names(tmp_path: Path) -> None:
    table = tmp_path / "pricing.json"
    table.write_text(json.dumps({"models": [
        {"model": "gpt-5-mini", "provider": "openai", "input": 0.25, "output": 2.0},
        {"pattern": "^claude-.*", "input": 3, "output": 15},
        {"model": "claude-haiku-4-5", "input": 1, "output": 5},
    ]}))
    assert [m.request for m in from_pricing(table)] == ["gpt-5-mini", "claude-haiku-4-5"]
    models, source = choose((table,))
    assert source == str(table) and {m.request for m in models if not m.embedding} == {"gpt-5-mini", "claude-haiku-4-5"}
    assert any(m.embedding for m in models)
    assert choose((tmp_path / "absent.json",)) == (BUILT_IN, "built-in list")
    (tmp_path / "bad.json").write_text("{not json")
    assert choose((tmp_path / "bad.json",))[1] == "built-in list"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"error_rate": 1.5}, "error rate must be between 0 and 1"), ({"services": 0}, "services"),
     ({"days": 0}, "days > 0")],
)
def test_a_bad_profile_is_refused_with_a_reason(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Profile(**{"count": 10, "end_ns": END, **overrides})  # type: ignore[arg-type]
