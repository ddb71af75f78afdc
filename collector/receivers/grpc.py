"""OTLP/gRPC: opentelemetry.proto.collector.trace.v1.TraceService/Export, plus grpc.health.v1.

The method is registered with a raw-bytes deserializer so that a request that is not an
ExportTraceServiceRequest gets INVALID_ARGUMENT with a reason (grpc's own deserializer
would answer INTERNAL, which clients may retry forever). gzip is decoded by grpc itself,
and grpc checks `max_receive_bytes` on the decompressed message (RESOURCE_EXHAUSTED
without RetryInfo, which clients do not retry). Refusals for overload carry a
google.rpc.RetryInfo in the status details, which is what makes RESOURCE_EXHAUSTED
retryable for OTLP clients; an unreachable Redis is UNAVAILABLE.
"""

from __future__ import annotations

import time

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector import metrics
from collector.exporter import Overloaded, Refused
from collector.inflight import MemoryLimited
from collector.pipeline import Pipeline, SpanBatch, TooMuchWork
from common.logging import get_logger

log = get_logger("collector.grpc")
PROTOCOL = "grpc"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _abort_status(code: int, message: str, retry_after: int | None = None) -> grpc.Status:
    status = status_pb2.Status(code=code, message=message)
    if retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after)))
        status.details.append(detail)
    return rpc_status.to_status(status)


class TraceService:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def export(self, body: bytes, context: grpc.aio.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        started = time.perf_counter()
        try:
            with self.pipeline.inflight.hold(len(body)):  # until answered: decode, stages, XADD
                return await self._export(body, context)
        except MemoryLimited as exc:  # the in-flight budget is spent: refused before decoding
            await _refuse(context, exc)
            raise  # not reached: abort raises
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)

    async def _export(self, body: bytes, context: grpc.aio.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            metrics.BAD_REQUESTS.labels(PROTOCOL, "decode").inc()
            metrics.REQUESTS.labels(PROTOCOL, "bad_request").inc()
            log.info("export request refused", reason="decode", error=str(exc), bytes=len(body))
            await _abort(context, _abort_status(code_pb2.INVALID_ARGUMENT, f"message is not a valid ExportTraceServiceRequest: {exc}"))
        batch = SpanBatch(request=request, received_ns=time.time_ns(), protocol=PROTOCOL, wire=body)
        try:
            outcome = await self.pipeline.handle(batch)
        except Refused as exc:
            await _refuse(context, exc)
        except TooMuchWork as exc:  # not retryable (no RetryInfo): the same request would fail again
            metrics.BAD_REQUESTS.labels(PROTOCOL, "too_much_work").inc()
            metrics.REQUESTS.labels(PROTOCOL, "bad_request").inc()
            log.info("export request refused", reason="too_much_work", error=str(exc))
            await _abort(context, _abort_status(code_pb2.RESOURCE_EXHAUSTED, str(exc)))
        except Exception:
            # A bug in a stage must cost this request only.
            metrics.REQUESTS.labels(PROTOCOL, "internal_error").inc()
            log.exception("export failed inside the pipeline")
            await _abort(context, _abort_status(code_pb2.INTERNAL, "internal error while processing the export request"))
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        return outcome.response()


async def _refuse(context: grpc.aio.ServicerContext, exc: Refused) -> None:
    """The retryable answer: RESOURCE_EXHAUSTED with RetryInfo for overload, UNAVAILABLE for Redis down."""
    metrics.REFUSED.labels(PROTOCOL, exc.reason).inc()
    metrics.REQUESTS.labels(PROTOCOL, exc.reason).inc()
    log.warning("export refused", reason=exc.reason, error=str(exc))
    code = code_pb2.RESOURCE_EXHAUSTED if isinstance(exc, Overloaded) else code_pb2.UNAVAILABLE
    await _abort(context, _abort_status(code, str(exc), exc.retry_after))


async def _abort(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    await context.abort(status.code, status.details, status.trailing_metadata)


def make_server(pipeline: Pipeline, host: str, port: int, max_receive_bytes: int, reuse_port: bool) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            # Off unless several workers share the port: a second collector started by
            # mistake on the same port must fail to bind, not silently take half the load.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
    )
    export = grpc.unary_unary_rpc_method_handler(
        TraceService(pipeline).export,
        request_deserializer=None,  # raw bytes: see the module docstring
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": export}),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"{host}:{port}")
    return server, health


async def mark_serving(health: health_aio.HealthServicer) -> None:
    for service in ("", SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
