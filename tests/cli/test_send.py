"""The OTLP senders against a real HTTP server standing in for the collector: retries that
honour Retry-After, partial success, refusals, pacing, and gRPC against the real collector."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)

from cli.loadgen import Profile, TraceFactory, plan
from cli.loadgen.send import Payload, prebuild, send_all
from tests.support import free_port

END = 1_780_000_000 * 1_000_000_000


def _batches(count: int, batch_spans: int = 50) -> list:
    profile = Profile(count=count, end_ns=END, batch_spans=batch_spans)
    return list(TraceFactory(profile).batches(plan(profile)))


class Receiver:
    """An OTLP/HTTP endpoint whose answers a test scripts: a list of (status, headers, rejected)."""

    def __init__(self, script: list[tuple[int, dict[str, str], int]]) -> None:
        self.script = script
        self.received: list[tuple[float, int, str]] = []  # (time, spans, content type)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type == "application/json":
            spans = body.count(b'"spanId"')
        else:
            message = ExportTraceServiceRequest.FromString(body)
            spans = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        status, headers, rejected = self.script.pop(0) if self.script else (200, {}, 0)
        if status != 200:
            return web.Response(status=status, headers=headers, text="busy" if status != 400 else "bad request")
        self.received.append((time.monotonic(), spans, request.content_type))
        answer = ExportTraceServiceResponse()
        answer.partial_success.rejected_spans = rejected
        return web.Response(body=answer.SerializeToString(), content_type="application/x-protobuf")


async def _serve(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def _run(script: list, protocol: str = "http/protobuf", count: int = 200, **kwargs: object):  # type: ignore[no-untyped-def]
    receiver = Receiver(script)
    runner, endpoint = await _serve(receiver)
    try:
        result = await send_all(_batches(count), protocol, endpoint, **kwargs)  # type: ignore[arg-type]
    finally:
        await runner.cleanup()
    return result, receiver


async def test_retryable_answers_are_retried_honouring_retry_after() -> None:
    script = [(503, {"Retry-After": "0.3"}, 0), (429, {}, 0)]
    started = time.monotonic()
    result, receiver = await _run(script, concurrency=1)
    assert result.spans == 200 and result.retries == 2 and result.failed_requests == 0
    assert sum(spans for _, spans, _ in receiver.received) == 200
    assert time.monotonic() - started >= 0.3


async def test_a_refusal_is_counted_with_the_collectors_words_and_the_rest_still_goes() -> None:
    result, receiver = await _run([(400, {}, 0)], concurrency=1)
    first = _batches(200)[0].spans  # batches hold whole traces: about 50 spans
    assert result.failed_requests == 1 and result.failed_spans == first
    assert result.errors == ["HTTP 400: bad request"]
    assert result.spans == 200 - first == sum(spans for _, spans, _ in receiver.received)


async def test_partial_success_counts_rejected_spans() -> None:
    result, _ = await _run([(200, {}, 7)], concurrency=1)
    assert result.rejected_spans == 7 and result.spans == 193


async def test_a_target_rate_paces_the_sending() -> None:
    started = time.monotonic()
    result, receiver = await _run([], count=400, rate=800, concurrency=4)
    assert result.spans == 400
    assert time.monotonic() - started >= 0.35  # 400 spans at 800/s: the last batch is due at 0.4375 s
    assert len(receiver.received) == len(_batches(400))


async def test_json_goes_out_as_json_and_prebuilt_payloads_as_they_are() -> None:
    result, receiver = await _run([], protocol="http/json", count=100)
    assert result.spans == 100 and {ct for _, _, ct in receiver.received} == {"application/json"}
    payloads = prebuild(_batches(100), "http/protobuf")
    assert all(isinstance(p, Payload) for p in payloads) and sum(p.spans for p in payloads) == 100


async def test_an_endpoint_that_never_answers_gives_up_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.loadgen import send

    monkeypatch.setattr(send, "MAX_ATTEMPTS", 2)
    monkeypatch.setattr(send, "BACKOFF_START", 0.01)
    result = await send_all(_batches(50), "http/protobuf", f"http://127.0.0.1:{free_port()}")
    assert result.failed_spans == 50 and result.spans == 0
    assert "gave up after 2 attempts: cannot reach" in result.errors[0]
    grpc_result = await send_all(_batches(50), "grpc", f"127.0.0.1:{free_port()}")
    assert grpc_result.failed_spans == 50 and "UNAVAILABLE" in grpc_result.errors[0]
    await asyncio.sleep(0)
