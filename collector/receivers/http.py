"""OTLP/HTTP: POST /v1/traces with an ExportTraceServiceRequest in protobuf or JSON.

Answers follow the OTLP specification: the body of every answer is in the request's
encoding (an ExportTraceServiceResponse on success, a google.rpc.Status otherwise);
400 for data we cannot read (not retried by clients), 413 over the size limit, 415 for
other media types, 405 for other methods, 429 / 503 with Retry-After when the span
stream cannot take the data now (retried by clients).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector import metrics
from collector.exporter import Overloaded, Refused
from collector.inflight import MemoryLimited
from collector.pipeline import Pipeline, SpanBatch, TooMuchWork
from collector.receivers.body import BodyError, read_body
from collector.receivers.otlp_json import OtlpJsonError, decode_request, encode_message
from common.logging import get_logger

log = get_logger("collector.http")
PROTOCOL = "http"
TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class Codec:
    media_type: str
    decode: Callable[[bytearray], trace_service_pb2.ExportTraceServiceRequest]
    encode: Callable[[Message], bytes]


def _decode_protobuf(body: bytearray) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


PROTOBUF = Codec("application/x-protobuf", _decode_protobuf, lambda message: message.SerializeToString())
JSON = Codec("application/json", decode_request, encode_message)
CODECS = {PROTOBUF.media_type: PROTOBUF, JSON.media_type: JSON}


def _status(codec: Codec, http_status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = codec.encode(status_pb2.Status(code=code, message=message))
    return web.Response(status=http_status, body=body, content_type=codec.media_type, headers=headers)


def _bad_request(codec: Codec, http_status: int, reason: str, message: str) -> web.Response:
    metrics.BAD_REQUESTS.labels(PROTOCOL, reason).inc()
    metrics.REQUESTS.labels(PROTOCOL, "bad_request").inc()
    log.info("export request refused", reason=reason, status=http_status, error=message)
    code = code_pb2.RESOURCE_EXHAUSTED if http_status == 413 else code_pb2.INVALID_ARGUMENT
    return _status(codec, http_status, code, message)


def _refused(codec: Codec, exc: Refused) -> web.Response:
    """The retryable answer: 429 for overload (backlog or in-flight budget), 503 for Redis down."""
    metrics.REFUSED.labels(PROTOCOL, exc.reason).inc()
    metrics.REQUESTS.labels(PROTOCOL, exc.reason).inc()
    log.warning("export refused", reason=exc.reason, error=str(exc))
    http_status = 429 if isinstance(exc, Overloaded) else 503
    code = code_pb2.RESOURCE_EXHAUSTED if isinstance(exc, Overloaded) else code_pb2.UNAVAILABLE
    return _status(codec, http_status, code, str(exc), {"Retry-After": str(exc.retry_after)})


class TraceReceiver:
    def __init__(self, pipeline: Pipeline, max_body_bytes: int) -> None:
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._handle(request)
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)

    async def _handle(self, request: web.Request) -> web.Response:
        codec = CODECS.get(request.content_type)
        if request.method != "POST":
            response = _bad_request(codec or JSON, 405, "method", f"method {request.method} is not allowed on {TRACES_PATH}; use POST")
            response.headers["Allow"] = "POST"
            return response
        if codec is None:
            # No encoding of the client's to answer in: JSON is the one a person can read.
            return _bad_request(JSON, 415, "media_type", f"unsupported media type {request.content_type!r}; use {PROTOBUF.media_type} or {JSON.media_type}")
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyError as exc:
            return _bad_request(codec, exc.status, exc.reason, str(exc))
        try:
            with self.pipeline.inflight.hold(len(body)):  # until answered: decode, stages, XADD
                try:
                    message = codec.decode(body)
                except (DecodeError, OtlpJsonError) as exc:
                    return _bad_request(codec, 400, "decode", f"request body is not a valid {codec.media_type} ExportTraceServiceRequest: {exc}")
                wire = body if codec is PROTOBUF else None  # redaction surveys the request in its encoding
                return await self._export(codec, SpanBatch(request=message, received_ns=time.time_ns(), protocol=PROTOCOL, wire=wire))
        except MemoryLimited as exc:  # the in-flight budget is spent: refused before decoding
            return _refused(codec, exc)

    async def _export(self, codec: Codec, batch: SpanBatch) -> web.Response:
        try:
            outcome = await self.pipeline.handle(batch)
        except Refused as exc:
            return _refused(codec, exc)
        except TooMuchWork as exc:
            return _bad_request(codec, 413, "too_much_work", str(exc))
        except Exception:
            # A bug in a stage must cost this request only; the client may retry it.
            metrics.REQUESTS.labels(PROTOCOL, "internal_error").inc()
            log.exception("export failed inside the pipeline")
            return _status(codec, 500, code_pb2.INTERNAL, "internal error while processing the export request")
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        return web.Response(body=codec.encode(outcome.response()), content_type=codec.media_type)


def make_app(pipeline: Pipeline, max_body_bytes: int) -> web.Application:
    # client_max_size is aiohttp's limit for request.read(), which this app never calls:
    # read_body enforces max_body_bytes on the decompressed bytes itself.
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_route("*", TRACES_PATH, TraceReceiver(pipeline, max_body_bytes).handle)
    return app


async def start(pipeline: Pipeline, host: str, port: int, max_body_bytes: int, reuse_port: bool) -> web.AppRunner:
    """Serve the receiver; aiohttp's own decompression is off so read_body can bound it."""
    runner = web.AppRunner(make_app(pipeline, max_body_bytes), access_log=None, handle_signals=False, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    return runner
