"""OTLP/HTTP: every kind of request and the answer it gets, against the real Redis.

The error matrix (what each bad input gets; nothing is published for it):
  other method                    405 + Allow: POST, Status INVALID_ARGUMENT
  other media type                415, Status as JSON (the client's encoding is unknown)
  unsupported Content-Encoding    400
  corrupt or truncated gzip       400
  body over the limit             413, also when only the decompressed size is over it
  undecodable protobuf / JSON     400, the message says where
  bad id length or hex (JSON)     400
  spans with invalid ids (proto)  200 + partial_success (the rest is kept)
  backlog over MAX_QUEUE_SIZE     429 + Retry-After, Status RESOURCE_EXHAUSTED
  Redis unreachable               503 + Retry-After, Status UNAVAILABLE
"""

from __future__ import annotations

import gzip
import json
import resource
import zlib

import aiohttp
import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.collector.conftest import Receivers, StartReceivers
from tests.collector.otlp import make_request, span_ids, to_json
from tests.support import free_port

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


async def post(url: str, body: bytes, content_type: str = PROTOBUF, method: str = "POST", **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, url, data=body, headers={"Content-Type": content_type, **headers}) as response:
            return response.status, dict(response.headers), await response.read()


def status_of(body: bytes, content_type: str) -> status_pb2.Status:
    status = status_pb2.Status()
    if content_type == JSON:
        document = json.loads(body)
        status.code, status.message = document.get("code", 0), document.get("message", "")
    else:
        status.ParseFromString(body)
    return status


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
async def test_export_is_published_and_answered_in_the_request_encoding(receivers: Receivers, encoding: str) -> None:
    request = make_request(spans=4)
    body = request.SerializeToString() if encoding == PROTOBUF else json.dumps(to_json(request)).encode()
    status, headers, answer = await post(receivers.http_url, body, encoding)
    assert status == 200
    assert headers["Content-Type"] == encoding
    if encoding == PROTOBUF:
        assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
    else:
        assert json.loads(answer) == {}
    [published] = receivers.published()
    assert span_ids(published) == span_ids(request)
    assert receivers.backlog() == 4


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
async def test_empty_requests_succeed_and_publish_nothing(receivers: Receivers, encoding: str) -> None:
    body = b"" if encoding == PROTOBUF else b"{}"
    status, _, _ = await post(receivers.http_url, body, encoding)
    assert status == 200
    assert receivers.published() == []


@pytest.mark.parametrize(("content_encoding", "compress"), [
    ("gzip", gzip.compress), ("GZIP", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress),
    ("gzip", lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:])),  # two gzip members
])
async def test_compressed_bodies_are_decoded(receivers: Receivers, content_encoding: str, compress) -> None:  # type: ignore[no-untyped-def]
    request = make_request(spans=2)
    status, _, _ = await post(receivers.http_url, compress(request.SerializeToString()), PROTOBUF, **{"Content-Encoding": content_encoding})
    assert status == 200
    assert span_ids(receivers.published()[0]) == span_ids(request)


async def test_json_with_gzip(receivers: Receivers) -> None:
    request = make_request(spans=2)
    body = gzip.compress(json.dumps(to_json(request)).encode())
    status, _, _ = await post(receivers.http_url, body, JSON, **{"Content-Encoding": "gzip"})
    assert status == 200
    assert span_ids(receivers.published()[0]) == span_ids(request)


async def test_spans_with_invalid_ids_get_partial_success_and_the_rest_is_kept(receivers: Receivers) -> None:
    request = make_request(spans=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = bytes(16)
    spans[2].span_id = b"\x01\x02"
    status, _, body = await post(receivers.http_url, request.SerializeToString())
    assert status == 200
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 2
    assert "invalid trace_id or span_id" in response.partial_success.error_message
    assert span_ids(receivers.published()[0]) == [spans[1].span_id]


async def test_partial_success_in_json(receivers: Receivers) -> None:
    document = to_json(make_request(spans=2))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = ""
    status, _, body = await post(receivers.http_url, json.dumps(document).encode(), JSON)
    assert status == 200
    answer = json.loads(body)
    assert answer["partialSuccess"]["rejectedSpans"] == "1"  # int64 as a string, as the mapping says
    assert len(receivers.published()) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_get_405(receivers: Receivers, method: str) -> None:
    status, headers, body = await post(receivers.http_url, b"", PROTOBUF, method=method)
    assert status == 405
    assert headers["Allow"] == "POST"
    assert status_of(body, PROTOBUF).code == code_pb2.INVALID_ARGUMENT


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "application/protobuf", "application/xml"])
async def test_other_media_types_get_415_with_a_json_status(receivers: Receivers, content_type: str) -> None:
    status, headers, body = await post(receivers.http_url, make_request().SerializeToString(), content_type)
    assert status == 415
    assert headers["Content-Type"] == JSON
    assert "application/x-protobuf or application/json" in json.loads(body)["message"]
    assert receivers.published() == []


async def test_media_type_parameters_are_ignored(receivers: Receivers) -> None:
    status, _, _ = await post(receivers.http_url, b"{}", "application/json; charset=utf-8")
    assert status == 200


@pytest.mark.parametrize(("content_encoding", "body", "message"), [
    ("br", b"\x00", "unsupported Content-Encoding 'br'"),
    ("zstd", b"\x00", "unsupported Content-Encoding 'zstd'"),
    ("gzip", b"not gzip at all", "not valid gzip data"),
    ("gzip", gzip.compress(b"x" * 1000)[:-12], "truncated gzip"),
    ("deflate", b"\x00\x01\x02", "not valid deflate data"),
])
async def test_bad_content_encodings_get_400(receivers: Receivers, content_encoding: str, body: bytes, message: str) -> None:
    status, _, answer = await post(receivers.http_url, body, PROTOBUF, **{"Content-Encoding": content_encoding})
    assert status == 400
    assert message in status_of(answer, PROTOBUF).message
    assert receivers.published() == []


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
async def test_undecodable_bodies_get_400_in_the_request_encoding(receivers: Receivers, encoding: str) -> None:
    status, headers, body = await post(receivers.http_url, b"\xff\xff\xff not a message", encoding)
    assert status == 400
    assert headers["Content-Type"] == encoding
    status_message = status_of(body, encoding)
    assert status_message.code == code_pb2.INVALID_ARGUMENT
    assert "not a valid" in status_message.message


@pytest.mark.parametrize(("trace_id", "problem"), [
    ("W46/95gDgQPSabYzgT/GDA==", "must be 32 hex characters"),  # base64, as the generic mapping would write it
    ("5b8efff798038103d269b633813fc6", "must be 32 hex characters"),
    ("5b8efff798038103d269b633813fc6zz", "must be hexadecimal"),
    ("5b8efff798038103 269b633813fc60c", "must be hexadecimal"),
])
async def test_bad_json_ids_get_400_naming_the_field(receivers: Receivers, trace_id: str, problem: str) -> None:
    document = to_json(make_request(spans=2))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = trace_id
    status, _, body = await post(receivers.http_url, json.dumps(document).encode(), JSON)
    assert status == 400
    message = json.loads(body)["message"]
    assert "resourceSpans[0].scopeSpans[0].spans[1].traceId" in message and problem in message
    assert receivers.published() == []  # the whole request is refused, not half of it


async def test_bodies_over_the_limit_get_413(receivers: Receivers) -> None:
    limit = receivers.settings.collector_http_max_body_bytes
    request = make_request(spans=1)
    request.resource_spans[0].scope_spans[0].spans[0].name = "x" * limit
    status, _, body = await post(receivers.http_url, request.SerializeToString())
    assert status == 413
    assert "COLLECTOR_HTTP_MAX_BODY_BYTES" in status_of(body, PROTOBUF).message
    assert receivers.published() == []


async def test_the_limit_applies_after_decompression(receivers: Receivers) -> None:
    limit = receivers.settings.collector_http_max_body_bytes
    request = make_request(spans=1)
    request.resource_spans[0].scope_spans[0].spans[0].name = "x" * (limit + 10)
    compressed = gzip.compress(request.SerializeToString())
    assert len(compressed) < limit // 100
    status, _, _ = await post(receivers.http_url, compressed, PROTOBUF, **{"Content-Encoding": "gzip"})
    assert status == 413


async def test_a_gzip_bomb_is_refused_without_inflating_it(receivers: Receivers) -> None:
    # 512 MiB of zeros is about 500 KiB of gzip; inflating it would take 512 MiB of memory.
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    compressed = b"".join(bomb.compress(block) for _ in range(512)) + bomb.flush()
    assert len(compressed) < receivers.settings.collector_http_max_body_bytes  # only its inflated size is over
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, _, body = await post(receivers.http_url, compressed, PROTOBUF, **{"Content-Encoding": "gzip"})
    assert status == 413
    assert "after decompression" in status_of(body, PROTOBUF).message
    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert peak_growth_kib < 64 * 1024, f"peak memory grew by {peak_growth_kib} KiB"


async def test_a_full_backlog_gets_429_with_retry_after(start_receivers: StartReceivers) -> None:
    async with start_receivers(MAX_QUEUE_SIZE="5", RETRY_AFTER="7") as receivers:
        status, _, _ = await post(receivers.http_url, make_request(spans=5).SerializeToString())
        assert status == 200  # 0 waiting before it: accepted, and now the backlog is full
        for encoding, body in ((PROTOBUF, make_request().SerializeToString()), (JSON, json.dumps(to_json(make_request())).encode())):
            status, headers, answer = await post(receivers.http_url, body, encoding)
            assert (status, headers["Retry-After"]) == (429, "7")
            status_message = status_of(answer, encoding)
            assert status_message.code == code_pb2.RESOURCE_EXHAUSTED and "MAX_QUEUE_SIZE=5" in status_message.message
        assert len(receivers.published()) == 1
        # An empty request carries no data, so there is nothing to refuse.
        status, _, _ = await post(receivers.http_url, b"")
        assert status == 200


async def test_redis_down_gets_503_with_retry_after(start_receivers: StartReceivers) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    async with start_receivers(REDIS_URL=nothing_there, RETRY_AFTER="3") as receivers:
        status, headers, body = await post(receivers.http_url, make_request().SerializeToString())
        assert (status, headers["Retry-After"]) == (503, "3")
        status_message = status_of(body, PROTOBUF)
        assert status_message.code == code_pb2.UNAVAILABLE
        assert "span stream unavailable" in status_message.message


async def test_other_paths_get_404(receivers: Receivers) -> None:
    status, _, _ = await post(receivers.http_url.replace("/v1/traces", "/v1/profiles"), b"")
    assert status == 404
