"""One batch of rows into PostgreSQL, idempotently, in one transaction.

COPY (binary) into temporary staging tables, then INSERT … SELECT … ON CONFLICT DO
NOTHING into the span tables, so a redelivered entry never duplicates a row. On plain
PostgreSQL the same statement feeds the rows it really inserted into the per-minute
rollups (`span_rollups_1m`), so they count each span exactly once; with TimescaleDB the
rollups are a continuous aggregate and the writer leaves them alone. The caller
acknowledges the batch's stream entries only after `write` returns.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import psycopg

from storage import metrics
from storage.decode import (
    EVENT_COLUMNS, EVENT_TYPES, LINK_COLUMNS, LINK_TYPES, SPAN_COLUMNS, SPAN_TYPES, Rows,
)

_EPOCH = "timestamptz 'epoch' + ({col} / 1000) * interval '1 microsecond'"
# Partitions are made on demand only for days near now (and inside retention): clocks far
# off land in the default partition instead of creating a table each.
PARTITION_DAYS_BACK = 400
PARTITION_DAYS_AHEAD = 7


def _staging(name: str, columns: tuple[str, ...], types: tuple[str, ...]) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in zip(columns, types))
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({cols}) ON COMMIT DELETE ROWS"


_SPAN_TARGET = [c for c in SPAN_COLUMNS if c not in ("resource_attributes", "attributes")]
_INSERT_SPANS = f"""
INSERT INTO spans ({", ".join(_SPAN_TARGET)}, resource_attributes, attributes, start_time, end_time, duration_ns)
SELECT {", ".join(_SPAN_TARGET)}, resource_attributes::jsonb, attributes::jsonb,
       {_EPOCH.format(col="start_time_unix_nano")}, {_EPOCH.format(col="end_time_unix_nano")},
       end_time_unix_nano - start_time_unix_nano
FROM staging_spans
ON CONFLICT DO NOTHING
"""
_COUNT_SPANS = f"WITH inserted AS ({_INSERT_SPANS} RETURNING 1) SELECT count(*) FROM inserted"
# Only RETURNING rows reach the rollup: a redelivered span adds nothing. Rows are upserted
# in key order so two writers touching the same minutes lock them in the same order.
_INSERT_SPANS_AND_ROLLUPS = f"""
WITH inserted AS (
    {_INSERT_SPANS}
    RETURNING start_time, service_name, coalesce(llm_request_model, llm_response_model) AS model,
              llm_provider, status_code, input_tokens, output_tokens, cost_total_usd, duration_ns
), rolled AS (
    INSERT INTO span_rollups_1m AS r (bucket, service_name, model, provider, span_count, error_count,
                                      input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns)
    SELECT date_trunc('minute', start_time), service_name, model, llm_provider, count(*),
           count(*) FILTER (WHERE status_code = 2), coalesce(sum(input_tokens), 0),
           coalesce(sum(output_tokens), 0), coalesce(sum(cost_total_usd), 0), sum(duration_ns), max(duration_ns)
    FROM inserted
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (bucket, service_name, model, provider) DO UPDATE SET
        span_count = r.span_count + excluded.span_count,
        error_count = r.error_count + excluded.error_count,
        input_tokens = r.input_tokens + excluded.input_tokens,
        output_tokens = r.output_tokens + excluded.output_tokens,
        cost_usd = r.cost_usd + excluded.cost_usd,
        duration_sum_ns = r.duration_sum_ns + excluded.duration_sum_ns,
        duration_max_ns = greatest(r.duration_max_ns, excluded.duration_max_ns)
)
SELECT count(*) FROM inserted
"""
_INSERT_EVENTS = f"""
INSERT INTO span_events (trace_id, span_id, span_start_time, event_index, time, time_unix_nano, name,
                         attributes, dropped_attributes_count)
SELECT trace_id, span_id, {_EPOCH.format(col="span_start_unix_nano")}, event_index,
       {_EPOCH.format(col="time_unix_nano")}, time_unix_nano, name, attributes::jsonb, dropped_attributes_count
FROM staging_events
ON CONFLICT DO NOTHING
"""
_INSERT_LINKS = f"""
INSERT INTO span_links (trace_id, span_id, span_start_time, link_index, linked_trace_id, linked_span_id,
                        trace_state, flags, attributes, dropped_attributes_count)
SELECT trace_id, span_id, {_EPOCH.format(col="span_start_unix_nano")}, link_index, linked_trace_id,
       linked_span_id, trace_state, flags, attributes::jsonb, dropped_attributes_count
FROM staging_links
ON CONFLICT DO NOTHING
"""


def _day(ns: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)).date()


class SpanWriter:
    """Writes Rows over one autocommit connection; the caller opens and closes it."""

    def __init__(self, conn: psycopg.AsyncConnection, retention_days: int = 0) -> None:
        self.conn = conn
        self.days_back = min(retention_days, PARTITION_DAYS_BACK) if retention_days else PARTITION_DAYS_BACK
        self._partition_days: set[date] = set()
        self._prepared = False
        self.timescaledb = False

    async def _prepare(self) -> None:
        if self._prepared:
            return
        async with self.conn.transaction():
            await self.conn.execute(_staging("staging_spans", SPAN_COLUMNS, SPAN_TYPES))
            await self.conn.execute(_staging("staging_events", EVENT_COLUMNS, EVENT_TYPES))
            await self.conn.execute(_staging("staging_links", LINK_COLUMNS, LINK_TYPES))
            row = await (await self.conn.execute("SELECT observatory_uses_timescaledb()")).fetchone()
        self.timescaledb = bool(row and row[0])
        self._prepared = True

    async def _ensure_partitions(self, rows: Rows) -> None:
        if self.timescaledb or rows.min_start_ns is None or rows.max_start_ns is None:
            return
        today = datetime.now(timezone.utc).date()
        first = max(_day(rows.min_start_ns), today - timedelta(days=self.days_back))
        last = min(_day(rows.max_start_ns), today + timedelta(days=PARTITION_DAYS_AHEAD))
        if first > last:
            return
        days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        if days <= self._partition_days:
            return
        await self.conn.execute("SELECT observatory_ensure_partitions(%s, %s)", (first, last))
        self._partition_days |= days

    async def write(self, rows: Rows) -> int:
        """Store the rows; returns how many span rows were new (the rest were duplicates)."""
        await self._prepare()
        await self._ensure_partitions(rows)  # its own transaction: partitions outlive a failed batch
        async with self.conn.transaction():
            started = time.perf_counter()
            await self._copy("staging_spans", SPAN_COLUMNS, SPAN_TYPES, rows.spans)
            if rows.events:
                await self._copy("staging_events", EVENT_COLUMNS, EVENT_TYPES, rows.events)
            if rows.links:
                await self._copy("staging_links", LINK_COLUMNS, LINK_TYPES, rows.links)
            metrics.COPY_SECONDS.observe(time.perf_counter() - started)
            statement = _COUNT_SPANS if self.timescaledb else _INSERT_SPANS_AND_ROLLUPS
            row = await (await self.conn.execute(statement)).fetchone()
            if rows.events:
                await self.conn.execute(_INSERT_EVENTS)
            if rows.links:
                await self.conn.execute(_INSERT_LINKS)
        return int(row[0]) if row else 0

    async def _copy(self, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]) -> None:
        async with self.conn.cursor() as cur:
            async with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(types))
                for row in rows:
                    await copy.write_row(row)
