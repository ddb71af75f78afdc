"""Random and mutated bodies against the real collector's OTLP decoders (HTTP protobuf,
HTTP JSON, gRPC): never a crash, never a 5xx other than the documented overload answers,
memory bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Stack, own_stack
from tests.faults.otlp import GrpcClient, post, request_with_spans
from tests.support import rss_bytes

pytestmark = pytest.mark.e2e

EXAMPLES = 250
HTTP_ALLOWED = {200, 400, 413, 415}
GRPC_ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
RSS_GROWTH_LIMIT = 96 * 1024 * 1024

FUZZ_RSS_START: list[int] = []
VALID = request_with_spans(3).SerializeToString()
VALID_JSON = json.dumps(MessageToDict(request_with_spans(2))).encode()


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(tmp_path_factory.mktemp("fuzz")) as stack:
        post(stack.http_url, VALID)  # warm up before taking the memory baseline
        FUZZ_RSS_START.append(rss_bytes(stack.collector.proc.pid))
        yield stack


def mutate(data: st.DataObject, seed: bytes) -> bytes:
    body = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        if not body:
            break
        at = data.draw(st.integers(0, len(body) - 1))
        if op == "flip":
            body[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del body[at:at + data.draw(st.integers(1, 64))]
        elif op == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            body[at:at] = body[at:at + data.draw(st.integers(1, 128))]
    return bytes(body)


def assert_alive_and_bounded(stack: Stack, rss_start: int) -> None:
    assert stack.collector.proc.poll() is None, stack.collector.log()
    assert rss_bytes(stack.collector.proc.pid) - rss_start < RSS_GROWTH_LIMIT


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_http_protobuf_bodies(fuzz_stack: Stack, data: st.DataObject) -> None:
    body = data.draw(st.one_of(st.binary(max_size=2048), st.just(None)))
    if body is None:
        body = mutate(data, VALID)
    status, _, _ = post(fuzz_stack.http_url, body)
    assert status in HTTP_ALLOWED
    assert fuzz_stack.collector.proc.poll() is None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_http_json_bodies(fuzz_stack: Stack, data: st.DataObject) -> None:
    body = data.draw(st.one_of(
        st.binary(max_size=1024),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                     max_leaves=20).map(lambda v: json.dumps(v).encode()),
        st.just(None),
    ))
    if body is None:
        body = mutate(data, VALID_JSON)
    status, _, _ = post(fuzz_stack.http_url, body, content_type="application/json")
    assert status in HTTP_ALLOWED
    assert fuzz_stack.collector.proc.poll() is None


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_grpc_bodies(fuzz_stack: Stack, data: st.DataObject) -> None:
    body = data.draw(st.one_of(st.binary(max_size=2048), st.just(None)))
    if body is None:
        body = mutate(data, VALID)
    client = GrpcClient(fuzz_stack.grpc_target)
    try:
        assert client.export(body) in GRPC_ALLOWED
    finally:
        client.close()
    assert fuzz_stack.collector.proc.poll() is None


def test_collector_survived_the_fuzzing_with_bounded_memory(fuzz_stack: Stack) -> None:
    # Runs after the fuzz tests in this module (pytest keeps file order).
    assert_alive_and_bounded(fuzz_stack, FUZZ_RSS_START[0])
    status, _, _ = post(fuzz_stack.http_url, VALID)
    assert status == 200
