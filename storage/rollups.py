"""Rollups on plain PostgreSQL: span rows folded into `span_rollups_1m` and `span_rollups_1h` upserts.

The writer calls `upsert` in the transaction that inserted the spans, with only the rows
that transaction really inserted, so a redelivered span is never counted twice and the two
tiers always hold the same spans. (With TimescaleDB both are continuous aggregates and
nothing here runs.) Sums are held at the bigint maximum instead of overflowing. The bucket, model and error rules are the continuous aggregates': a UTC
minute or hour, coalesce(request model, response model), status code 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

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
HOUR_US = 60 * MINUTE_US
# Finest first: each tier is folded from the one before it, and two writers upsert the
# tables in this order, so they never wait on each other's locks in opposite orders.
TIERS = (("span_rollups_1m", MINUTE_US), ("span_rollups_1h", HOUR_US))
_PG_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=PG_EPOCH_US)

# Rows go in key order so two writers touching the same buckets lock them in the same order.
_UPSERT = """
INSERT INTO {relation} AS r (bucket, service_name, model, provider, span_count, error_count,
                             input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns)
SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::int8[], %b::int8[],
                     %b::int8[], %b::int8[], %b::numeric[], %b::int8[], %b::int8[])
ON CONFLICT (bucket, service_name, model, provider) DO UPDATE SET
    span_count = {span_count},
    error_count = {error_count},
    input_tokens = {input_tokens},
    output_tokens = {output_tokens},
    cost_usd = r.cost_usd + excluded.cost_usd,
    duration_sum_ns = {duration_sum_ns},
    duration_max_ns = greatest(r.duration_max_ns, excluded.duration_max_ns)
"""
INT8_MAX = 2**63 - 1


def _saturating(column: str) -> str:
    """r.column + excluded.column, held at the bigint maximum instead of failing: one
    overflowing bucket would otherwise refuse every later span of its service and model."""
    return f"least(r.{column}::numeric + excluded.{column}, {INT8_MAX})::bigint"


_SUMS = {c: _saturating(c) for c in ("span_count", "error_count", "input_tokens", "output_tokens", "duration_sum_ns")}
# (bucket in microseconds since 2000-01-01 UTC, service, model, provider) ->
# [span_count, error_count, input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns]
Groups = dict[tuple[Any, ...], list[Any]]


def aggregate(spans: list[tuple[Any, ...]]) -> Groups:
    """Per-minute groups of span rows."""
    groups: Groups = {}
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
    return groups


def fold(groups: Groups, width_us: int) -> Groups:
    """The same groups in coarser buckets (a whole number of the finer ones): far fewer
    additions than aggregating the spans again."""
    folded: Groups = {}
    for (bucket, *rest), values in groups.items():
        key = (bucket - bucket % width_us, *rest)
        group = folded.get(key)
        if group is None:
            folded[key] = list(values)
        else:
            for i in range(6):
                group[i] += values[i]
            group[6] = max(group[6], values[6])
    return folded


def rows(groups: Groups) -> list[list[Any]]:
    """Rollup rows (bucket as a datetime) in key order."""
    return [[_PG_EPOCH + timedelta(microseconds=key[0]), *key[1:], *_capped(values)]
            for key, values in sorted(groups.items(), key=_order)]


def _capped(values: list[Any]) -> list[Any]:
    """Python's sums do not overflow, a bigint does: hold them at its maximum, as the upsert does."""
    return [v if isinstance(v, Decimal) or v <= INT8_MAX else INT8_MAX for v in values]


def _order(item: tuple[tuple[Any, ...], list[Any]]) -> tuple[Any, ...]:
    bucket, service, model, provider = item[0]
    return (bucket, service, model is None, model or "", provider is None, provider or "")


async def upsert(conn: psycopg.AsyncConnection, spans: list[tuple[Any, ...]]) -> None:
    """Fold the spans into every tier; the caller's transaction makes the tiers agree."""
    groups = aggregate(spans)
    for relation, width_us in TIERS:
        groups = fold(groups, width_us)
        if groups:
            statement = sql.SQL(_UPSERT).format(relation=sql.Identifier(relation), **{k: sql.SQL(v) for k, v in _SUMS.items()})
            await conn.execute(statement, [list(column) for column in zip(*rows(groups))])
