"""Drops what cannot be stored (spans with bad or all-zero ids, log records and data points
with bad ids or times) and reports it as rejected: one stage per signal."""

from __future__ import annotations

from typing import Any

from collector.pipeline import SpanBatch
from common.signals import metric_points

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


MAX_UNIX_NANO = 2**63 - 1  # times are kept as exact bigint nanoseconds


class LogValidator:
    """Log records: ids are optional (empty or all-zero means none) but must have their
    length; a record without a time takes its observed time, and one without either the
    time it reached the collector (the data model's advice); a time past a bigint is refused."""

    name = "validation"

    def process(self, batch: SpanBatch) -> SpanBatch:
        bad = 0
        for resource_logs in batch.request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                for index in range(len(records) - 1, -1, -1):
                    record = records[index]
                    if not _optional_ids(record) or record.time_unix_nano > MAX_UNIX_NANO or record.observed_time_unix_nano > MAX_UNIX_NANO:
                        del records[index]
                        bad += 1
                        continue
                    if not record.observed_time_unix_nano:
                        record.observed_time_unix_nano = batch.received_ns
                    if not record.time_unix_nano:
                        record.time_unix_nano = record.observed_time_unix_nano
        if bad:
            batch.reject(bad, f"{bad} log record(s) had a trace_id or span_id of the wrong length (16 and 8 bytes, or none) or a time past 2262")
        return batch


class MetricValidator:
    """Metric data points: a metric needs a name; a point's times must fit a bigint (a point
    without a time takes the time it reached the collector); exemplar ids of the wrong
    length are cleared (the exemplar's value is still kept)."""

    name = "validation"

    def process(self, batch: SpanBatch) -> SpanBatch:
        bad = 0
        for resource_metrics in batch.request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = metric_points(metric)
                    if not metric.name:
                        bad += len(points)
                        metric.ClearField(metric.WhichOneof("data") or "name")
                        continue
                    for index in range(len(points) - 1, -1, -1):
                        point = points[index]
                        if point.time_unix_nano > MAX_UNIX_NANO or point.start_time_unix_nano > MAX_UNIX_NANO:
                            del points[index]
                            bad += 1
                            continue
                        if not point.time_unix_nano:
                            point.time_unix_nano = batch.received_ns
                        for exemplar in getattr(point, "exemplars", ()):
                            if not _optional_ids(exemplar):
                                exemplar.ClearField("trace_id")
                                exemplar.ClearField("span_id")
        if bad:
            batch.reject(bad, f"{bad} data point(s) belonged to a metric without a name or had a time past 2262")
        return batch


def _optional_ids(item: Any) -> bool:
    """Empty or all-zero ids mean none (they are cleared); others must have their length."""
    trace_id, span_id = item.trace_id, item.span_id
    if trace_id == ZERO_TRACE:
        item.ClearField("trace_id")
    elif trace_id and len(trace_id) != 16:
        return False
    if span_id == ZERO_SPAN:
        item.ClearField("span_id")
    elif span_id and len(span_id) != 8:
        return False
    return True
