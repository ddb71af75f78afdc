"""Metric series: a metric's data points in a window, folded into time buckets per series.

A series is one combination of metric name, resource, scope and attributes (`series_id`
in `metric_points`). Per bucket, by the metric's kind:
- gauge: last (the last value in the bucket), avg, min, max;
- sum: sum (the increase in the bucket: delta points added up; for cumulative points the
  difference to the previous point of the series, a start-time change or a drop counted as
  a reset), rate (that increase per second), last;
- histogram and exponential histogram: count, sum, avg, and percentiles p50, p90, p95, p99
  interpolated linearly inside the buckets (cumulative points are turned into increments as
  sums are); summary: count, sum, avg, and the quantile of the bucket's last point nearest
  to the percentile asked for.
Points are folded here rather than in SQL: the window is bounded (MAX_POINTS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.problems import bad_parameter
from api.queries import Where
from api.serialize import rfc3339_nanos
from api.window import Window

MAX_POINTS = 200_000
CUMULATIVE = 2
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
AGGREGATIONS = ("last", "avg", "min", "max", "sum", "rate", "count", *PERCENTILES)
ALLOWED = {
    "gauge": ("last", "avg", "min", "max", "sum", "count"),
    "sum": ("sum", "rate", "last", "avg", "min", "max", "count"),
    "histogram": ("count", "sum", "avg", "rate", *PERCENTILES),
    "exponential_histogram": ("count", "sum", "avg", "rate", *PERCENTILES),
    "summary": ("count", "sum", "avg", *PERCENTILES),
}
POINT_FIELDS = """series_id, time_unix_nano, start_time_unix_nano, metric_type, temporality, is_monotonic, description, unit,
    service_name, attributes, resource_attributes, value, count, sum, min, max, explicit_bounds, bucket_counts, scale,
    zero_count, positive_offset, positive_bucket_counts, quantiles, quantile_values"""


async def points(conn: AsyncConnection, f: Mapping[str, Any], span: Window) -> list[dict[str, Any]]:
    where = Where()
    where.add("metric_name = %s", f["name"])
    where.add("time >= %s AND time < %s", span.start, span.end)
    where.add("time_unix_nano >= %s AND time_unix_nano < %s", span.start_ns, span.end_ns)
    if f.get("service") is not None:
        where.add("service_name = %s", f["service"])
    for key, candidates in f.get("attrs", {}).items():
        where.add("(" + " OR ".join(["attributes @> %s"] * len(candidates)) + ")", *(Jsonb({key: v}) for v in candidates))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {POINT_FIELDS} FROM metric_points WHERE {where.sql()} ORDER BY series_id, time_unix_nano LIMIT %s",
                          [*where.args, MAX_POINTS + 1])
        rows = await cur.fetchall()
    if len(rows) > MAX_POINTS:
        raise bad_parameter("start", f"the window holds more than {MAX_POINTS} points of this metric; narrow it or filter by attribute")
    return rows


@dataclass
class _Bucket:
    values: list[float] = field(default_factory=list)  # gauge/sum values, in time order
    increase: float = 0.0
    count: int = 0
    total: float = 0.0
    bounds: list[float] | None = None
    counts: list[float] | None = None
    last_row: dict[str, Any] | None = None


def series(rows: list[dict[str, Any]], aggregation: str, span: Window, width_ns: int) -> dict[str, Any]:
    """The answer's metric description and its series."""
    if not rows:
        return {"metric": None, "series": []}
    kind = rows[0]["metric_type"]
    if aggregation not in ALLOWED[kind]:
        raise bad_parameter("aggregation", f"a {kind} metric takes {', '.join(ALLOWED[kind])}, not {aggregation}")
    out = []
    by_series: dict[bytes, list[dict[str, Any]]] = {}
    for row in rows:
        by_series.setdefault(bytes(row["series_id"]), []).append(row)
    for points_of_series in by_series.values():
        buckets: dict[int, _Bucket] = {}
        previous: dict[str, Any] | None = None
        for row in points_of_series:
            start = span.start_ns + (row["time_unix_nano"] - span.start_ns) // width_ns * width_ns
            bucket = buckets.setdefault(start, _Bucket())
            _fold(bucket, row, previous, kind)
            previous = row
        first = points_of_series[0]
        out.append({
            "attributes": first["attributes"], "service_name": first["service_name"],
            "resource_attributes": first["resource_attributes"],
            "points": [{"bucket": rfc3339_nanos(start), "bucket_unix_nano": start, "value": _value(b, aggregation, kind, width_ns)}
                       for start, b in sorted(buckets.items())],
        })
    first = rows[0]
    metric = {"type": kind, "unit": first["unit"], "description": first["description"],
              "temporality": {1: "delta", 2: "cumulative"}.get(first["temporality"]), "monotonic": first["is_monotonic"]}
    return {"metric": metric, "series": out}


def _reset(row: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    return previous is None or row["start_time_unix_nano"] != previous["start_time_unix_nano"]


def _fold(bucket: _Bucket, row: dict[str, Any], previous: dict[str, Any] | None, kind: str) -> None:
    cumulative = row["temporality"] == CUMULATIVE
    bucket.last_row = row
    if kind in ("gauge", "sum"):
        value = row["value"]
        if value is None:
            return
        bucket.values.append(value)
        if kind == "sum":
            if not cumulative:
                bucket.increase += value
            elif previous is not None and previous["value"] is not None:
                step = value - previous["value"]
                bucket.increase += value if (_reset(row, previous) or step < 0) else step
        return
    if kind == "summary":
        bucket.count += row["count"] or 0
        bucket.total += row["sum"] or 0.0
        return
    bounds, counts = _buckets(row)
    count, total = row["count"] or 0, row["sum"] or 0.0
    if cumulative:
        if previous is None:
            return  # the first cumulative point says nothing about the window itself
        if not _reset(row, previous) and count >= (previous["count"] or 0):
            _, before = _buckets(previous)
            if len(before) == len(counts):
                counts = [a - b for a, b in zip(counts, before)]
            count -= previous["count"] or 0
            total -= previous["sum"] or 0.0
    bucket.count += count
    bucket.total += total
    if bucket.counts is None or bucket.bounds != bounds or len(bucket.counts) != len(counts):
        bucket.bounds, bucket.counts = bounds, list(counts)
    else:
        bucket.counts = [a + b for a, b in zip(bucket.counts, counts)]


def _buckets(row: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Explicit bounds and counts; an exponential histogram's positive buckets made explicit
    (bucket i holds (base^i, base^(i+1)]), its zero bucket below them."""
    if row["metric_type"] == "histogram":
        return list(row["explicit_bounds"] or []), [float(c) for c in row["bucket_counts"] or []]
    base = 2.0 ** (2.0 ** -(row["scale"] or 0))
    offset = row["positive_offset"] or 0
    positive = row["positive_bucket_counts"] or []
    bounds = [0.0] + [base ** (offset + k + 1) for k in range(len(positive))]
    counts = [float(row["zero_count"] or 0)] + [float(c) for c in positive] + [0.0]
    return bounds, counts


def _percentile(bucket: _Bucket, q: float) -> float | None:
    counts, bounds = bucket.counts, bucket.bounds
    if not counts or bounds is None:
        return None
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index, count in enumerate(counts):
        if count > 0 and seen + count >= rank:
            low = bounds[index - 1] if index > 0 else min(0.0, bounds[0]) if bounds else 0.0
            high = bounds[index] if index < len(bounds) else bounds[-1]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return bounds[-1] if bounds else None


def _value(bucket: _Bucket, aggregation: str, kind: str, width_ns: int) -> float | None:
    seconds = width_ns / 1e9
    if kind in ("gauge", "sum"):
        values = bucket.values
        if aggregation == "count":
            return float(len(values))
        if not values:
            return None
        return {
            "last": lambda: values[-1], "avg": lambda: sum(values) / len(values), "min": lambda: min(values),
            "max": lambda: max(values), "sum": lambda: bucket.increase if kind == "sum" else sum(values),
            "rate": lambda: bucket.increase / seconds,
        }[aggregation]()
    if kind == "summary" and bucket.last_row is not None and aggregation in PERCENTILES:
        row = bucket.last_row
        wanted = PERCENTILES[aggregation]
        pairs = list(zip(row["quantiles"] or [], row["quantile_values"] or []))
        return min(pairs, key=lambda p: abs(p[0] - wanted))[1] if pairs else None
    if aggregation == "count":
        return float(bucket.count)
    if aggregation == "sum":
        return bucket.total
    if aggregation == "avg":
        return bucket.total / bucket.count if bucket.count else None
    if aggregation == "rate":
        return bucket.count / seconds
    value = _percentile(bucket, PERCENTILES[aggregation])
    return None if value is None or math.isnan(value) else value
