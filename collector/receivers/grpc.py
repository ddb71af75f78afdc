"""OTLP/gRPC: the TraceService, LogsService and MetricsService Export methods, plus grpc.health.v1.

Each method is registered with a raw-bytes deserializer so that a request that is not the
signal's Export*ServiceRequest gets INVALID_ARGUMENT with a reason (grpc's own deserializer
would answer INTERNAL, which clients may retry forever). gzip is decoded by grpc itself,
and grpc checks `max_receive_bytes` on the decompressed message (RESOURCE_EXHAUSTED
without RetryInfo, which clients do not retry). Which code every other failure gets is
decided in collector/receivers/answers.py; retryable refusals carry a google.rpc.RetryInfo
in the status details, which is what makes RESOURCE_EXHAUSTED retryable for OTLP clients.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_status import rpc_status

from collector import metrics
from collector.exporter import Refused
from collector.inflight import MemoryLimited
from collector.pipeline import Batch, Pipeline, Pipelines, TooMuchWork
from collector.receivers import answers
from collector.receivers.answers import Answer
from common.signals import SIGNALS, TRACES

PROTOCOL = "grpc"
SERVICE = TRACES.grpc_service


def _status(answer: Answer) -> grpc.Status:
    status = status_pb2.Status(code=answer.code, message=answer.message)
    if answer.retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=answer.retry_after)))
        status.details.append(detail)
    return rpc_status.to_status(status)


async def _abort(context: grpc.aio.ServicerContext, answer: Answer, signal: str) -> NoReturn:
    answers.record(answer, PROTOCOL, signal)
    status = _status(answer)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("abort returned")  # not reached: abort raises


class ExportService:
    """One signal's Export method."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.signal = pipeline.signal

    async def export(self, body: bytes, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            with self.pipeline.inflight.hold(len(body)):  # until answered: decode, stages, XADD
                return await self._export(body, context)
        except MemoryLimited as exc:  # the in-flight budget is spent: refused before decoding
            await _abort(context, answers.refused(exc), self.signal.name)
        finally:
            metrics.EXPORT_SECONDS.labels(PROTOCOL).observe(time.perf_counter() - started)

    async def _export(self, body: bytes, context: grpc.aio.ServicerContext) -> Any:
        signal = self.signal
        try:
            request = signal.parse(body)
        except DecodeError as exc:
            problem = f"message is not a valid {signal.request_type.DESCRIPTOR.name}: {exc}"
            await _abort(context, answers.bad_request("decode", problem), signal.name)
        try:
            outcome = await self.pipeline.handle(Batch(request, time.time_ns(), PROTOCOL, signal=signal, wire=body))
        except Refused as exc:
            await _abort(context, answers.refused(exc), signal.name)
        except TooMuchWork as exc:
            await _abort(context, answers.too_much_work(exc), signal.name)
        except Exception:
            await _abort(context, answers.internal(), signal.name)
        metrics.REQUESTS.labels(PROTOCOL, "ok").inc()
        return outcome.response()


TraceService = ExportService


def make_server(pipelines: Pipelines, host: str, port: int, max_receive_bytes: int, reuse_port: bool) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            # Off unless several workers share the port: a second collector started by
            # mistake on the same port must fail to bind, not silently take half the load.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
    )
    for signal in SIGNALS:
        export = grpc.unary_unary_rpc_method_handler(
            ExportService(pipelines.of(signal)).export,
            request_deserializer=None,  # raw bytes: see the module docstring
            response_serializer=signal.response_type.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(signal.grpc_service, {"Export": export}),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"{host}:{port}")
    return server, health


async def mark_serving(health: health_aio.HealthServicer) -> None:
    for service in ("", *(signal.grpc_service for signal in SIGNALS)):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
