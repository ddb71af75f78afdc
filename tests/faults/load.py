"""Load for fault tests: spans made by the real OpenTelemetry SDK, sent by its real OTLP
exporters, with a record of exactly which spans the collector acknowledged.

A span counts as acknowledged only when the exporter's export() returned SUCCESS for the
request that carried it: that is the promise the pipeline must keep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.e2e.sdk import exporter as make_exporter

PROMPT = (
    "You are a helpful assistant. Summarise the following support conversation and list the "
    "customer's open questions, the products mentioned and the next steps agreed with the agent. "
)


def make_spans(count: int, service: str) -> list[ReadableSpan]:
    """`count` finished spans in traces of 5 (a root and 4 children, one an LLM call)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.faults")
    made = 0
    while made < count:
        with tracer.start_as_current_span("POST /chat", attributes={"http.route": "/chat"}):
            made += 1
            for child in range(min(4, count - made)):
                attrs = {"step": child}
                if child == 1:
                    attrs.update({
                        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 900 + child,
                        "gen_ai.usage.output_tokens": 120, "gen_ai.prompt.0.content": PROMPT * 4,
                    })
                with tracer.start_as_current_span(f"step {child}", attributes=attrs):
                    made += 1
    provider.shutdown()
    return list(memory.get_finished_spans())


def span_key(span: ReadableSpan) -> tuple[bytes, bytes]:
    return span.context.trace_id.to_bytes(16, "big"), span.context.span_id.to_bytes(8, "big")


@dataclass
class LoadResult:
    acknowledged: set[tuple[bytes, bytes]] = field(default_factory=set)
    acknowledged_at: dict[tuple[bytes, bytes], float] = field(default_factory=dict)  # time.monotonic() of the answer
    failed: set[tuple[bytes, bytes]] = field(default_factory=set)
    requests_ok: int = 0
    requests_failed: int = 0


class Load:
    """Sends spans in requests of `per_request` from `senders` threads until all are sent."""

    def __init__(self, spans: Sequence[ReadableSpan], protocol: str, endpoint: str,
                 per_request: int = 50, senders: int = 4, timeout: float = 30.0, pause: float = 0.0) -> None:
        self.chunks = [list(spans[i:i + per_request]) for i in range(0, len(spans), per_request)]
        self.protocol = protocol
        self.endpoint = endpoint
        self.senders = senders
        self.timeout = timeout
        self.pause = pause  # seconds each sender waits between requests (spreads the load over time)
        self.result = LoadResult()
        self.sent_requests = 0
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []

    def start(self) -> "Load":
        for _ in range(self.senders):
            thread = threading.Thread(target=self._send, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def join(self, timeout: float = 300.0) -> LoadResult:
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "sender did not finish"
        return self.result

    def _take(self) -> list[ReadableSpan] | None:
        with self._lock:
            if self._next >= len(self.chunks):
                return None
            chunk = self.chunks[self._next]
            self._next += 1
            return chunk

    def _send(self) -> None:
        exporter = make_exporter(self.protocol, self.endpoint)
        exporter._timeout = self.timeout  # the SDK retries retryable answers until this deadline
        try:
            while (chunk := self._take()) is not None:
                outcome = exporter.export(chunk)
                answered = time.monotonic()
                keys = {span_key(s) for s in chunk}
                with self._lock:
                    self.sent_requests += 1
                    if outcome == SpanExportResult.SUCCESS:
                        self.result.acknowledged |= keys
                        self.result.acknowledged_at.update(dict.fromkeys(keys, answered))
                        self.result.requests_ok += 1
                    else:
                        self.result.failed |= keys
                        self.result.requests_failed += 1
                if self.pause:
                    time.sleep(self.pause)
        finally:
            exporter.shutdown()


def stored_counts(dsn: str, keys: set[tuple[bytes, bytes]]) -> dict[tuple[bytes, bytes], int]:
    """How many rows each (trace_id, span_id) has in the database."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT trace_id, span_id, count(*) FROM spans WHERE trace_id = ANY(%s) GROUP BY trace_id, span_id",
            (list({t for t, _ in keys}),),
        ).fetchall()
    return {(bytes(t), bytes(s)): n for t, s, n in rows}


def total_spans(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM spans").fetchone()[0]
