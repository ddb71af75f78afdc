"""Drops spans that cannot be stored (bad id lengths, all-zero ids) and reports them as rejected."""

from __future__ import annotations

from collector.pipeline import SpanBatch

ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)


class Validator:
    name = "validation"

    def process(self, batch: SpanBatch) -> SpanBatch:
        bad = 0
        for resource_spans in batch.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans = scope_spans.spans
                for index in range(len(spans) - 1, -1, -1):
                    span = spans[index]
                    if not _valid(span.trace_id, span.span_id, span.parent_span_id):
                        del spans[index]
                        bad += 1
        if bad:
            batch.reject(bad, f"{bad} span(s) had an invalid trace_id or span_id (need 16 and 8 non-zero bytes)")
        return batch


def _valid(trace_id: bytes, span_id: bytes, parent: bytes) -> bool:
    return (
        len(trace_id) == 16 and trace_id != ZERO_TRACE
        and len(span_id) == 8 and span_id != ZERO_SPAN
        and (not parent or len(parent) == 8)
    )
