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
TOKEN_SLOTS = frozenset((genai.S_INPUT_TOKENS, genai.S_OUTPUT_TOKENS, genai.S_TOTAL_TOKENS, genai.S_CACHE_READ_TOKENS,
                         genai.S_CACHE_WRITE_TOKENS, genai.S_REASONING_TOKENS))
TEXT_SLOTS = frozenset((genai.S_PROVIDER, genai.S_REQUEST_MODEL, genai.S_RESPONSE_MODEL, genai.S_OPERATION))
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


_notes = 0  # texts normalized so far: a batch whose count moved had a text changed


def _note(field: str) -> None:
    global _notes
    _notes += 1
    metrics.NORMALIZED.labels(field).inc()


class Validator:
    name = "validation"

    def __init__(self, limits: Limits | None = None, clock: Callable[[], int] = time.time_ns,
                 scan_llm_attributes: bool = True) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.llm_values = LlmValues(self.limits)
        # With the cost stage on, the LLM attributes are normalized in its pass over the
        # attributes (CostCalculator(llm_values=...)): a second pass here cost as much as
        # pricing (8.5 µs a span of 20 attributes, bench/collector).
        self.scan_llm_attributes = scan_llm_attributes

    def process(self, batch: SpanBatch) -> SpanBatch:
        limits = self.limits
        horizon = min(self.clock() + int(limits.future_window_s * 1e9), MAX_INT64)
        rejected: Counter[str] = Counter()
        notes = _notes
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
        if _notes != notes:
            # A text changed (NUL replaced, a long one cut): redaction's single pass must read
            # the request as it now is, not the bytes as received (SpanBatch.wire).
            batch.wire = None
        return batch

    def _resource(self, attributes: list[KeyValue]) -> None:
        for kv in attributes:
            if kv.key == SERVICE_NAME:
                self.llm_values.text(kv.value, SERVICE_NAME)

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
        if start > horizon or end > horizon:  # horizon <= MAX_INT64: one test for both in the common case
            return BAD_TIME if start > MAX_INT64 or end > MAX_INT64 else FUTURE
        events = span.events
        if events:
            for event in events:
                if event.time_unix_nano > MAX_INT64:
                    return BAD_TIME
                if NUL in event.name:
                    event.name = clean_text(event.name)
                    _note("event.name")
        links = span.links
        if links:
            for link in links:
                if NUL in link.trace_state:
                    link.trace_state = clean_text(link.trace_state)
                    _note("link.trace_state")
        if NUL in span.name or NUL in span.trace_state:
            span.name, span.trace_state = clean_text(span.name), clean_text(span.trace_state)
            _note("name")
        message = span.status.message
        if message and NUL in message:
            span.status.message = clean_text(message)
            _note("status.message")
        if self.scan_llm_attributes:
            normalize = self.llm_values.normalize
            for kv in span.attributes:
                key = kv.key
                if key in WATCHED_KEYS:
                    normalize(kv.value, key)
        return None



class LlmValues:
    """The rules for the LLM attributes the writer makes columns of: token counts clamped,
    provider / model / operation texts made storable. Called for each attribute whose key is
    in WATCHED_KEYS, by the validator or, when the cost stage runs, by the cost stage's own
    pass over the attributes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_chars = limits.indexed_text_bytes // 4  # this many characters always fit

    def normalize(self, value: AnyValue, key: str) -> None:
        if key in TOKEN_KEYS:
            self.tokens(value, key)
        else:
            self.text(value, key)

    def tokens(self, value: AnyValue, key: str) -> None:
        count = value.int_value  # the common kind first: a non-zero int needs no other read
        if not count:
            count = genai.as_count(any_value(value))
        if count is not None and count > self.limits.max_tokens:
            value.int_value = self.limits.max_tokens
            _note(key)

    def text(self, value: AnyValue, key: str) -> None:
        """A value the writer stores as an indexed text column: the text it will store,
        NUL-free and short enough for a btree entry."""
        text = value.string_value  # the common kind first: a short plain string is done here
        if text and NUL not in text and len(text) * 4 <= self.limits.indexed_text_bytes:
            return
        kind = value.WhichOneof("value")
        if kind in (None, "int_value", "double_value", "bool_value"):
            return  # short by construction; the writer makes the same text of it
        if kind != "string_value":
            text = genai.as_text(any_value(value)) or ""
        cleaned = clean_text(text, self.limits.indexed_text_bytes)
        if cleaned != text or kind != "string_value":
            value.string_value = cleaned
            _note(key)
