"""Property: whatever mix of ordinary and edge values an export request carries, every span
is either stored or counted as rejected in the answer the client got; none is silently
lost, none is dead-lettered, and the writer keeps running.

Generated requests go through the real collector (OTLP/HTTP, protobuf or JSON) and writer:
extreme ints and times, NUL and control characters, huge texts and keys, nested values,
invalid and all-zero ids.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import orjson
import psycopg
import pytest
import redis as redis_sync
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.receivers.otlp_json import encode_request
from common.stream import StreamKeys
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Stack, own_stack
from tests.support import http_post, wait_for

pytestmark = pytest.mark.e2e
NOW = time.time_ns()
INT64 = 2**63 - 1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("property")) as running:
        yield running


texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from("a\x00\x01\x1f\x7fé€😀\u2028\ufffd"), max_size=40),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "😀", "\x00"]), st.integers(500, 3000)),
)
ints = st.one_of(st.integers(-(2**63), INT64), st.sampled_from([0, -1, INT64, -(2**63), 2**62, 10**9 + 1]))
times = st.one_of(
    st.integers(NOW - 10**12, NOW + 10**12),
    st.sampled_from([0, 1, INT64, 2**63, 2**64 - 1, NOW + 8 * 86_400 * 10**9, NOW + 3 * 86_400 * 10**9]),
)
_trace_id = st.binary(min_size=16, max_size=16)
# Mostly well-formed, so that the rest of the span is tried too (a wrong-length id in OTLP/JSON
# refuses the whole request, as the specification says).
ids16 = st.one_of(_trace_id, _trace_id, _trace_id, _trace_id, st.just(bytes(16)), st.binary(max_size=20))
parents = st.one_of(st.just(b""), st.just(bytes(8)), st.binary(min_size=8, max_size=8), st.binary(max_size=12))


def values(depth: int = 0) -> st.SearchStrategy:
    scalars = st.one_of(texts, ints, st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.binary(max_size=30))
    if depth >= 3:
        return scalars
    return st.one_of(scalars, st.lists(values(depth + 1), max_size=3),
                     st.dictionaries(texts, values(depth + 1), max_size=3))


def to_any(value: object, out: AnyValue) -> None:
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()
        for item in value:
            to_any(item, out.array_value.values.add())
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        for key, item in value.items():
            to_any(item, out.kvlist_value.values.add(key=key).value)
    else:
        out.string_value = str(value)


GENAI_KEYS = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.total", "gen_ai.request.model",
              "gen_ai.response.model", "gen_ai.system", "gen_ai.operation.name", "gen_ai.provider.name"]
keys = st.one_of(st.sampled_from(GENAI_KEYS), texts, st.builds(lambda n: "k" * n, st.integers(1000, 10_000)))
attributes = st.dictionaries(keys, st.one_of(values(), ints, texts), max_size=4)


@st.composite
def spans(draw: st.DrawFn, index: int) -> dict:
    ordinary = draw(st.booleans())
    span: dict = {"index": index, "name": f"ordinary-{index}" if ordinary else draw(texts)}
    span["trace_id"] = os.urandom(16) if ordinary else draw(ids16)
    span["span_id"] = "unique"  # made unique per span below, unless drawn invalid
    if not ordinary and draw(st.integers(0, 4)) == 0:
        span["span_id"] = draw(st.sampled_from([bytes(8), b"", b"\x01\x02\x03"]))
    span["parent"] = b"" if ordinary else draw(parents)
    span["start"] = NOW if ordinary else draw(times)
    span["end"] = NOW + 1000 if ordinary else draw(times)
    span["attributes"] = {} if ordinary else draw(attributes)
    span["events"] = [] if ordinary else draw(st.lists(st.tuples(times, texts), max_size=2))
    span["status"] = "" if ordinary else draw(texts)
    return span


@st.composite
def requests(draw: st.DrawFn) -> tuple[ExportTraceServiceRequest, list[bytes]]:
    req = ExportTraceServiceRequest()
    marker = os.urandom(4)
    span_ids = []
    for resource_index in range(draw(st.integers(1, 2))):
        rs = req.resource_spans.add()
        service = draw(st.one_of(st.just("property-test"), texts, ints, values()))
        to_any(service, rs.resource.attributes.add(key="service.name").value)
        scope = rs.scope_spans.add()
        scope.scope.name = draw(texts)
        for n in range(draw(st.integers(1, 4))):
            drawn = draw(spans(n))
            span_id = drawn["span_id"] if drawn["span_id"] != "unique" else marker + bytes([resource_index, n, 0, 1])
            span = scope.spans.add(trace_id=drawn["trace_id"], span_id=span_id, parent_span_id=drawn["parent"],
                                   name=drawn["name"], start_time_unix_nano=drawn["start"], end_time_unix_nano=drawn["end"])
            span.status.message = drawn["status"]
            for key, value in drawn["attributes"].items():
                to_any(value, span.attributes.add(key=key).value)
            for when, name in drawn["events"]:
                span.events.add(time_unix_nano=when, name=name)
            span_ids.append(span_id)
    return req, span_ids


def stored_count(stack: Stack, span_ids: list[bytes]) -> int:
    wanted = [s for s in span_ids if len(s) == 8]
    with psycopg.connect(stack.database.admin_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM spans WHERE span_id = ANY(%s)", (wanted,)).fetchone()
    return int(row[0]) if row else 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=requests(), as_json=st.booleans())
def test_every_span_is_stored_or_counted_as_rejected(stack: Stack, case: tuple[ExportTraceServiceRequest, list[bytes]],
                                                     as_json: bool) -> None:
    req, span_ids = case
    if as_json:
        try:
            body = encode_request(req)
        except (ValueError, TypeError):  # a value OTLP/JSON cannot say (NaN in the protobuf mapping): protobuf then
            as_json, body = False, req.SerializeToString()
    else:
        body = req.SerializeToString()
    status, _, answer = http_post(stack.http_url, body, "application/json" if as_json else "application/x-protobuf")
    assert status in (200, 400), answer[:300]
    event(f"status {status}, {'json' if as_json else 'protobuf'}")
    if status == 400:  # the whole request refused, and said so: nothing of it may be stored
        assert stored_count(stack, span_ids) == 0
        return
    if as_json:
        partial = orjson.loads(answer).get("partialSuccess") or {}
        rejected = int(partial.get("rejectedSpans", 0))
    else:
        rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
    expected = len(span_ids) - rejected
    event("some spans rejected" if rejected else "none rejected")
    event("some spans stored" if expected else "none stored")
    wait_for(lambda: stored_count(stack, span_ids) >= expected, 20, 0.05, f"{expected} of {len(span_ids)} spans stored")
    assert stored_count(stack, span_ids) == expected
    keys = StreamKeys(stack.prefix, 1)
    client = redis_sync.Redis.from_url(REDIS_URL)
    try:
        assert client.xlen(keys.dlq) == 0
    finally:
        client.close()
    assert stack.storage.proc is not None and stack.storage.proc.poll() is None
