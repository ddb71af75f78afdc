"""Per-minute rollups on plain PostgreSQL: span rows folded into `span_rollups_1m` upserts.

The writer calls `upsert` in the transaction that inserted the spans, with only the rows
that transaction really inserted, so a redelivered span is never counted twice. (With
TimescaleDB `span_rollups_1m` is a continuous aggregate and nothing here runs.) The
bucket, model and error rules are the continuous aggregate's: a UTC minute,
coalesce(request model, response model), status code 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg

from storage.decode import PG_EPOCH_US, SPAN_COLUMNS

_START = SPAN_COLUMNS.index("start_time")
_SERVICE = SPAN_COLUMNS.index("service_name")
_REQUEST_MODEL = SPAN_COLUMNS.index("llm_request_model")
_RESPONSE_MODEL = SPAN_COLUMNS.index("llm_response_model")
_PROVIDER = SPAN_COLUMNS.index("llm_provider")
_STATUS = SPAN_COLUMNS.index("status_code")
_INPUT = SPAN_COLUMNS.index("input_tokens")
_OUTPUT = SPAN_COLUMNS.index("output_tokens")
_COST = SPAN_COLUMNS.index("cost_total_usd")
_DURATION = SPAN_COLUMNS.index("duration_ns")
STATUS_ERROR = 2
MINUTE_US = 60_000_000
_PG_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=PG_EPOCH_US)

# Rows go in key order so two writers touching the same minutes lock them in the same order.
_UPSERT = """
INSERT INTO span_rollups_1m AS r (bucket, service_name, model, provider, span_count, error_count,
                                  input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[],
                     %s::int8[], %s::int8[], %s::numeric[], %s::int8[], %s::int8[])
ON CONFLICT (bucket, service_name, model, provider) DO UPDATE SET
    span_count = r.span_count + excluded.span_count,
    error_count = r.error_count + excluded.error_count,
    input_tokens = r.input_tokens + excluded.input_tokens,
    output_tokens = r.output_tokens + excluded.output_tokens,
    cost_usd = r.cost_usd + excluded.cost_usd,
    duration_sum_ns = r.duration_sum_ns + excluded.duration_sum_ns,
    duration_max_ns = greatest(r.duration_max_ns, excluded.duration_max_ns)
"""


def aggregate(spans: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rollup rows (one per minute, service, model, provider) of span rows, in key order."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for span in spans:
        model = span[_REQUEST_MODEL] if span[_REQUEST_MODEL] is not None else span[_RESPONSE_MODEL]
        start = span[_START]  # microseconds since 2000-01-01 UTC
        key = (start - start % MINUTE_US, span[_SERVICE], model, span[_PROVIDER])
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0, 0, 0, 0, Decimal(0), 0, 0]
        duration = span[_DURATION]
        group[0] += 1
        group[1] += span[_STATUS] == STATUS_ERROR
        group[2] += span[_INPUT] or 0
        group[3] += span[_OUTPUT] or 0
        group[4] += span[_COST] or 0
        group[5] += duration
        group[6] = max(group[6], duration)
    return [[_PG_EPOCH + timedelta(microseconds=key[0]), *key[1:], *values]
            for key, values in sorted(groups.items(), key=_order)]


def _order(item: tuple[tuple[Any, ...], list[Any]]) -> tuple[Any, ...]:
    bucket, service, model, provider = item[0]
    return (bucket, service, model is None, model or "", provider is None, provider or "")


async def upsert(conn: psycopg.AsyncConnection, spans: list[tuple[Any, ...]]) -> None:
    rollups = aggregate(spans)
    if rollups:
        await conn.execute(_UPSERT, [list(column) for column in zip(*rollups)])
