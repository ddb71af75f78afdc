"""What was sent is what comes back: requests holding every OTLP trace field and every
AnyValue kind, with extremes, go through the real collector and writer and are read back as
OTLP protobuf from the Tempo endpoint; they must equal what was sent, field for field,
apart from the normalizations docs/EXPLORER.md lists (spans regrouped under equal resources
and scopes, attribute keys in any order). Redaction and the cost stage are off here (both
change attributes on purpose; their own tests cover them)."""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status, TracesData

from tests.conftest import Database
from tests.e2e.conftest import Stack, start_stack
from tests.support import wait_for

pytestmark = pytest.mark.e2e

T0 = 1_700_000_000_123_456_789  # far from now is fine: the trace is read by id


@pytest.fixture
def plain_stack(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(fresh_database, redis_prefix, tmp_path, ENABLE_PII_DETECTION="false", ENABLE_COST_CALCULATION="false")
    yield running
    running.stop()


def av(**field: object) -> AnyValue:
    return AnyValue(**field)  # type: ignore[arg-type]


def every_kind() -> list[KeyValue]:
    """Every AnyValue kind, with the values plain JSON gets wrong."""
    nested = AnyValue()
    nested.kvlist_value.values.extend([
        KeyValue(key="inner.bytes", value=av(bytes_value=b"\x00\xff")),
        KeyValue(key="inner.list", value=AnyValue(array_value={"values": [av(double_value=2.0), av(string_value="x"), AnyValue()]})),
        KeyValue(key="inner.map", value=AnyValue(kvlist_value={"values": [KeyValue(key="deep", value=av(int_value=-1))]})),
    ])
    values = {
        "str": av(string_value="plain text"), "str.empty": av(string_value=""), "str.unicode": av(string_value="naïve ☃ 🚀 \u200b"),
        "str.long": av(string_value="x" * 20_000), "str.json-like": av(string_value='{"not": "an object"}'),
        "bool.true": av(bool_value=True), "bool.false": av(bool_value=False),
        "int.zero": av(int_value=0), "int.max": av(int_value=2**63 - 1), "int.min": av(int_value=-(2**63)), "int.neg": av(int_value=-42),
        "double.frac": av(double_value=1.5), "double.tiny": av(double_value=5e-324), "double.big": av(double_value=1.7976931348623157e308),
        "double.integral": av(double_value=3.0), "double.zero": av(double_value=0.0), "double.negzero": av(double_value=-0.0),
        "double.nan": av(double_value=math.nan), "double.inf": av(double_value=math.inf), "double.-inf": av(double_value=-math.inf),
        "double.tenth": av(double_value=0.1), "double.2^60": av(double_value=2.0**60),
        "bytes": av(bytes_value=bytes(range(256))), "bytes.empty": av(bytes_value=b""), "bytes.text": av(bytes_value=b"looks like text"),
        "array.empty": AnyValue(array_value={}), "array.mixed": AnyValue(array_value={"values": [
            av(int_value=1), av(double_value=1.0), av(string_value="1"), av(bool_value=True), AnyValue(), av(bytes_value=b"\x01")]}),
        "array.strings": AnyValue(array_value={"values": [av(string_value="a"), av(string_value="b")]}),
        "kvlist.empty": AnyValue(kvlist_value={}), "kvlist.nested": nested,
        "empty": AnyValue(),
    }
    return [KeyValue(key=k, value=v) for k, v in values.items()]


def full_request(trace_id: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r, service in enumerate(("round-trip", "round-trip-2")):
        rs = request.resource_spans.add(schema_url=f"https://opentelemetry.io/schemas/1.2{r}.0")
        rs.resource.attributes.extend([KeyValue(key="service.name", value=av(string_value=service)), *every_kind()])
        rs.resource.dropped_attributes_count = 3 + r
        for s, scope_name in enumerate(("scope.a", "scope.b")):
            scope_spans = rs.scope_spans.add(schema_url=f"https://example.com/scope-schema/{s}" if s == 0 else "")
            scope_spans.scope.name = scope_name
            scope_spans.scope.version = "1.2.3" if s == 0 else ""
            scope_spans.scope.attributes.extend(every_kind()[:12] if s == 0 else [])
            scope_spans.scope.dropped_attributes_count = 7 * s
            for kind in range(6):
                n = r * 100 + s * 10 + kind
                span = scope_spans.spans.add(
                    trace_id=trace_id, span_id=(0xC0FFEE00 + n).to_bytes(8, "big"),
                    parent_span_id=b"" if n == 0 else (0xC0FFEE00).to_bytes(8, "big"),
                    trace_state="rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" if kind % 2 else "",
                    flags=[0, 1, 0x101, 0x301, 0xFFFFFFFF, 0x100][kind],
                    name=f"span {n} ✓", kind=kind,
                    start_time_unix_nano=T0 + n * 1_000_003, end_time_unix_nano=T0 + n * 1_000_003 + 999_999_999,
                    dropped_attributes_count=kind, dropped_events_count=2 * kind, dropped_links_count=2**32 - 1 if kind == 5 else 0,
                )
                span.attributes.extend(every_kind())
                if kind % 3:  # an empty status comes back absent (docs/EXPLORER.md): protobuf cannot tell them apart by value
                    span.status.CopyFrom(Status(code=kind % 3, message="boom: 💥" if kind % 3 == 2 else ""))
                if kind % 2 == 0:
                    event = span.events.add(time_unix_nano=T0 + n, name="exception", dropped_attributes_count=1)
                    event.attributes.extend(every_kind())
                    span.events.add(time_unix_nano=T0 + n + 5, name="")
                if kind % 3 == 0:
                    link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8)), trace_state="k=v", flags=0x301,
                                          dropped_attributes_count=4)
                    link.attributes.extend(every_kind())
                    span.links.add(trace_id=trace_id, span_id=(0xC0FFEE00).to_bytes(8, "big"))
    return request


SPEC_EXAMPLE = {  # opentelemetry-proto examples/trace.json (the specification's OTLP/JSON example)
    "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
        "scopeSpans": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
            "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "parentSpanId": "EEE19B7EC3C1B173",
                "name": "I'm a server span", "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
                "kind": 2, "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
            }],
        }],
    }],
}


def post(stack: Stack, body: bytes, content_type: str) -> None:
    request = urllib.request.Request(stack.http_url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        if content_type == "application/json":
            assert json.loads(answer.read() or b"{}").get("partialSuccess", {}).get("rejectedSpans", 0) in (0, "0")


def read_back(stack: Stack, trace_id: str, spans: int) -> TracesData:
    def arrived() -> TracesData | None:
        request = urllib.request.Request(f"http://127.0.0.1:{stack.api_port}/api/traces/{trace_id}",
                                         headers={**stack.api_headers, "Accept": "application/protobuf"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                assert answer.headers["Content-Type"].startswith("application/protobuf")
                data = TracesData.FromString(answer.read())
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc.read()
            return None
        count = sum(len(ss.spans) for rs in data.resource_spans for ss in rs.scope_spans)
        return data if count >= spans else None

    return wait_for(arrived, 30, 0.2, f"trace {trace_id} with {spans} spans from the Tempo endpoint")


def _sorted_attrs(kvs) -> None:  # type: ignore[no-untyped-def]
    ordered = sorted(kvs, key=lambda kv: kv.key)
    copies = [KeyValue().__class__.FromString(kv.SerializeToString()) for kv in ordered]
    del kvs[:]
    for kv in copies:
        _sort_value(kv.value)
        kvs.append(kv)


def _sort_value(value: AnyValue) -> None:
    if value.HasField("kvlist_value"):
        _sorted_attrs(value.kvlist_value.values)
    elif value.HasField("array_value"):
        for v in value.array_value.values:
            _sort_value(v)


def flatten(resource_spans: list[ResourceSpans]) -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope + schema URL, span) per span, attribute keys sorted at every depth,
    each serialized deterministically: equal bytes mean equal messages, NaN included."""
    found = []
    for rs in resource_spans:
        resource = rs.resource.__class__.FromString(rs.resource.SerializeToString())
        _sorted_attrs(resource.attributes)
        resource_key = resource.SerializeToString(deterministic=True) + b"|" + rs.schema_url.encode()
        for ss in rs.scope_spans:
            scope = ss.scope.__class__.FromString(ss.scope.SerializeToString())
            _sorted_attrs(scope.attributes)
            scope_key = scope.SerializeToString(deterministic=True) + b"|" + ss.schema_url.encode()
            for span in ss.spans:
                copy = Span.FromString(span.SerializeToString())
                _sorted_attrs(copy.attributes)
                for event in copy.events:
                    _sorted_attrs(event.attributes)
                for link in copy.links:
                    _sorted_attrs(link.attributes)
                found.append((resource_key, scope_key, copy.SerializeToString(deterministic=True)))
    return sorted(found)


def test_every_field_and_value_kind_comes_back_as_sent(plain_stack: Stack) -> None:
    trace_id = bytes.fromhex("0123456789abcdef0123456789abcdef")
    sent = full_request(trace_id)
    post(plain_stack, sent.SerializeToString(), "application/x-protobuf")
    back = read_back(plain_stack, trace_id.hex(), 24)
    expected, got = flatten(list(sent.resource_spans)), flatten(list(back.resource_spans))
    assert len(got) == len(expected) == 24
    for want, have in zip(expected, got):
        if want != have:  # name the first field that differs
            w, h = Span.FromString(want[2]), Span.FromString(have[2])
            assert json_format.MessageToDict(h) == json_format.MessageToDict(w)
        assert want == have
    # a few values spelled out, so a failure reads plainly
    first = next(s for rs in back.resource_spans for ss in rs.scope_spans for s in ss.spans if s.span_id == (0xC0FFEE00).to_bytes(8, "big"))
    attrs = {kv.key: kv.value for kv in first.attributes}
    assert math.isnan(attrs["double.nan"].double_value) and attrs["double.inf"].double_value == math.inf
    assert attrs["double.integral"].WhichOneof("value") == "double_value" and attrs["int.max"].int_value == 2**63 - 1
    assert math.copysign(1, attrs["double.negzero"].double_value) == -1
    assert attrs["bytes"].bytes_value == bytes(range(256)) and attrs["empty"].WhichOneof("value") is None
    assert {rs.schema_url for rs in back.resource_spans} == {"https://opentelemetry.io/schemas/1.20.0", "https://opentelemetry.io/schemas/1.21.0"}


def test_the_specifications_json_example_comes_back_as_sent(plain_stack: Stack) -> None:
    post(plain_stack, json.dumps(SPEC_EXAMPLE).encode(), "application/json")
    back = read_back(plain_stack, "5b8efff798038103d269b633813fc60c", 1)
    sent = ExportTraceServiceRequest()
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    for rs in doc["resourceSpans"]:  # OTLP/JSON ids are hex; the protobuf JSON mapping reads base64
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    span[field] = __import__("base64").b64encode(bytes.fromhex(span[field])).decode()
    json_format.ParseDict(doc, sent)
    assert flatten(list(back.resource_spans)) == flatten(list(sent.resource_spans))
    status, answer = plain_stack.api_get("/api/traces/5b8efff798038103d269b633813fc60c")  # OTLP/JSON form
    assert status == 200
    span = answer["resourceSpans"][0]["scopeSpans"][0]["spans"][0]  # type: ignore[index]
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c" and span["parentSpanId"] == "eee19b7ec3c1b173"
    assert answer["resourceSpans"][0]["scopeSpans"][0]["scope"]["attributes"] == SPEC_EXAMPLE["resourceSpans"][0]["scopeSpans"][0]["scope"]["attributes"]  # type: ignore[index]
