"""Sending export requests over OTLP: gRPC, HTTP protobuf or HTTP JSON.

`send_all` runs N concurrent senders over a bounded queue fed from any iterable of
batches, at full speed or at a target rate of spans per second. Retryable answers (gRPC
UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED; HTTP 429, 502, 503, 504, honouring
Retry-After) are retried with capped backoff as an OTLP exporter would; anything else is
a failure, counted and reported. Bodies are serialized in the feeding loop, so a caller
that wants to time the sending alone passes pre-serialized bodies (`Payload`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp
import grpc
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)

from cli.loadgen.traces import Batch
from collector.receivers.otlp_json import encode_request

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE_HTTP = {429, 502, 503, 504}
RETRYABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
MAX_ATTEMPTS = 8
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
TIMEOUT = 30.0


@dataclass(frozen=True)
class Payload:
    body: bytes
    spans: int


@dataclass
class SendResult:
    requests: int = 0
    spans: int = 0
    rejected_spans: int = 0
    retries: int = 0
    failed_requests: int = 0
    failed_spans: int = 0
    errors: list[str] = field(default_factory=list)  # first few distinct messages
    seconds: float = 0.0

    def fail(self, spans: int, message: str) -> None:
        self.failed_requests += 1
        self.failed_spans += spans
        if message not in self.errors and len(self.errors) < 5:
            self.errors.append(message)


class Rejected(Exception):
    """A non-retryable answer; the message says what the collector said."""


class Retryable(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


def default_endpoint(protocol: str) -> str:
    return "127.0.0.1:4317" if protocol == "grpc" else "http://127.0.0.1:4318/v1/traces"


def prebuild(batches: Iterable[Batch], protocol: str) -> list[Payload]:
    """Encode every batch up front, so a benchmark times the sending and not the building."""
    return [encode(batch, protocol) for batch in batches]


def encode(batch: Batch | Payload, protocol: str) -> Payload:
    if isinstance(batch, Payload):
        return batch
    body = encode_request(batch.request) if protocol == "http/json" else batch.body()
    return Payload(body, batch.spans)


class _GrpcSender:
    def __init__(self, endpoint: str) -> None:
        target = endpoint.removeprefix("http://").removeprefix("grpc://")
        self.channel = grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        # Bodies go out as they are: the request serializer is the identity.
        self.export = self.channel.unary_unary(
            EXPORT_METHOD, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString,
        )

    async def send(self, body: bytes) -> int:
        try:
            response = await self.export(body, timeout=TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            message = f"gRPC {exc.code().name}: {exc.details()}"
            if exc.code() in RETRYABLE_GRPC:
                raise Retryable(message) from None
            raise Rejected(message) from None
        return response.partial_success.rejected_spans

    async def close(self) -> None:
        await self.channel.close()


class _HttpSender:
    def __init__(self, endpoint: str, protocol: str) -> None:
        self.url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        if "://" not in self.url:
            self.url = "http://" + self.url
        self.content_type = "application/json" if protocol == "http/json" else "application/x-protobuf"
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))

    async def send(self, body: bytes) -> int:
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": self.content_type}) as answer:
                payload = await answer.read()
                if answer.status == 200:
                    return _rejected(payload, self.content_type)
                message = f"HTTP {answer.status}: {payload[:200].decode(errors='replace')}"
                if answer.status in RETRYABLE_HTTP:
                    raise Retryable(message, _retry_after(answer.headers.get("Retry-After")))
                raise Rejected(message)
        except aiohttp.ClientConnectionError as exc:
            raise Retryable(f"cannot reach {self.url}: {exc}") from None
        except asyncio.TimeoutError:
            raise Retryable(f"no answer from {self.url} in {TIMEOUT:g}s") from None

    async def close(self) -> None:
        await self.session.close()


def _rejected(payload: bytes, content_type: str) -> int:
    if not payload:
        return 0
    try:
        if content_type == "application/json":
            return int(orjson.loads(payload).get("partialSuccess", {}).get("rejectedSpans", 0))
        return ExportTraceServiceResponse.FromString(payload).partial_success.rejected_spans
    except Exception:  # an unreadable success body still means the spans were taken
        return 0


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), BACKOFF_MAX * 4) if value else None
    except ValueError:
        return None


def make_sender(protocol: str, endpoint: str) -> _GrpcSender | _HttpSender:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return _GrpcSender(endpoint) if protocol == "grpc" else _HttpSender(endpoint, protocol)


async def _send_one(sender: _GrpcSender | _HttpSender, payload: Payload, result: SendResult) -> None:
    backoff = BACKOFF_START
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            rejected = await sender.send(payload.body)
        except Retryable as exc:
            if attempt == MAX_ATTEMPTS:
                result.fail(payload.spans, f"gave up after {attempt} attempts: {exc}")
                return
            result.retries += 1
            await asyncio.sleep(exc.after if exc.after is not None else backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        except Rejected as exc:
            result.fail(payload.spans, str(exc))
            return
        result.requests += 1
        result.spans += payload.spans - rejected
        result.rejected_spans += rejected
        return


async def send_all(
    batches: Iterable[Batch | Payload],
    protocol: str = "grpc",
    endpoint: str | None = None,
    concurrency: int = 4,
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> SendResult:
    """Send every batch; `rate` caps spans per second (None: as fast as the collector takes them)."""
    sender = make_sender(protocol, endpoint or default_endpoint(protocol))
    queue: asyncio.Queue[Payload | None] = asyncio.Queue(maxsize=concurrency * 2)
    result = SendResult()
    started = time.perf_counter()

    async def worker() -> None:
        while (payload := await queue.get()) is not None:
            before = result.spans + result.rejected_spans + result.failed_spans
            await _send_one(sender, payload, result)
            if on_sent is not None:
                on_sent(result.spans + result.rejected_spans + result.failed_spans - before)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        offered = 0
        for batch in batches:
            payload = encode(batch, protocol)
            if rate:
                # Pace by the schedule, not by sleeps per request, so slow sends do not lower the rate.
                delay = started + offered / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await queue.put(payload)
            offered += payload.spans
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await sender.close()
    result.seconds = time.perf_counter() - started
    return result
