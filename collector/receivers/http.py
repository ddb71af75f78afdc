"""OTLP/HTTP: POST /v1/traces, /v1/logs and /v1/metrics, each an Export*ServiceRequest in
protobuf or JSON.

Answers follow the OTLP specification: the body of every answer is in the request's
encoding (the signal's Export*ServiceResponse on success, a google.rpc.Status otherwise);
which status each failure gets is decided in collector/receivers/answers.py: 400 for data
we cannot read (not retried by clients), 413 over the size limit, 415 for other media
types, 405 for other methods, 429 / 503 with Retry-After when the signal's stream cannot
take the data now (retried by clients).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from collector import metrics
from collector.exporter import Refused
from collector.inflight import MemoryLimited
from collector.pipeline import Batch, Pipeline, Pipelines, TooMuchWork
from collector.receivers import answers
from collector.receivers.answers import Answer
from collector.receivers.body import BodyError, read_body
from collector.receivers.otlp_json import OtlpJsonError, decode_request, encode_message
from common.signals import SIGNALS, TRACES, Signal

PROTOCOL = "http"
TRACES_PATH = TRACES.http_path


@dataclass(frozen=True)
class Codec:
    media_type: str
    decode: Callable[[Signal, bytearray], Any]
    encode: Callable[[Message], bytes]


PROTOBUF = Codec("application/x-protobuf", lambda signal, body: signal.parse(body), lambda message: message.SerializeToString())
JSON = Codec("application/json", lambda signal, body: decode_request(body, signal.request_type), encode_message)
CODECS = {PROTOBUF.media_type: PROTOBUF, JSON.media_type: JSON}


def _answer(codec: Codec, answer: Answer, signal: Signal) -> web.Response:
    answers.record(answer, PROTOCOL, signal.name)
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after is not None else None
    body = codec.encode(status_pb2.Status(code=answer.code, message=answer.message))
    return web.Response(status=answer.http_status, body=body, content_type=codec.media_type, headers=headers)


class Receiver:
    """One signal's path."""

    def __init__(self, pipeline: Pipeline, max_body_bytes: int) -> None:
        self.pipeline = pipeline
        self.signal = pipeline.signal
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._handle(request)
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)

    async def _handle(self, request: web.Request) -> web.Response:
        codec = CODECS.get(request.content_type)
        signal = self.signal
        if request.method != "POST":
            message = f"method {request.method} is not allowed on {signal.http_path}; use POST"
            response = _answer(codec or JSON, answers.bad_request("method", message, 405), signal)
            response.headers["Allow"] = "POST"
            return response
        if codec is None:
            # No encoding of the client's to answer in: JSON is the one a person can read.
            message = f"unsupported media type {request.content_type!r}; use {PROTOBUF.media_type} or {JSON.media_type}"
            return _answer(JSON, answers.bad_request("media_type", message, 415), signal)
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyError as exc:
            return _answer(codec, answers.bad_request(exc.reason, str(exc), exc.status), signal)
        try:
            with self.pipeline.inflight.hold(len(body)):  # until answered: decode, stages, XADD
                try:
                    message = codec.decode(signal, body)
                except (DecodeError, OtlpJsonError) as exc:
                    problem = f"request body is not a valid {codec.media_type} {signal.request_type.DESCRIPTOR.name}: {exc}"
                    return _answer(codec, answers.bad_request("decode", problem), signal)
                wire = body if codec is PROTOBUF else None
                return await self._export(codec, Batch(message, time.time_ns(), PROTOCOL, signal=signal, wire=wire))
        except MemoryLimited as exc:  # the in-flight budget is spent: refused before decoding
            return _answer(codec, answers.refused(exc), signal)

    async def _export(self, codec: Codec, batch: Batch) -> web.Response:
        try:
            outcome = await self.pipeline.handle(batch)
        except Refused as exc:
            return _answer(codec, answers.refused(exc), self.signal)
        except TooMuchWork as exc:
            return _answer(codec, answers.too_much_work(exc), self.signal)
        except Exception:
            return _answer(codec, answers.internal(), self.signal)
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        return web.Response(body=codec.encode(outcome.response()), content_type=codec.media_type)


TraceReceiver = Receiver


def make_app(pipelines: Pipelines, max_body_bytes: int) -> web.Application:
    # client_max_size is aiohttp's limit for request.read(), which this app never calls:
    # read_body enforces max_body_bytes on the decompressed bytes itself.
    app = web.Application(client_max_size=max_body_bytes)
    for signal in SIGNALS:
        app.router.add_route("*", signal.http_path, Receiver(pipelines.of(signal), max_body_bytes).handle)
    return app


async def start(pipelines: Pipelines, host: str, port: int, max_body_bytes: int, reuse_port: bool) -> web.AppRunner:
    """Serve the receivers; aiohttp's own decompression is off so read_body can bound it."""
    runner = web.AppRunner(make_app(pipelines, max_body_bytes), access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    return runner
