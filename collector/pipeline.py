"""The collector's pipeline, written once, in the order of the architecture picture:

    decode (receivers) → validate → head sample → redact → cost → tail sample → export

Each stage is an object with one method, `process(batch) -> batch`, that works on the
protobuf messages in place (see docs/ARCHITECTURE.md). The exporter answers only after
the items are on the stream, so a receiver that answers success has kept its promise.

Each signal (traces, logs, metrics: common/signals.py) has a pipeline of its own, with the
stages that apply to it, an exporter to its own streams, and the one in-flight budget of
the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from google.protobuf.message import Message

from collector import metrics
from common.signals import TRACES, Signal

if TYPE_CHECKING:
    from collector.inflight import InflightBudget


@dataclass
class Batch:
    """One export request on its way through the pipeline (of any signal).

    `wire` is the request's protobuf encoding as received (None for OTLP/JSON): redaction
    reads it to find, in one pass, the spans that can hold PII. Stages before redaction may
    delete spans but must not change any text, or set `wire` to None.
    """

    request: Any  # the signal's Export*ServiceRequest
    received_ns: int
    protocol: str
    rejected: int = 0
    messages: list[str] = field(default_factory=list)
    signal: Signal = TRACES
    wire: bytes | bytearray | None = None

    def count(self) -> int:
        return self.signal.count(self.request)

    def span_count(self) -> int:
        return self.count()

    def reject(self, count: int, message: str) -> None:
        self.rejected += count
        self.messages.append(message)


SpanBatch = Batch  # the stages written for traces name their batches so


class TooMuchWork(Exception):
    """A stage refuses a request that needs more work than its budget (REDACTION_WORK_LIMIT):
    answered 413 / RESOURCE_EXHAUSTED without RetryInfo, since the same request would fail
    again; smaller requests go through."""


class Processor(Protocol):
    name: str

    def process(self, batch: Batch) -> Batch: ...


class Exporter(Protocol):
    async def admit(self) -> None: ...

    async def export(self, batch: Batch) -> None: ...


@dataclass(frozen=True)
class ExportOutcome:
    accepted: int
    rejected: int
    message: str
    signal: Signal = TRACES

    def response(self) -> Message:
        """The OTLP answer: empty, or a partial success naming the rejected items."""
        return self.signal.response(self.rejected, self.message)


class Pipeline:
    def __init__(self, processors: list[Processor], exporter: Exporter, inflight: InflightBudget | None = None,
                 signal: Signal = TRACES) -> None:
        from collector.inflight import InflightBudget  # noqa: PLC0415 - inflight imports the exporter, which imports this module

        self.processors = processors
        self.exporter = exporter
        self.inflight = inflight if inflight is not None else InflightBudget(None)  # the receivers hold request bytes in it
        self.signal = signal
        self.received, self.accepted, self.rejected = metrics.item_counters(signal.name)

    async def handle(self, batch: Batch) -> ExportOutcome:
        """Run the stages and publish; raises the exporter's Overloaded / Unavailable."""
        received = batch.count()
        self.received.labels(batch.protocol).inc(received)
        if received:
            await self.exporter.admit()  # refuse before the stages spend CPU on it
        for processor in self.processors:
            batch = processor.process(batch)
        accepted = batch.count()
        if accepted:
            await self.exporter.export(batch)
        self.accepted.labels(batch.protocol).inc(accepted)
        if batch.rejected:
            self.rejected.labels(batch.protocol).inc(batch.rejected)
        return ExportOutcome(accepted, batch.rejected, "; ".join(batch.messages), self.signal)


@dataclass(frozen=True)
class Pipelines:
    """The pipeline of each signal, sharing one in-flight budget; what the receivers serve."""

    traces: Pipeline
    logs: Pipeline
    metrics: Pipeline

    def of(self, signal: Signal) -> Pipeline:
        return getattr(self, signal.name)

    def all(self) -> tuple[Pipeline, ...]:
        return (self.traces, self.logs, self.metrics)

    @property
    def inflight(self) -> InflightBudget:
        return self.traces.inflight
