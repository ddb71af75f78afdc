"""One batch of rows into PostgreSQL, idempotently, in one transaction.

COPY (binary) into temporary staging tables, then INSERT … SELECT … ON CONFLICT DO
NOTHING into the partitioned tables, so a redelivered entry never duplicates a row. The
caller acknowledges the batch's stream entries only after `write` returns.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import psycopg

from storage.decode import (
    EVENT_COLUMNS, EVENT_TYPES, LINK_COLUMNS, LINK_TYPES, SPAN_COLUMNS, SPAN_TYPES, Rows,
)

_EPOCH = "timestamptz 'epoch' + ({col} / 1000) * interval '1 microsecond'"
# Partitions are made only for days near now; clocks far off land in the default partition.
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

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        self.conn = conn
        self._partition_days: set[date] = set()
        self._staging_ready = False

    async def _prepare(self) -> None:
        if self._staging_ready:
            return
        async with self.conn.transaction():
            await self.conn.execute(_staging("staging_spans", SPAN_COLUMNS, SPAN_TYPES))
            await self.conn.execute(_staging("staging_events", EVENT_COLUMNS, EVENT_TYPES))
            await self.conn.execute(_staging("staging_links", LINK_COLUMNS, LINK_TYPES))
        self._staging_ready = True

    async def _ensure_partitions(self, rows: Rows) -> None:
        if rows.min_start_ns is None or rows.max_start_ns is None:
            return
        today = datetime.now(timezone.utc).date()
        first = max(_day(rows.min_start_ns), today - timedelta(days=PARTITION_DAYS_BACK))
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
            await self._copy("staging_spans", SPAN_COLUMNS, SPAN_TYPES, rows.spans)
            inserted = (await self.conn.execute(_INSERT_SPANS)).rowcount
            if rows.events:
                await self._copy("staging_events", EVENT_COLUMNS, EVENT_TYPES, rows.events)
                await self.conn.execute(_INSERT_EVENTS)
            if rows.links:
                await self._copy("staging_links", LINK_COLUMNS, LINK_TYPES, rows.links)
                await self.conn.execute(_INSERT_LINKS)
        return inserted

    async def _copy(self, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]) -> None:
        async with self.conn.cursor() as cur:
            async with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(types))
                for row in rows:
                    await copy.write_row(row)
