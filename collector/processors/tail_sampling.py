"""Tail sampling: hold a trace's spans for a decision window, then keep or drop it whole.

A trace is kept when any policy says so: an error status, trace or root latency over a
threshold, total LLM cost over a threshold, a rule (service or span-name pattern, attribute
value, `sampling.priority` > 0), else the consistent hash_seed rate. Spans of a trace that
was already decided follow the decision at once (kept ones go straight to the exporter
with the request that carried them).

Durability trade (docs/COLLECTOR_PROCESSING.md): held spans are answered 200 before they
are on the stream. A crash loses at most what is held: the decision window's worth of
traces. Memory is bounded by max traces and max bytes; when full, the oldest traces are
decided early and counted (trigger="memory"), never dropped silently. Kept spans wait for
a background task that publishes them through the exporter; while the stream refuses
them, they stay held, and once they alone fill the byte budget new requests are refused
with the exporter's retryable Overloaded answer instead of being taken in.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Status

from collector import metrics
from collector.exporter import Overloaded, Refused
from collector.pipeline import Exporter, SpanBatch
from collector.processors.sampling import HashSeedDecider, priority
from common import genai
from common.logging import get_logger

log = get_logger("collector.tail_sampling")

# A span's cost, as the cost stage (which ran before this stage) left it: its total when the
# SDK's figure won; else, when it priced the call, the sum of its components (it writes no
# total then); else what the SDK sent, in genai's order.
_COST_KEY = genai.COST[0]
SDK_KEYS = {key: rank for rank, key in enumerate(genai.SDK_COST_TOTAL)}
PUBLISH_SPANS = 1000  # spans per stream entry the background task writes


@dataclass(frozen=True)
class TailSamplingConfig:
    decision_wait: float = 10.0
    max_traces: int = 50_000
    max_bytes: int = 256 * 1024 * 1024
    latency_ms: float = 0.0  # 0: policy off
    cost_usd: float = 0.0  # 0: policy off
    keep_services: tuple[str, ...] = ()  # regexes, full match on service.name
    keep_span_names: tuple[str, ...] = ()  # regexes, full match on the span name
    keep_attributes: tuple[str, ...] = ()  # "key=value" (value "*": any value)
    percentage: float = 10.0
    hash_seed: int = 0
    shutdown_timeout: float = 10.0


class Fragment(NamedTuple):
    """A trace's spans from one (resource, scope), as a serialized ResourceSpans."""

    encoded: bytes
    spans: int


@dataclass
class HeldTrace:
    first_seen: float
    fragments: list[Fragment] = field(default_factory=list)
    spans: int = 0
    size: int = 0
    error: bool = False
    start: int = 0
    end: int = 0
    root_ns: int = 0
    cost: float = 0.0
    rule: str | None = None


class TailSampler:
    name = "tail_sampling"

    def __init__(self, config: TailSamplingConfig, exporter: Exporter) -> None:
        self.config = config
        self.exporter = exporter
        self.decider = HashSeedDecider(config.hash_seed)
        self.services = [re.compile(p) for p in config.keep_services]
        self.span_names = [re.compile(p) for p in config.keep_span_names]
        self.attributes = [_attribute_rule(rule) for rule in config.keep_attributes]
        self.held: OrderedDict[bytes, HeldTrace] = OrderedDict()  # oldest first
        self.decided: OrderedDict[bytes, bool] = OrderedDict()  # late spans follow these
        self.outbox: deque[Fragment] = deque()  # kept, not yet on the stream
        self.held_bytes = 0
        self.outbox_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- the stage -------------------------------------------------------------------------

    def process(self, batch: SpanBatch) -> SpanBatch:
        self._start()
        if self.outbox_bytes >= self.config.max_bytes:
            raise Overloaded(
                f"tail sampling holds {self.outbox_bytes} bytes of kept spans the stream has not taken yet",
                getattr(self.exporter, "retry_after", 1),
            )
        now = time.monotonic()
        for resource_spans in batch.request.resource_spans:
            service = _service(resource_spans)
            for scope_spans in resource_spans.scope_spans:
                self._take(resource_spans, scope_spans, service, now)
        self._enforce_limits()
        self._gauges()
        return batch  # only late spans of already-kept traces are left in it

    def _take(self, resource_spans: Any, scope_spans: Any, service: str, now: float) -> None:
        by_trace: dict[bytes, list[Any]] = {}
        for span in scope_spans.spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        passing: list[Any] = []
        for trace_id, spans in by_trace.items():
            decision = self.decided.get(trace_id)
            if decision is True:
                passing.extend(spans)
                metrics.SAMPLED_SPANS.labels("tail", "kept", "late").inc(len(spans))
            elif decision is False:
                metrics.SAMPLED_SPANS.labels("tail", "dropped", "late").inc(len(spans))
            else:
                self._hold(trace_id, resource_spans, scope_spans, spans, service, now)
        if len(passing) < len(scope_spans.spans):
            kept = [s.SerializeToString() for s in passing]
            del scope_spans.spans[:]
            for raw in kept:
                scope_spans.spans.add().ParseFromString(raw)

    def _hold(self, trace_id: bytes, resource_spans: Any, scope_spans: Any, spans: list[Any], service: str, now: float) -> None:
        trace = self.held.get(trace_id)
        if trace is None:
            trace = self.held[trace_id] = HeldTrace(first_seen=now, start=spans[0].start_time_unix_nano)
        fragment = ResourceSpans(schema_url=resource_spans.schema_url)
        fragment.resource.CopyFrom(resource_spans.resource)
        target = fragment.scope_spans.add(schema_url=scope_spans.schema_url)
        target.scope.CopyFrom(scope_spans.scope)
        target.spans.extend(spans)
        # Held as bytes: a parsed message costs ~3.5x its serialized size in memory
        # (measured), which would make TAIL_MAX_BYTES a poor bound on the process's memory.
        encoded = fragment.SerializeToString()
        size = len(encoded)
        trace.fragments.append(Fragment(encoded, len(spans)))
        trace.spans += len(spans)
        trace.size += size
        self.held_bytes += size
        for span in spans:
            self._observe(trace, span, service)

    def _observe(self, trace: HeldTrace, span: Any, service: str) -> None:
        trace.error = trace.error or span.status.code == Status.STATUS_CODE_ERROR
        trace.start = min(trace.start, span.start_time_unix_nano)
        trace.end = max(trace.end, span.end_time_unix_nano)
        if not span.parent_span_id:
            trace.root_ns = span.end_time_unix_nano - span.start_time_unix_nano
        carried, best, sdk = None, len(SDK_KEYS), 0.0
        for kv in span.attributes:
            key = kv.key
            if key == _COST_KEY:
                carried = genai.read_cost(kv.value.string_value)
            else:
                rank = SDK_KEYS.get(key)
                if rank is not None and rank < best:  # an SDK may send a whole-dollar cost as an int
                    best, sdk = rank, kv.value.double_value or kv.value.int_value
        trace.cost += float(carried[2] or 0) if carried is not None else sdk
        if trace.rule is None:
            trace.rule = self._rule(span, service)

    def _rule(self, span: Any, service: str) -> str | None:
        if any(p.fullmatch(service) for p in self.services):
            return "service"
        if any(p.fullmatch(span.name) for p in self.span_names):
            return "span_name"
        if self.attributes and any(_matches(span.attributes, rule) for rule in self.attributes):
            return "attribute"
        rank = priority(span)
        return "priority" if rank is not None and rank > 0 else None

    # -- deciding --------------------------------------------------------------------------

    def policy(self, trace_id: bytes, trace: HeldTrace) -> tuple[bool, str]:
        """Keep or drop, and the policy that said so."""
        if trace.error:
            return True, "error"
        limit_ns = self.config.latency_ms * 1_000_000
        if limit_ns and max(trace.end - trace.start, trace.root_ns) > limit_ns:
            return True, "latency"
        if self.config.cost_usd and trace.cost > self.config.cost_usd:
            return True, "cost"
        if trace.rule is not None:
            return True, trace.rule
        return self.decider.keep(trace_id, self.config.percentage), "probabilistic"

    def _decide(self, trace_id: bytes, trigger: str) -> None:
        trace = self.held.pop(trace_id)
        self.held_bytes -= trace.size
        keep, policy = self.policy(trace_id, trace)
        self.decided[trace_id] = keep
        while len(self.decided) > self.config.max_traces:
            self.decided.popitem(last=False)
        decision = "kept" if keep else "dropped"
        metrics.TAIL_TRACES.labels(decision, policy, trigger).inc()
        metrics.SAMPLED_SPANS.labels("tail", decision, policy).inc(trace.spans)
        if keep:
            self.outbox.extend(trace.fragments)
            self.outbox_bytes += trace.size
            self._wake.set()

    def decide_due(self, now: float) -> None:
        deadline = now - self.config.decision_wait
        while self.held:
            trace_id, trace = next(iter(self.held.items()))
            if trace.first_seen > deadline:
                break
            self._decide(trace_id, "window")

    def _enforce_limits(self) -> None:
        budget = self.config.max_bytes - self.outbox_bytes
        while self.held and (len(self.held) > self.config.max_traces or self.held_bytes > budget):
            self._decide(next(iter(self.held)), "memory")
            budget = self.config.max_bytes - self.outbox_bytes

    def _gauges(self) -> None:
        metrics.TAIL_HELD_TRACES.set(len(self.held))
        metrics.TAIL_HELD_BYTES.set(self.held_bytes + self.outbox_bytes)

    # -- publishing ------------------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tail-sampling")

    async def _run(self) -> None:
        tick = min(max(self.config.decision_wait / 4, 0.01), 1.0)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), tick)
            except TimeoutError:
                pass
            self._wake.clear()
            self.decide_due(time.monotonic())
            retry_after = await self.publish()
            self._gauges()
            if retry_after:
                await asyncio.sleep(retry_after)

    async def publish(self) -> float:
        """Send the outbox through the exporter; on refusal keep it and say how long to wait."""
        while self.outbox:
            chunk: list[Fragment] = []
            spans = 0
            while self.outbox and spans < PUBLISH_SPANS:
                chunk.append(self.outbox.popleft())
                spans += chunk[-1].spans
            request = ExportTraceServiceRequest()
            for fragment in chunk:
                request.resource_spans.add().ParseFromString(fragment.encoded)
            try:
                await self.exporter.export(SpanBatch(request, time.time_ns(), "tail"))
            except Refused as exc:
                self.outbox.extendleft(reversed(chunk))
                metrics.TAIL_EXPORT_FAILURES.labels(exc.reason).inc()
                log.warning("stream refused tail-kept spans; retrying", spans=spans, error=str(exc))
                return float(exc.retry_after)
            self.outbox_bytes -= sum(len(f.encoded) for f in chunk)
        return 0.0

    async def aclose(self) -> None:
        """On shutdown: decide every held trace now and publish what is kept, within the timeout."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self.held:
            self._decide(next(iter(self.held)), "shutdown")
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self.outbox and time.monotonic() < deadline:
            retry_after = await self.publish()
            if retry_after:
                await asyncio.sleep(min(retry_after, max(deadline - time.monotonic(), 0)))
        if self.outbox:
            lost = sum(f.spans for f in self.outbox)
            log.error("tail-kept spans could not be published before shutdown: lost", spans=lost)
        self._gauges()


def _service(resource_spans: Any) -> str:
    for kv in resource_spans.resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


def _attribute_rule(rule: str) -> tuple[str, str]:
    key, sep, value = rule.partition("=")
    if not sep or not key:
        raise ValueError(f"tail-sampling attribute rule must be key=value (value * for any), got {rule!r}")
    return key.strip(), value.strip()


def _matches(attributes: Any, rule: tuple[str, str]) -> bool:
    key, wanted = rule
    for kv in attributes:
        if kv.key == key:
            if wanted == "*":
                return True
            kind = kv.value.WhichOneof("value")
            actual = getattr(kv.value, kind) if kind in ("string_value", "int_value", "bool_value", "double_value") else None
            text = str(actual).lower() if isinstance(actual, bool) else str(actual)
            return text == wanted
    return False
