"""Raw OTLP requests (no SDK) for tests that need to see each answer's status code."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

PROTOBUF = "application/x-protobuf"


def request_with_spans(count: int, service: str = "raw", seed: int = 0) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    trace_id = os.urandom(16)
    for n in range(count):
        span = ss.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"op {n}",
                            start_time_unix_nano=1_790_000_000_000_000_000 + n, end_time_unix_nano=1_790_000_000_100_000_000 + n)
        span.attributes.add(key="payload").value.string_value = "x" * 512
    return req


def post(url: str, body: bytes, content_type: str = PROTOBUF, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class GrpcClient:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.stub = trace_service_pb2_grpc.TraceServiceStub(self.channel)

    def export(self, body: bytes) -> grpc.StatusCode:
        """Send raw bytes as the request message; the status code of the answer."""
        call = self.channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b, response_deserializer=lambda b: b,
        )
        try:
            call(body, timeout=30)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()

    def close(self) -> None:
        self.channel.close()
