"""Rows of one table (logs, metric_points) into PostgreSQL, exactly once, in one transaction:
the span writer's method (storage/writer.py) for a signal with one table.

Fast path: COPY straight into the table under a savepoint. A batch meeting a stored row (a
redelivered entry) fails that COPY with a unique violation; it then goes through a temporary
staging table and INSERT … SELECT … ON CONFLICT DO NOTHING, which skips the stored rows.
Daily partitions near the rows' days are made first on plain PostgreSQL
(observatory_ensure_signal_partitions, migrations/0004).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import psycopg
from psycopg import errors

from storage import metrics
from storage.items import TableRows
from storage.writer import PARTITION_DAYS_AHEAD, PARTITION_DAYS_BACK, _day, register_copy_dumpers, use_lz4


class TableWriter:
    def __init__(self, conn: psycopg.AsyncConnection, table: str, columns: tuple[str, ...], types: tuple[str, ...],
                 retention_days: int = 0) -> None:
        self.conn = conn
        self.table = table
        self.columns = columns
        self.types = list(types)
        register_copy_dumpers(conn)
        self.days_back = min(retention_days, PARTITION_DAYS_BACK) if retention_days else PARTITION_DAYS_BACK
        self._partition_days: set[date] = set()
        self._prepared = False
        self.timescaledb = False
        self._column_list = ", ".join(columns)

    async def _prepare(self) -> None:
        if self._prepared:
            return
        await use_lz4(self.conn)
        async with self.conn.transaction():
            await self.conn.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS staging_{self.table} (LIKE {self.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            row = await (await self.conn.execute("SELECT observatory_uses_timescaledb()")).fetchone()
        self.timescaledb = bool(row and row[0])
        self._prepared = True

    async def _ensure_partitions(self, rows: TableRows) -> None:
        if self.timescaledb or rows.min_ns is None or rows.max_ns is None:
            return
        today = datetime.now(timezone.utc).date()
        first = max(_day(rows.min_ns), today - timedelta(days=self.days_back))
        last = min(_day(rows.max_ns), today + timedelta(days=PARTITION_DAYS_AHEAD))
        if first > last:
            return
        days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        if days <= self._partition_days:
            return
        await self.conn.execute("SELECT observatory_ensure_signal_partitions(%s, %s)", (first, last))
        self._partition_days |= days

    async def write(self, rows: TableRows) -> int:
        """Store the rows; returns how many were new (the rest were already stored)."""
        await self._prepare()
        await self._ensure_partitions(rows)
        async with self.conn.transaction():
            try:
                async with self.conn.transaction():  # a savepoint
                    await self._copy(self.table, rows)
                return len(rows)
            except errors.UniqueViolation:
                metrics.SLOW_PATH_BATCHES.inc()
            await self._copy(f"staging_{self.table}", rows)
            cursor = await self.conn.execute(
                f"INSERT INTO {self.table} ({self._column_list}) SELECT {self._column_list} FROM staging_{self.table} "
                "ON CONFLICT DO NOTHING")
            return cursor.rowcount

    async def _copy(self, table: str, rows: TableRows) -> None:
        if not rows.rows:
            return
        async with self.conn.cursor() as cur:
            async with cur.copy(f"COPY {table} ({self._column_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(self.types)
                for row in rows.rows:
                    await copy.write_row(row)
