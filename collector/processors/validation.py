"""The one place that decides what the database can hold: every value is normalized or its
span rejected (partial success) before the collector answers.

What each value gets (the table is in docs/COLLECTOR_PROCESSING.md, "What the database can
hold"):

- trace / span ids of the wrong length or all zeros: the span is rejected;
  an all-zero parent span id means "no parent" (a root span), so it is cleared.
- start, end or event times past 2^63-1 ns (year 2262, beyond the bigint that keeps the
  exact nanoseconds) or start / end more than FUTURE_SPAN_WINDOW ahead of the collector's
  clock: the span is rejected (a span dated days ahead would land in the default partition
  and keep that day's partition from ever being made).
- token counts (`gen_ai.usage.*`, `llm.token_count.*`) above MAX_TOKENS: clamped to it, so
  that no sum of them (total tokens, rollups) can overflow a bigint.
- NUL characters in the texts stored as columns (span, event and scope names, trace state,
  status message, service.name and the LLM provider / model / operation): replaced with
  U+FFFD (PostgreSQL text cannot hold NUL; JSONB attributes are handled by the writer).
- service.name and the LLM provider / model / operation longer than INDEXED_TEXT_BYTES
  bytes of UTF-8 (btree index entries are limited to about 2.7 KB, and the rollup key
  holds three of them): cut at a character boundary and marked with TRUNCATED_MARK.

Messages name the field and the count, never the span's content. A lone surrogate cannot
reach this stage: OTLP/JSON with one is invalid JSON (400) and protobuf strings are UTF-8.
Nesting of array / kvlist values is capped while decoding OTLP/JSON
(collector/receivers/otlp_json.py), the one path that builds messages without the
protobuf parser's own depth limit.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector import metrics
from collector.pipeline import SpanBatch
from common import genai
from common.otlp import any_value

ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)
MAX_INT64 = 2**63 - 1
# Far above any real call (the largest context windows are a few million tokens) and far
# below overflow: 2^63 / 10^9 spans of one minute, service and model would be needed.
MAX_TOKENS = 1_000_000_000
INDEXED_TEXT_BYTES = 512
TRUNCATED_MARK = "…[truncated]"
NUL = "\x00"
REPLACEMENT = "\ufffd"

TOKEN_KEYS = frozenset(
    genai.INPUT_TOKENS + genai.OUTPUT_TOKENS + genai.TOTAL_TOKENS + genai.CACHE_READ_TOKENS
    + genai.CACHE_WRITE_TOKENS + genai.REASONING_TOKENS
)
TEXT_KEYS = frozenset(genai.PROVIDER + genai.REQUEST_MODEL + genai.RESPONSE_MODEL + genai.OPERATION)
WATCHED_KEYS = TOKEN_KEYS | TEXT_KEYS
SERVICE_NAME = "service.name"

# Why a span was rejected, as the partial-success message says it (no span content).
BAD_IDS = "had an invalid trace_id or span_id (need 16 and 8 non-zero bytes)"
BAD_PARENT = "had a parent_span_id that is not 8 bytes"
BAD_TIME = "had a start, end or event time past 2^63-1 ns (year 2262)"
FUTURE = "started or ended more than FUTURE_SPAN_WINDOW={window:g}s ahead of the collector's clock"


@dataclass(frozen=True)
class Limits:
    future_window_s: float = 86_400.0
    max_tokens: int = MAX_TOKENS
    indexed_text_bytes: int = INDEXED_TEXT_BYTES


def truncate(text: str, max_bytes: int) -> str:
    """`text` cut to at most max_bytes of UTF-8 (mark included), at a character boundary."""
    if len(text) * 4 <= max_bytes:  # cheap test first: no character is over 4 bytes
        return text
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(TRUNCATED_MARK.encode("utf-8"))
    return raw[:room].decode("utf-8", "ignore") + TRUNCATED_MARK


def clean_text(text: str, max_bytes: int | None = None) -> str:
    """NUL replaced, and (for indexed columns) cut to max_bytes with the mark."""
    if NUL in text:
        text = text.replace(NUL, REPLACEMENT)
    return truncate(text, max_bytes) if max_bytes is not None else text


def _note(field: str) -> None:
    metrics.NORMALIZED.labels(field).inc()


class Validator:
    name = "validation"

    def __init__(self, limits: Limits | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.limits = limits or Limits()
        self.clock = clock

    def process(self, batch: SpanBatch) -> SpanBatch:
        limits = self.limits
        horizon = min(self.clock() + int(limits.future_window_s * 1e9), MAX_INT64)
        rejected: Counter[str] = Counter()
        for resource_spans in batch.request.resource_spans:
            self._resource(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                if NUL in scope.name or NUL in scope.version:
                    scope.name, scope.version = clean_text(scope.name), clean_text(scope.version)
                    _note("scope")
                spans = scope_spans.spans
                for index in range(len(spans) - 1, -1, -1):
                    reason = self._span(spans[index], horizon)
                    if reason is not None:
                        del spans[index]
                        rejected[reason] += 1
        for reason, count in rejected.items():
            batch.reject(count, f"{count} span(s) {reason.format(window=limits.future_window_s)}")
        return batch

    def _resource(self, attributes: list[KeyValue]) -> None:
        for kv in attributes:
            if kv.key == SERVICE_NAME:
                self._text_value(kv.value, SERVICE_NAME)

    def _span(self, span: Span, horizon: int) -> str | None:
        """None when the span is kept (normalized in place), else why it is rejected."""
        trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
        if len(trace_id) != 16 or trace_id == ZERO_TRACE or len(span_id) != 8 or span_id == ZERO_SPAN:
            return BAD_IDS
        if parent:
            if len(parent) != 8:
                return BAD_PARENT
            if parent == ZERO_SPAN:  # some SDKs send zeros for "no parent"
                span.parent_span_id = b""
                _note("parent_span_id")
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if start > MAX_INT64 or end > MAX_INT64:
            return BAD_TIME
        if start > horizon or end > horizon:
            return FUTURE
        for event in span.events:
            if event.time_unix_nano > MAX_INT64:
                return BAD_TIME
            if NUL in event.name:
                event.name = clean_text(event.name)
                _note("event.name")
        for link in span.links:
            if NUL in link.trace_state:
                link.trace_state = clean_text(link.trace_state)
                _note("link.trace_state")
        if NUL in span.name:
            span.name = clean_text(span.name)
            _note("name")
        if NUL in span.trace_state:
            span.trace_state = clean_text(span.trace_state)
            _note("trace_state")
        if NUL in span.status.message:
            span.status.message = clean_text(span.status.message)
            _note("status.message")
        for kv in span.attributes:
            key = kv.key
            if key in WATCHED_KEYS:
                if key in TOKEN_KEYS:
                    self._tokens(kv.value, key)
                else:
                    self._text_value(kv.value, key)
        return None

    def _tokens(self, value: AnyValue, key: str) -> None:
        count = genai.as_count(any_value(value))
        if count is not None and count > self.limits.max_tokens:
            value.int_value = self.limits.max_tokens
            _note(key)

    def _text_value(self, value: AnyValue, key: str) -> None:
        """A value the writer stores as an indexed text column: the text it will store,
        NUL-free and short enough for a btree entry."""
        if value.WhichOneof("value") == "string_value":
            text = value.string_value
            if NUL not in text and len(text) * 4 <= self.limits.indexed_text_bytes:
                return
        else:
            text = genai.as_text(any_value(value)) or ""
            if value.WhichOneof("value") in (None, "int_value", "double_value", "bool_value"):
                return  # short by construction; the writer makes the same text of it
        cleaned = clean_text(text, self.limits.indexed_text_bytes)
        if cleaned != text or value.WhichOneof("value") != "string_value":
            value.string_value = cleaned
            _note(key)
