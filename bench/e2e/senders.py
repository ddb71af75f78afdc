"""OTLP senders for the benchmark: gRPC, HTTP protobuf and HTTP JSON, asyncio, raw bytes.

Bodies are serialized before the clock starts, so the benchmark measures the pipeline,
not the client. A refused request (429/503, RESOURCE_EXHAUSTED/UNAVAILABLE) is counted
and retried after its Retry-After, as an SDK would.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import aiohttp
import grpc
import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the specification maps it: hex ids (the generic mapping would give base64)."""
    doc = MessageToDict(request, use_integers_for_enums=True)

    def fix(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(doc)
    return orjson.dumps(doc)


@dataclass
class Outcome:
    ok: bool
    retry_after: float = 0.0
    status: str = ""


class GrpcSender:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)])
        self.call = self.channel.unary_unary(EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b)

    async def send(self, body: bytes) -> Outcome:
        try:
            await self.call(body, timeout=30)
            return Outcome(True)
        except grpc.aio.AioRpcError as exc:
            retry = dict(exc.trailing_metadata() or ()).get("retry-after", "1")
            return Outcome(False, float(retry) if str(retry).replace(".", "").isdigit() else 1.0, exc.code().name)

    async def close(self) -> None:
        await self.channel.close()


class HttpSender:
    def __init__(self, url: str, content_type: str) -> None:
        self.url = url
        self.content_type = content_type
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def send(self, body: bytes) -> Outcome:
        async with self.session.post(self.url, data=body, headers={"Content-Type": self.content_type}) as response:
            await response.read()
            if response.status == 200:
                return Outcome(True)
            return Outcome(False, float(response.headers.get("Retry-After", "1")), str(response.status))

    async def close(self) -> None:
        await self.session.close()


def make_sender(protocol: str, grpc_port: int, http_port: int) -> GrpcSender | HttpSender:
    if protocol == "grpc":
        return GrpcSender(f"127.0.0.1:{grpc_port}")
    content_type = "application/json" if protocol == "json" else "application/x-protobuf"
    return HttpSender(f"http://127.0.0.1:{http_port}/v1/traces", content_type)


async def send_until_accepted(sender: GrpcSender | HttpSender, body: bytes, refusals: dict[str, int]) -> None:
    while True:
        outcome = await sender.send(body)
        if outcome.ok:
            return
        refusals[outcome.status] = refusals.get(outcome.status, 0) + 1
        if outcome.status not in ("429", "503", "RESOURCE_EXHAUSTED", "UNAVAILABLE"):
            raise RuntimeError(f"non-retryable answer {outcome.status}")
        await asyncio.sleep(min(outcome.retry_after, 1.0))
