"""OTLP/gRPC: opentelemetry.proto.collector.trace.v1.TraceService/Export."""

from __future__ import annotations

import time

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collector import metrics
from collector.exporter import Overloaded, Refused
from collector.pipeline import Pipeline, SpanBatch
from common.logging import get_logger

log = get_logger("collector.grpc")
PROTOCOL = "grpc"


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def Export(  # noqa: N802 (the gRPC method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        started = time.perf_counter()
        batch = SpanBatch(request=request, received_ns=time.time_ns(), protocol=PROTOCOL)
        try:
            outcome = await self.pipeline.handle(batch)
        except Refused as exc:
            metrics.REFUSED.labels(PROTOCOL, exc.reason).inc()
            metrics.REQUESTS.labels(PROTOCOL, exc.reason).inc()
            log.warning("export refused", reason=exc.reason, error=str(exc))
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, Overloaded) else grpc.StatusCode.UNAVAILABLE
            context.set_trailing_metadata((("retry-after", str(exc.retry_after)),))
            await context.abort(code, str(exc))
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        response = trace_service_pb2.ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = outcome.message
        return response


def make_server(pipeline: Pipeline, host: str, port: int, max_receive_bytes: int = 4 * 1024 * 1024) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(pipeline), server)
    server.add_insecure_port(f"{host}:{port}")
    return server
