"""An ExportMetricsServiceRequest body into COPY rows for `metric_points`, one data point at
a time, whatever the metric's kind (gauge, sum, histogram, exponential histogram, summary).

A point's series is a 16-byte key of its metric's name, kind and unit, its resource, scope
and attributes (sorted): the table is unique on (series, time), so a redelivered entry adds
nothing. Exemplars keep their value, time, trace and span ids (hex) and filtered attributes
as JSON, and their trace ids beside as bytea[].
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from storage.decode import MAX_UNIX_NANO, ROW_OVERHEAD, UNKNOWN_SERVICE, BadSpan, UndecodableEntry
from storage.items import ItemRows, _attributes, digest, json_value, pg_micros, text

TABLE = "metric_points"
COLUMNS = (
    "time", "time_unix_nano", "start_time", "start_time_unix_nano", "metric_name", "description", "unit",
    "metric_type", "temporality", "is_monotonic", "service_name", "attributes", "resource_attributes",
    "scope_name", "scope_version", "flags", "value", "int_value", "count", "sum", "min", "max",
    "explicit_bounds", "bucket_counts", "scale", "zero_count", "zero_threshold", "positive_offset",
    "positive_bucket_counts", "negative_offset", "negative_bucket_counts", "quantiles", "quantile_values",
    "exemplars", "exemplar_trace_ids", "series_id",
)
TYPES = (
    "timestamptz", "int8", "timestamptz", "int8", "text", "text", "text",
    "text", "int4", "bool", "text", "jsonb", "jsonb",
    "text", "text", "int8", "float8", "int8", "int8", "float8", "float8", "float8",
    "float8[]", "int8[]", "int4", "int8", "float8", "int4",
    "int8[]", "int4", "int8[]", "float8[]", "float8[]",
    "jsonb", "bytea[]", "bytea",
)
KEY = ("series_id", "time", "time_unix_nano")
SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def parse_request(body: bytes) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableEntry(f"body is not an ExportMetricsServiceRequest: {exc}") from None
    return request


def point_request(body: bytes, where: tuple[int, ...]) -> bytes:
    """A request holding only the point at `where` (resource, scope, metric, point index) of
    the request in `body`, with its metric, resource and scope: the body of its dead letter."""
    source = parse_request(body)
    r, s, m, i = where
    resource_metrics = source.resource_metrics[r]
    scope_metrics = resource_metrics.scope_metrics[s]
    request = ExportMetricsServiceRequest()
    target_resource = request.resource_metrics.add(schema_url=resource_metrics.schema_url)
    target_resource.resource.CopyFrom(resource_metrics.resource)
    target_scope = target_resource.scope_metrics.add(schema_url=scope_metrics.schema_url)
    target_scope.scope.CopyFrom(scope_metrics.scope)
    metric = target_scope.metrics.add()
    metric.CopyFrom(scope_metrics.metrics[m])
    points = getattr(metric, metric.WhichOneof("data")).data_points  # type: ignore[arg-type]
    keep = type(points[i])()
    keep.CopyFrom(points[i])
    del points[:]
    points.append(keep)
    return request.SerializeToString()


def units(request: ExportMetricsServiceRequest) -> Iterator[ItemRows | BadSpan]:
    for r, resource_metrics in enumerate(request.resource_metrics):
        try:
            resource = _attributes(resource_metrics.resource.attributes)
            service = resource.get("service.name")
            service_name = str(service) if service not in (None, "") else UNKNOWN_SERVICE
            resource_json = orjson.dumps(resource, option=SORTED)
        except Exception as exc:
            reason = f"resource attributes cannot be decoded ({type(exc).__name__})"
            for s, scope_metrics in enumerate(resource_metrics.scope_metrics):
                for m, metric in enumerate(scope_metrics.metrics):
                    kind = metric.WhichOneof("data")
                    for index in range(len(getattr(metric, kind).data_points) if kind else 0):
                        yield BadSpan(reason, (r, s, m, index))  # type: ignore[arg-type]
            continue
        for s, scope_metrics in enumerate(resource_metrics.scope_metrics):
            scope_name, scope_version = text(scope_metrics.scope.name), text(scope_metrics.scope.version)
            for m, metric in enumerate(scope_metrics.metrics):
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                temporality = getattr(data, "aggregation_temporality", None)
                monotonic = data.is_monotonic if kind == "sum" else None
                head = (text(metric.name), text(metric.description), text(metric.unit), kind, temporality or None, monotonic,
                        service_name)
                series_key = b"\0".join((metric.name.encode(), kind.encode(), metric.unit.encode(), resource_json,
                                         (scope_name or "").encode(), (scope_version or "").encode()))
                for index, point in enumerate(data.data_points):
                    source = (r, s, m, index)
                    try:
                        yield _row(kind, point, head, resource_json, scope_name, scope_version, series_key, source)
                    except UndecodableEntry as exc:
                        yield BadSpan(str(exc), source)  # type: ignore[arg-type]
                    except Exception as exc:
                        yield BadSpan(f"data point cannot be decoded ({type(exc).__name__})", source)  # type: ignore[arg-type]


def _optional(point: Any, name: str) -> Any:
    return getattr(point, name) if point.HasField(name) else None


def _row(kind: str, point: Any, head: tuple[Any, ...], resource_json: bytes, scope_name: str | None,
         scope_version: str | None, series_key: bytes, source: tuple[int, ...]) -> ItemRows:
    at, start = point.time_unix_nano, point.start_time_unix_nano
    if at > MAX_UNIX_NANO or start > MAX_UNIX_NANO:
        raise UndecodableEntry("data point has a time past year 2262, beyond a bigint")
    attributes_json = orjson.dumps(_attributes(point.attributes), option=SORTED)
    if b"\\u0000" in attributes_json:
        attributes_json = attributes_json.replace(b"\\u0000", b"\\ufffd")
    value = int_value = count = total = low = high = None
    bounds = buckets = scale = zero_count = zero_threshold = None
    positive_offset = positive = negative_offset = negative = quantiles = quantile_values = None
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        if which == "as_int":
            int_value = point.as_int
            value = float(int_value)
        elif which == "as_double":
            value = point.as_double
    else:
        count = point.count
        total = _optional(point, "sum") if kind != "summary" else point.sum
        if kind == "histogram":
            bounds, buckets = list(point.explicit_bounds), list(point.bucket_counts)
        elif kind == "exponential_histogram":
            scale, zero_count, zero_threshold = point.scale, point.zero_count, point.zero_threshold
            positive_offset, positive = point.positive.offset, list(point.positive.bucket_counts)
            negative_offset, negative = point.negative.offset, list(point.negative.bucket_counts)
        if kind == "summary":
            quantiles = [q.quantile for q in point.quantile_values]
            quantile_values = [q.value for q in point.quantile_values]
        else:
            low, high = _optional(point, "min"), _optional(point, "max")
    exemplars = exemplar_traces = None
    if kind != "summary" and point.exemplars:
        exemplars, exemplar_traces = [], []
        for exemplar in point.exemplars:
            which = exemplar.WhichOneof("value")
            exemplars.append({
                "time_unix_nano": exemplar.time_unix_nano,
                "value": exemplar.as_int if which == "as_int" else exemplar.as_double,
                "trace_id": exemplar.trace_id.hex() or None, "span_id": exemplar.span_id.hex() or None,
                "attributes": _attributes(exemplar.filtered_attributes),
            })
            if exemplar.trace_id:
                exemplar_traces.append(exemplar.trace_id)
        exemplars = json_value(exemplars)
    row = (
        pg_micros(at), at, pg_micros(start) if start else None, start or None, *head,
        attributes_json, resource_json, scope_name, scope_version, point.flags,
        value, int_value, count, total, low, high, bounds, buckets, scale, zero_count, zero_threshold,
        positive_offset, positive, negative_offset, negative, quantiles, quantile_values,
        exemplars, exemplar_traces or None, digest(series_key, attributes_json),
    )
    return ItemRows(row, ROW_OVERHEAD + len(attributes_json) + 8 * len(buckets or ()), source)
