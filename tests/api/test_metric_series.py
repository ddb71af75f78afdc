"""Metric series folded per bucket, against values worked out by hand from the OTLP data
model's meaning of each kind (cumulative points are running totals; histogram buckets are
(previous bound, bound])."""

from __future__ import annotations

import pytest

from api.metric_series import series
from api.problems import Problem
from api.window import Window

S = 1_000_000_000
WINDOW = Window(0, 120 * S)
MINUTE = 60 * S


def point(kind: str, at_s: int, **fields: object) -> dict:
    row = {"series_id": b"s1", "time_unix_nano": at_s * S, "start_time_unix_nano": 0, "metric_type": kind,
           "temporality": 2, "is_monotonic": kind == "sum" or None, "description": None, "unit": "1", "service_name": "svc",
           "attributes": {"a": 1}, "resource_attributes": {}, "value": None, "count": None, "sum": None, "min": None,
           "max": None, "explicit_bounds": None, "bucket_counts": None, "scale": None, "zero_count": None,
           "positive_offset": None, "positive_bucket_counts": None, "quantiles": None, "quantile_values": None}
    row.update(fields)
    return row


def values(rows: list[dict], aggregation: str) -> list[float | None]:
    (only,) = series(rows, aggregation, WINDOW, MINUTE)["series"]
    return [p["value"] for p in only["points"]]


def test_cumulative_sum_gives_the_increase_per_bucket_and_its_rate() -> None:
    rows = [point("sum", t, value=v) for t, v in ((10, 100.0), (50, 130.0), (70, 190.0), (110, 250.0))]
    # bucket 0: only the increase after the first point is known (30); bucket 1: 60 + 60.
    assert values(rows, "sum") == [30.0, 120.0]
    assert values(rows, "rate") == [0.5, 2.0]
    assert values(rows, "last") == [130.0, 250.0]


def test_a_cumulative_reset_counts_the_new_value() -> None:
    rows = [point("sum", 10, value=100.0), point("sum", 20, value=5.0, start_time_unix_nano=15 * S)]
    assert values(rows, "sum") == [5.0]


def test_delta_sums_add_up_and_gauges_take_the_last_value() -> None:
    assert values([point("sum", t, value=v, temporality=1) for t, v in ((5, 2.0), (30, 3.0), (90, 4.0))], "sum") == [5.0, 4.0]
    gauge = [point("gauge", t, value=v, temporality=None) for t, v in ((5, 7.0), (30, 3.0), (90, 4.0))]
    assert values(gauge, "last") == [3.0, 4.0]
    assert values(gauge, "max") == [7.0, 4.0]


def test_histogram_percentiles_interpolate_inside_the_bucket_of_the_increments() -> None:
    bounds = [10.0, 20.0, 40.0]
    first = point("histogram", 5, count=10, sum=100.0, explicit_bounds=bounds, bucket_counts=[10, 0, 0, 0])
    # Between the two points 10 values arrived: 0 in (-inf,10], 4 in (10,20], 6 in (20,40].
    second = point("histogram", 50, count=20, sum=400.0, explicit_bounds=bounds, bucket_counts=[10, 4, 6, 0])
    rows = [first, second]
    # p50 of 10: rank 5 -> 4 below 20, so 1 of the 6 in (20,40]: 20 + 20 * 1/6.
    assert values(rows, "p50") == [pytest.approx(20 + 20 / 6)]
    # p90: rank 9 -> 5 of 6 into (20,40].
    assert values(rows, "p90") == [pytest.approx(20 + 20 * 5 / 6)]
    assert values(rows, "count") == [10.0]
    assert values(rows, "avg") == [30.0]


def test_an_aggregation_the_kind_does_not_take_is_refused() -> None:
    with pytest.raises(Problem):
        series([point("gauge", 5, value=1.0, temporality=None)], "p99", WINDOW, MINUTE)
