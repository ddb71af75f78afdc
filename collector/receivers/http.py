"""OTLP/HTTP: POST /v1/traces with an ExportTraceServiceRequest body."""

from __future__ import annotations

import time

from aiohttp import web
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector import metrics
from collector.exporter import Overloaded, Refused
from collector.pipeline import Pipeline, SpanBatch
from common.logging import get_logger

log = get_logger("collector.http")
PROTOCOL = "http"
PROTOBUF = "application/x-protobuf"
MAX_BODY_BYTES = 20 * 1024 * 1024


def _status(code: int, message: str, http_status: int, headers: dict[str, str] | None = None) -> web.Response:
    body = status_pb2.Status(code=code, message=message).SerializeToString()
    return web.Response(status=http_status, body=body, content_type=PROTOBUF, headers=headers)


class TraceReceiver:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def export(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._export(request)
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)

    async def _export(self, request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            metrics.BAD_REQUESTS.labels(PROTOCOL, "media_type").inc()
            return _status(3, f"unsupported media type {request.content_type!r}; use {PROTOBUF}", 415)
        body = await request.read()
        message = trace_service_pb2.ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            metrics.BAD_REQUESTS.labels(PROTOCOL, "decode").inc()
            log.info("undecodable export request", error=str(exc), bytes=len(body))
            return _status(3, f"request body is not a valid ExportTraceServiceRequest: {exc}", 400)
        batch = SpanBatch(request=message, received_ns=time.time_ns(), protocol=PROTOCOL)
        try:
            outcome = await self.pipeline.handle(batch)
        except Refused as exc:
            metrics.REFUSED.labels(PROTOCOL, exc.reason).inc()
            metrics.REQUESTS.labels(PROTOCOL, exc.reason).inc()
            log.warning("export refused", reason=exc.reason, error=str(exc))
            http_status = 429 if isinstance(exc, Overloaded) else 503
            return _status(14, str(exc), http_status, {"Retry-After": str(exc.retry_after)})
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)


def make_app(pipeline: Pipeline) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/traces", TraceReceiver(pipeline).export)
    return app
