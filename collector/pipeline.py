"""The collector's pipeline, written once, in the order of the architecture picture:

    decode (receivers) → validate → head sample → redact → cost → tail sample → export

Each stage is an object with one method, `process(batch) -> batch`, that works on the
protobuf messages in place (see docs/ARCHITECTURE.md). The exporter answers only after
the spans are on the stream, so a receiver that answers success has kept its promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from collector import metrics

if TYPE_CHECKING:
    from collector.inflight import InflightBudget


@dataclass
class SpanBatch:
    """One export request on its way through the pipeline.

    `wire` is the request's protobuf encoding as received (None for OTLP/JSON): redaction
    reads it to find, in one pass, the spans that can hold PII. Stages before redaction may
    delete spans but must not change any text, or set `wire` to None.
    """

    request: ExportTraceServiceRequest
    received_ns: int
    protocol: str
    rejected: int = 0
    messages: list[str] = field(default_factory=list)
    wire: bytes | bytearray | None = None

    def span_count(self) -> int:
        return sum(len(ss.spans) for rs in self.request.resource_spans for ss in rs.scope_spans)

    def reject(self, count: int, message: str) -> None:
        self.rejected += count
        self.messages.append(message)


class TooMuchWork(Exception):
    """A stage refuses a request that needs more work than its budget (REDACTION_WORK_LIMIT):
    answered 413 / RESOURCE_EXHAUSTED without RetryInfo, since the same request would fail
    again; smaller requests go through."""


class Processor(Protocol):
    name: str

    def process(self, batch: SpanBatch) -> SpanBatch: ...


class Exporter(Protocol):
    async def admit(self) -> None: ...

    async def export(self, batch: SpanBatch) -> None: ...


EMPTY_RESPONSE = ExportTraceServiceResponse()


@dataclass(frozen=True)
class ExportOutcome:
    accepted: int
    rejected: int
    message: str

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: empty, or a partial success naming the rejected spans."""
        if not self.rejected:
            return EMPTY_RESPONSE
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = self.rejected
        response.partial_success.error_message = self.message
        return response


class Pipeline:
    def __init__(self, processors: list[Processor], exporter: Exporter, inflight: InflightBudget | None = None) -> None:
        from collector.inflight import InflightBudget  # noqa: PLC0415 - inflight imports the exporter, which imports this module

        self.processors = processors
        self.exporter = exporter
        self.inflight = inflight if inflight is not None else InflightBudget(None)  # the receivers hold request bytes in it

    async def handle(self, batch: SpanBatch) -> ExportOutcome:
        """Run the stages and publish; raises the exporter's Overloaded / Unavailable."""
        received = batch.span_count()
        metrics.SPANS_RECEIVED.labels(batch.protocol).inc(received)
        if received:
            await self.exporter.admit()  # refuse before the stages spend CPU on it
        for processor in self.processors:
            batch = processor.process(batch)
        accepted = batch.span_count()
        if accepted:
            await self.exporter.export(batch)
        metrics.SPANS_ACCEPTED.labels(batch.protocol).inc(accepted)
        if batch.rejected:
            metrics.SPANS_REJECTED.labels(batch.protocol).inc(batch.rejected)
        return ExportOutcome(accepted, batch.rejected, "; ".join(batch.messages))
