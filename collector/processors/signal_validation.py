"""What the database can hold, for log records and metric data points (the span rules are in
collector/processors/validation.py, with the same limits).

- trace / span ids: optional on both (empty or all zeros means none, and is cleared), but
  of the wrong length the log record is rejected; an exemplar's are cleared (its value kept).
- times past 2^63-1 ns or more than FUTURE_SPAN_WINDOW ahead of the collector's clock: the
  record or point is rejected (its partition could not be made).
- a log record without a time takes its observed time, and one without either the time it
  reached the collector (the logs data model's advice); a point without a time likewise.
- a metric without a name: its points are rejected (the name is what a series is).
NULs in texts stored as columns and in JSONB are replaced by the writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from collector.pipeline import Batch
from collector.processors.validation import MAX_INT64, ZERO_SPAN, ZERO_TRACE, Limits
from common.signals import metric_points


class LogValidator:
    name = "validation"

    def __init__(self, limits: Limits | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.limits = limits or Limits()
        self.clock = clock

    def process(self, batch: Batch) -> Batch:
        horizon = min(self.clock() + int(self.limits.future_window_s * 1e9), MAX_INT64)
        bad_ids = bad_times = 0
        for resource_logs in batch.request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                for index in range(len(records) - 1, -1, -1):
                    record = records[index]
                    if not _optional_ids(record):
                        del records[index]
                        bad_ids += 1
                        continue
                    if not record.observed_time_unix_nano:
                        record.observed_time_unix_nano = batch.received_ns
                    if not record.time_unix_nano:
                        record.time_unix_nano = record.observed_time_unix_nano
                    if record.time_unix_nano > horizon or record.observed_time_unix_nano > horizon:
                        del records[index]
                        bad_times += 1
        if bad_ids:
            batch.reject(bad_ids, f"{bad_ids} log record(s) had a trace_id or span_id of the wrong length (16 and 8 bytes, or none)")
        if bad_times:
            batch.reject(bad_times, f"{bad_times} log record(s) had a time more than FUTURE_SPAN_WINDOW={self.limits.future_window_s:g}s ahead or past 2262")
        return batch


class MetricValidator:
    name = "validation"

    def __init__(self, limits: Limits | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.limits = limits or Limits()
        self.clock = clock

    def process(self, batch: Batch) -> Batch:
        horizon = min(self.clock() + int(self.limits.future_window_s * 1e9), MAX_INT64)
        nameless = bad_times = 0
        for resource_metrics in batch.request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = metric_points(metric)
                    if not metric.name:
                        nameless += len(points)
                        kind = metric.WhichOneof("data")
                        if kind is not None:
                            metric.ClearField(kind)  # type: ignore[arg-type]
                        continue
                    for index in range(len(points) - 1, -1, -1):
                        point = points[index]
                        if not point.time_unix_nano:
                            point.time_unix_nano = batch.received_ns
                        if point.time_unix_nano > horizon or point.start_time_unix_nano > horizon:
                            del points[index]
                            bad_times += 1
                            continue
                        for exemplar in getattr(point, "exemplars", ()):
                            if not _optional_ids(exemplar):
                                exemplar.ClearField("trace_id")
                                exemplar.ClearField("span_id")
        if nameless:
            batch.reject(nameless, f"{nameless} data point(s) belonged to a metric without a name")
        if bad_times:
            batch.reject(bad_times, f"{bad_times} data point(s) had a time more than FUTURE_SPAN_WINDOW={self.limits.future_window_s:g}s ahead or past 2262")
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
