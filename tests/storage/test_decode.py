"""Protobuf → COPY rows: ids, times, attributes as JSON, LLM columns, events and links."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from common.otlp import key_value as kv
from storage.decode import EVENT_COLUMNS, LINK_COLUMNS, SPAN_COLUMNS, UndecodableEntry, decode

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")
PARENT = bytes.fromhex("00f067aa0ba902b7")


def request(**span_fields: object) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "checkout"), kv("host.name", "h1")])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "openai.instrumentation", "0.3"
    span = ss.spans.add(
        trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT, name="chat", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_123_456_789, end_time_unix_nano=1_700_000_001_000_000_001,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"), trace_state="k=v", flags=0x301,
    )
    for key, value in span_fields.items():
        setattr(span, key, value)
    return req


def column(row: tuple, name: str) -> object:
    return row[SPAN_COLUMNS.index(name)]


def test_span_row_carries_ids_times_and_envelope() -> None:
    rows = decode(request().SerializeToString())
    assert len(rows.spans) == 1
    row = rows.spans[0]
    assert len(row) == len(SPAN_COLUMNS)
    assert (column(row, "trace_id"), column(row, "span_id"), column(row, "parent_span_id")) == (TRACE, SPAN, PARENT)
    assert column(row, "name") == "chat" and column(row, "kind") == 3
    assert (column(row, "status_code"), column(row, "status_message")) == (2, "boom")
    assert column(row, "service_name") == "checkout"
    assert (column(row, "scope_name"), column(row, "scope_version")) == ("openai.instrumentation", "0.3")
    assert column(row, "start_time_unix_nano") == 1_700_000_000_123_456_789
    assert column(row, "end_time_unix_nano") == 1_700_000_001_000_000_001
    assert (column(row, "trace_state"), column(row, "flags")) == ("k=v", 0x301)
    assert orjson.loads(column(row, "resource_attributes")) == {"service.name": "checkout", "host.name": "h1"}
    assert rows.min_start_ns == rows.max_start_ns == 1_700_000_000_123_456_789


def test_attribute_values_become_json() -> None:
    req = request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.extend([
        kv("s", "text"), kv("i", -42), kv("big", 2**62), kv("d", 0.25), kv("b", True),
        kv("arr", [1, "two", 3.5]), kv("map", {"inner": {"x": 1}}), kv("raw", b"\x00\xff"),
        kv("nul", "a\x00b"), kv("nan", float("nan")),
    ])
    attrs = orjson.loads(column(decode(req.SerializeToString()).spans[0], "attributes"))
    assert attrs == {
        "s": "text", "i": -42, "big": 2**62, "d": 0.25, "b": True, "arr": [1, "two", 3.5],
        "map": {"inner": {"x": 1}}, "raw": "AP8=", "nul": "a\ufffdb", "nan": "nan",
    }


def test_empty_and_zero_values_keep_their_kind() -> None:
    # decode reads strings and ints without asking which field is set; the zero values of every
    # kind must still come out as that kind, and an unset value as null.
    req = request()
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend([kv("s", ""), kv("i", 0), kv("d", 0.0), kv("b", False), kv("arr", []), kv("map", {})])
    span.attributes.add(key="unset")
    raw = column(decode(req.SerializeToString()).spans[0], "attributes")
    attrs = orjson.loads(raw)
    assert attrs == {"s": "", "i": 0, "d": 0.0, "b": False, "arr": [], "map": {}, "unset": None}
    assert b'"i":0,' in raw and b'"d":0.0,' in raw  # an int stays an int, a double a double


def test_root_span_has_no_parent_and_missing_service_is_named() -> None:
    req = request(parent_span_id=b"")
    del req.resource_spans[0].resource.attributes[:]
    row = decode(req.SerializeToString()).spans[0]
    assert column(row, "parent_span_id") is None
    assert column(row, "service_name") == "unknown_service"


def test_genai_attributes_fill_llm_columns() -> None:
    req = request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.extend([
        kv("gen_ai.provider.name", "anthropic"), kv("gen_ai.request.model", "claude-sonnet-4"),
        kv("gen_ai.response.model", "claude-sonnet-4-20250514"), kv("gen_ai.operation.name", "chat"),
        kv("gen_ai.usage.input_tokens", 1000), kv("gen_ai.usage.output_tokens", 200),
        kv("gen_ai.usage.cache_read.input_tokens", 300), kv("llm.cost.prompt", 0.003), kv("llm.cost.completion", 0.003),
    ])
    row = decode(req.SerializeToString()).spans[0]
    assert column(row, "llm_provider") == "anthropic"
    assert (column(row, "llm_request_model"), column(row, "llm_response_model")) == ("claude-sonnet-4", "claude-sonnet-4-20250514")
    assert column(row, "llm_operation") == "chat"
    assert (column(row, "input_tokens"), column(row, "output_tokens"), column(row, "total_tokens")) == (1000, 200, 1200)
    assert column(row, "cache_read_tokens") == 300
    assert column(row, "cost_total_usd") == Decimal("0.006")


def test_openinference_names_are_read_where_genai_is_absent() -> None:
    req = request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.extend([
        kv("llm.system", "openai"), kv("llm.model_name", "gpt-4o"), kv("llm.token_count.prompt", "12"),
        kv("llm.token_count.completion", 3), kv("llm.token_count.total", 15),
    ])
    row = decode(req.SerializeToString()).spans[0]
    assert (column(row, "llm_provider"), column(row, "llm_response_model")) == ("openai", "gpt-4o")
    assert (column(row, "input_tokens"), column(row, "output_tokens"), column(row, "total_tokens")) == (12, 3, 15)


def test_events_and_links_become_their_own_rows() -> None:
    req = request()
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.events.add(time_unix_nano=1_700_000_000_500_000_000, name="exception", attributes=[kv("exception.message", "x")])
    span.events.add(time_unix_nano=1_700_000_000_600_000_000, name="second")
    span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, trace_state="a=b", attributes=[kv("why", "retry")])
    rows = decode(req.SerializeToString())
    assert [r[EVENT_COLUMNS.index("event_index")] for r in rows.events] == [0, 1]
    assert rows.events[0][EVENT_COLUMNS.index("name")] == "exception"
    assert orjson.loads(rows.events[0][EVENT_COLUMNS.index("attributes")]) == {"exception.message": "x"}
    link = rows.links[0]
    assert (link[LINK_COLUMNS.index("linked_trace_id")], link[LINK_COLUMNS.index("linked_span_id")]) == (b"\x01" * 16, b"\x02" * 8)
    assert link[LINK_COLUMNS.index("trace_state")] == "a=b"


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05abc"])
def test_garbage_is_undecodable(body: bytes) -> None:
    with pytest.raises(UndecodableEntry):
        decode(body)


def test_bad_id_lengths_are_undecodable() -> None:
    with pytest.raises(UndecodableEntry, match="3-byte trace id"):
        decode(request(trace_id=b"abc").SerializeToString())


def test_times_beyond_a_bigint_are_undecodable() -> None:
    with pytest.raises(UndecodableEntry, match="past year 2262"):
        decode(request(end_time_unix_nano=2**63).SerializeToString())
    req = request()
    req.resource_spans[0].scope_spans[0].spans[0].events.add(time_unix_nano=2**64 - 1, name="late")
    with pytest.raises(UndecodableEntry, match="event 0 of span [0-9a-f]{16} has a time past year 2262"):
        decode(req.SerializeToString())


def test_values_plain_json_cannot_hold_are_kept_exactly_beside_it() -> None:
    req = request()
    rs = req.resource_spans[0]
    rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
    rs.resource.dropped_attributes_count = 2
    rs.resource.attributes.append(kv("host.id", b"\x01\x02"))
    ss = rs.scope_spans[0]
    ss.schema_url = "https://example.com/scope"
    ss.scope.attributes.extend([kv("scope.ratio", 2.0), kv("scope.name", "x")])
    ss.scope.dropped_attributes_count = 1
    span = ss.spans[0]
    span.attributes.extend([
        kv("frac", 0.25), kv("whole", 3.0), kv("nan", float("nan")), kv("inf", float("inf")), kv("-inf", float("-inf")),
        kv("-zero", -0.0), kv("raw", b"\x00\xff"), kv("plain.list", [1, "a"]), kv("list", [1, 2.0]),
        kv("map", {"m": {"b": b"!"}}), kv("int", 7), kv("text", "t"),
    ])
    span.events.add(name="e", time_unix_nano=1).attributes.append(kv("x", float("-inf")))
    span.links.add(trace_id=TRACE, span_id=SPAN).attributes.append(kv("y", b""))
    rows = decode(req.SerializeToString())
    row = rows.spans[0]
    assert column(row, "resource_schema_url") == "https://opentelemetry.io/schemas/1.26.0"
    assert (column(row, "resource_dropped_attributes_count"), column(row, "scope_dropped_attributes_count")) == (2, 1)
    assert column(row, "scope_schema_url") == "https://example.com/scope"
    assert orjson.loads(column(row, "scope_attributes")) == {"scope.ratio": 2.0, "scope.name": "x"}
    assert orjson.loads(column(row, "exact_values")) == {
        "attributes": {
            "whole": {"doubleValue": 3.0}, "nan": {"doubleValue": "NaN"}, "inf": {"doubleValue": "Infinity"},
            "-inf": {"doubleValue": "-Infinity"}, "-zero": {"doubleValue": "-0.0"}, "raw": {"bytesValue": "AP8="},
            "list": {"arrayValue": {"values": [{"intValue": "1"}, {"doubleValue": 2.0}]}},
            "map": {"kvlistValue": {"values": [{"key": "m", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"bytesValue": "IQ=="}}]}}}]}},
        },
        "resource_attributes": {"host.id": {"bytesValue": "AQI="}},
        "scope_attributes": {"scope.ratio": {"doubleValue": 2.0}},
    }
    assert orjson.loads(rows.events[0][EVENT_COLUMNS.index("exact_values")]) == {"attributes": {"x": {"doubleValue": "-Infinity"}}}
    assert orjson.loads(rows.links[0][LINK_COLUMNS.index("exact_values")]) == {"attributes": {"y": {"bytesValue": ""}}}


def test_spans_whose_values_are_all_exact_store_no_exact_values() -> None:
    req = request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.extend([kv("d", 0.5), kv("i", 0), kv("s", ""), kv("l", [1, "x", 0.5])])
    row = decode(req.SerializeToString()).spans[0]
    assert column(row, "exact_values") is None and column(row, "scope_attributes") is None
    assert column(row, "resource_schema_url") is None and column(row, "scope_schema_url") is None
