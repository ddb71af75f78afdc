"""OTLP/gRPC: TraceService/Export and grpc.health.v1 against the real Redis.

The error matrix:
  not an ExportTraceServiceRequest   INVALID_ARGUMENT
  over COLLECTOR_GRPC_MAX_RECV_BYTES RESOURCE_EXHAUSTED without RetryInfo (not retried), also
                                     when only the decompressed size is over it
  spans with invalid ids             OK + partial_success
  backlog over MAX_QUEUE_SIZE        RESOURCE_EXHAUSTED with RetryInfo (retried after its delay)
  Redis unreachable                  UNAVAILABLE with RetryInfo
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.collector.conftest import Receivers, StartReceivers
from tests.collector.otlp import make_request, span_ids
from tests.support import free_port

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def retry_delay(error: grpc.aio.AioRpcError) -> int | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds
    return None


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
async def test_export_is_published(receivers: Receivers, grpc_channel: grpc.aio.Channel, compression: grpc.Compression) -> None:
    request = make_request(spans=3)
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc_channel)
    response = await stub.Export(request, compression=compression, timeout=10)
    assert response == trace_service_pb2.ExportTraceServiceResponse()
    assert span_ids(receivers.published()[0]) == span_ids(request)


async def test_empty_request_succeeds(receivers: Receivers, grpc_channel: grpc.aio.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc_channel)
    assert await stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10) == trace_service_pb2.ExportTraceServiceResponse()
    assert receivers.published() == []


async def test_invalid_spans_get_partial_success(receivers: Receivers, grpc_channel: grpc.aio.Channel) -> None:
    request = make_request(spans=2)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    response = await trace_service_pb2_grpc.TraceServiceStub(grpc_channel).Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert span_ids(receivers.published()[0]) == span_ids(request)[1:]


async def test_undecodable_message_gets_invalid_argument(receivers: Receivers, grpc_channel: grpc.aio.Channel) -> None:
    export = grpc_channel.unary_unary(EXPORT)  # raw bytes in and out
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(b"\xff\xff\xff not a message", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ExportTraceServiceRequest" in caught.value.details()
    assert receivers.published() == []


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
async def test_messages_over_the_limit_get_resource_exhausted_without_retry_info(
    receivers: Receivers, grpc_channel: grpc.aio.Channel, compression: grpc.Compression
) -> None:
    request = make_request(spans=1)
    # Zeros: a few KiB once gzipped, so with gzip only the decompressed size is over the limit.
    request.resource_spans[0].scope_spans[0].spans[0].name = "\0" * (receivers.settings.collector_grpc_max_recv_bytes + 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await trace_service_pb2_grpc.TraceServiceStub(grpc_channel).Export(request, compression=compression, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(caught.value) is None  # so OTLP clients do not retry it
    assert receivers.published() == []


async def test_the_limit_is_configurable_above_grpc_default(start_receivers: StartReceivers) -> None:
    async with start_receivers(COLLECTOR_GRPC_MAX_RECV_BYTES=str(8 * 1024 * 1024)) as receivers:
        request = make_request(spans=1)
        request.resource_spans[0].scope_spans[0].spans[0].name = "x" * (6 * 1024 * 1024)  # over grpc's 4 MiB
        async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=20)
        assert len(receivers.published()) == 1


async def test_a_full_backlog_gets_resource_exhausted_with_retry_info(start_receivers: StartReceivers) -> None:
    async with start_receivers(MAX_QUEUE_SIZE="2", RETRY_AFTER="7") as receivers:
        async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            await stub.Export(make_request(spans=2), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Export(make_request(spans=1), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay(caught.value) == 7
        assert "MAX_QUEUE_SIZE=2" in caught.value.details()
        assert len(receivers.published()) == 1


async def test_redis_down_gets_unavailable(start_receivers: StartReceivers) -> None:
    async with start_receivers(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RETRY_AFTER="3") as receivers:
        async with grpc.aio.insecure_channel(receivers.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(make_request(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert retry_delay(caught.value) == 3


@pytest.mark.parametrize("service", ["", "opentelemetry.proto.collector.trace.v1.TraceService"])
async def test_health_service_says_serving(grpc_channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_of_an_unknown_service_is_not_found(grpc_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health_pb2_grpc.HealthStub(grpc_channel).Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
