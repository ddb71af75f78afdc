"""Usage over time: counts, errors, tokens and cost from the rollups for every whole
rollup bucket of the window (the coarsest tier first: hourly where configured, then
per-minute), from raw spans for the partial minutes at its edges; latency percentiles
exact over the raw spans, or, when the window holds more than API_PERCENTILE_SAMPLE_SPANS,
exact over the spans of one time slice of each bucket (a systematic time sample of about
that many spans; latency_sample_fraction says which share of time was read).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.queries import ERROR, Where, in_window
from api.window import Window

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
# API_ROLLUP_TIERS name -> (relation, bucket width); every tier has the columns of span_rollups_1m.
TIERS = {"1m": ("span_rollups_1m", MINUTE), "1h": ("span_rollups_1h", HOUR)}
# group name -> (rollup column, the same value computed from a span row)
GROUPS = {
    "service": ("service_name", "service_name"),
    "model": ("model", "coalesce(llm_request_model, llm_response_model)"),
    "provider": ("provider", "llm_provider"),
}
_ROLLUP_BUCKET = "date_bin(%s::interval, bucket, timestamptz 'epoch')"
_SPAN_BUCKET = "date_bin(%s::interval, start_time, timestamptz 'epoch')"
_WHOLE = "NULL::timestamptz"


@dataclass(frozen=True)
class Usage:
    rows: list[dict[str, Any]]
    source: str  # rollups, raw, or rollups+raw
    sample_fraction: float  # of spans the percentiles were computed from


def _filters(where: Where, f: Mapping[str, Any], rollup: bool) -> None:
    for name in ("service", "model", "provider"):
        if f.get(name) is not None:
            where.add(f"{GROUPS[name][0 if rollup else 1]} = %s", f[name])
    if f.get("llm_only"):
        where.add(f"{GROUPS['model'][0 if rollup else 1]} IS NOT NULL")


def _plan(span: Window, tiers: Sequence[tuple[str, int]]) -> list[tuple[str | None, Window]]:
    """(relation, part) covering the window: whole buckets of the first tier, the partial
    edges from the finer tiers, and what no tier covers from raw spans (None)."""
    if not tiers:
        return [(None, span)]
    relation, width = tiers[0]
    first = -(-span.start_ns // width) * width
    last = span.end_ns // width * width
    if first >= last:
        return _plan(span, tiers[1:])
    parts: list[tuple[str | None, Window]] = [(relation, Window(first, last))]
    for edge in (Window(span.start_ns, first), Window(last, span.end_ns)):
        if edge.start_ns < edge.end_ns:
            parts += _plan(edge, tiers[1:])
    return parts


def usable_tiers(names: Sequence[str], bucket: timedelta | None) -> list[tuple[str, int]]:
    """Tiers, coarsest first, whose buckets fit whole into the answer's buckets."""
    tiers = sorted((TIERS[n] for n in names), key=lambda t: -t[1])
    step = None if bucket is None else int(bucket.total_seconds()) * 1_000_000_000
    return [t for t in tiers if step is None or step % t[1] == 0]


def _select(bucket: timedelta | None, groups: Sequence[str], rollup: bool) -> tuple[str, list[Any]]:
    expr = _WHOLE if bucket is None else (_ROLLUP_BUCKET if rollup else _SPAN_BUCKET)
    columns = [f"{expr} AS bucket"] + [f"{GROUPS[g][0 if rollup else 1]} AS {g}" for g in groups]
    return ", ".join(columns), ([] if bucket is None else [bucket])


def _totals_statement(
    f: Mapping[str, Any], span: Window, bucket: timedelta | None, groups: Sequence[str], tiers: Sequence[tuple[str, int]],
) -> tuple[str, list[Any], str]:
    plan = _plan(span, tiers)
    parts: list[str] = []
    args: list[Any] = []
    for relation, part in plan:
        select, select_args = _select(bucket, groups, rollup=relation is not None)
        where = Where()
        if relation is not None:
            where.add("bucket >= %s AND bucket < %s", part.start, part.end)
            _filters(where, f, rollup=True)
            parts.append(
                f"SELECT {select}, span_count, error_count, input_tokens, output_tokens, cost_usd, duration_sum_ns, "
                f"duration_max_ns FROM {relation} WHERE {where.sql()}"
            )
        else:
            in_window(where, part)
            _filters(where, f, rollup=False)
            parts.append(
                f"SELECT {select}, 1 AS span_count, (status_code = {ERROR})::int AS error_count, input_tokens, output_tokens, "
                f"cost_total_usd AS cost_usd, duration_ns AS duration_sum_ns, duration_ns AS duration_max_ns "
                f"FROM spans WHERE {where.sql()}"
            )
        args += select_args + where.args
    keys = ", ".join(["bucket", *groups])
    statement = (
        f"SELECT {keys}, sum(span_count)::bigint AS span_count, sum(error_count)::bigint AS error_count, "
        f"coalesce(sum(input_tokens), 0)::bigint AS input_tokens, coalesce(sum(output_tokens), 0)::bigint AS output_tokens, "
        f"coalesce(sum(cost_usd), 0) AS cost_usd, sum(duration_sum_ns) AS duration_sum_ns, "
        f"max(duration_max_ns) AS duration_max_ns FROM ({' UNION ALL '.join(parts)}) AS parts "
        f"GROUP BY {keys} ORDER BY {keys}"
    )
    sources = {"raw" if relation is None else "rollups" for relation, _ in plan}
    return statement, args, "+".join(sorted(sources, reverse=True))


def sample_slices(span: Window, bucket: timedelta, every: int) -> list[Window]:
    """One slice of each answer bucket, 1/every of its width, at an offset that moves on by
    one slice from bucket to bucket (so no slice of the day is always or never read)."""
    width_ns = int(bucket.total_seconds()) * 1_000_000_000
    slice_ns = max(1000, width_ns // every)
    slices = []
    for start in range(span.start_ns // width_ns * width_ns, span.end_ns, width_ns):
        low = start + (start // width_ns) % every * slice_ns
        part = Window(max(low, span.start_ns), min(low + slice_ns, start + width_ns, span.end_ns))
        if part.start_ns < part.end_ns:
            slices.append(part)
    return slices


async def _percentiles(
    conn: AsyncConnection, f: Mapping[str, Any], span: Window, bucket: timedelta | None, groups: Sequence[str], every: int,
    sample_cap: int = 100_000,
) -> dict[tuple[Any, ...], list[float]]:
    """Exact percentile_cont over the spans of the window (every == 1), or over those starting
    in one slice of 1/every of each bucket. Only the time index and the filters pick the rows,
    so compressed and uncompressed chunks give the same answer (TABLESAMPLE would not: it
    reads pages, and TimescaleDB ignores it on compressed chunks)."""
    select, args = _select(bucket, groups, rollup=False)
    keys = ", ".join(["bucket", *groups])
    where = Where()
    _filters(where, f, rollup=False)
    if every == 1 or bucket is None:
        in_window(where, span)
        source = f"SELECT {select}, duration_ns FROM spans WHERE {where.sql()}"
        source_args = args + where.args
    else:
        slices = sample_slices(span, bucket, every)
        # One index range scan per slice, one slice per bucket. The LIMIT (never reached
        # unless one slice alone holds more than the whole sample) keeps the subquery from
        # being flattened: the planner cannot estimate the slices, and once chose a scan of
        # every span joined to them (24 s instead of 40 ms on 1M spans).
        source = (
            f"SELECT {select}, duration_ns FROM unnest(%s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::bigint[]) "
            f"AS sl(lo, hi, lo_ns, hi_ns) CROSS JOIN LATERAL (SELECT * FROM spans WHERE start_time >= sl.lo AND start_time < sl.hi "
            f"AND start_time_unix_nano >= sl.lo_ns AND start_time_unix_nano < sl.hi_ns AND {where.sql()} LIMIT %s) AS spans"
        )
        source_args = args + [[w.start for w in slices], [w.end for w in slices],
                              [w.start_ns for w in slices], [w.end_ns for w in slices]] + where.args + [sample_cap]
    statement = (
        f"SELECT {keys}, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ns) AS p "
        f"FROM ({source}) AS s GROUP BY {keys}"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, source_args)
        return {tuple(row[k] for k in ("bucket", *groups)): row["p"] for row in await cur.fetchall()}


async def _rollup_span_count(conn: AsyncConnection, f: Mapping[str, Any], span: Window, tiers: Sequence[str]) -> int:
    """Spans in the window's whole rollup buckets (coarsest tier first): sizes the percentile sample."""
    parts: list[str] = []
    args: list[Any] = []
    for relation, part in _plan(span, usable_tiers(tiers, None)):
        if relation is None:
            continue
        where = Where()
        where.add("bucket >= %s AND bucket < %s", part.start, part.end)
        _filters(where, f, rollup=True)
        parts.append(f"SELECT sum(span_count) AS n FROM {relation} WHERE {where.sql()}")
        args += where.args
    if not parts:
        return 0
    async with conn.cursor() as cur:
        await cur.execute(f"SELECT coalesce(sum(n), 0)::bigint FROM ({' UNION ALL '.join(parts)}) AS counts", args)
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _totals(
    pool: AsyncConnectionPool, f: Mapping[str, Any], span: Window, bucket: timedelta | None, groups: Sequence[str],
    tiers: Sequence[str],
) -> tuple[list[dict[str, Any]], str]:
    statement, args, source = _totals_statement(f, span, bucket, groups, usable_tiers(tiers, bucket))
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, args)
        return await cur.fetchall(), source


async def _sampled_percentiles(
    pool: AsyncConnectionPool, f: Mapping[str, Any], span: Window, bucket: timedelta | None, groups: Sequence[str],
    sample_spans: int, tiers: Sequence[str],
) -> tuple[dict[tuple[Any, ...], list[float]], float]:
    async with pool.connection() as conn:
        count = await _rollup_span_count(conn, f, span, tiers)
        every = max(1, math.ceil(count / sample_spans))
        return await _percentiles(conn, f, span, bucket, groups, every, sample_spans), 1 / every


async def usage(
    pool: AsyncConnectionPool, f: Mapping[str, Any], span: Window, bucket: timedelta | None, groups: Sequence[str],
    sample_spans: int | None, tiers: Sequence[str] = ("1m", "1h"),
) -> Usage:
    """Rows per (bucket, *groups); sample_spans None skips latency percentiles. Totals and
    percentiles run at once on two connections: they read different relations."""
    if sample_spans is None:
        rows, source = await _totals(pool, f, span, bucket, groups, tiers)
        return Usage(rows, source, 0.0)
    (rows, source), (percentiles, fraction) = await asyncio.gather(
        _totals(pool, f, span, bucket, groups, tiers), _sampled_percentiles(pool, f, span, bucket, groups, sample_spans, tiers),
    )
    for row in rows:
        row["percentiles"] = percentiles.get(tuple(row[k] for k in ("bucket", *groups)))
    return Usage(rows, source, fraction)
