"""One batch of rows into PostgreSQL, exactly once, in one transaction.

Fast path: COPY the rows straight into the span tables (COPY's multi-row inserts are the
fastest way in). A batch holding a span that is already stored (an entry redelivered after
a crash) makes that COPY fail with a unique violation; the savepoint around it is rolled
back and the batch takes the slow path: COPY into temporary staging tables, then
INSERT … SELECT … ON CONFLICT DO NOTHING, which skips the stored rows. Either way, on
plain PostgreSQL the rows really inserted are folded into `span_rollups_1m` and
`span_rollups_1h` in the same transaction. The caller acknowledges the batch's stream entries only after `write` returns.
"""

from __future__ import annotations

import struct
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg import errors
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.string import BytesBinaryDumper

from storage import metrics, rollups
from storage.decode import EVENT_COLUMNS, EVENT_TYPES, LINK_COLUMNS, LINK_TYPES, SPAN_COLUMNS, SPAN_TYPES, Rows

# Partitions are made on demand only for days near now (and inside retention): clocks far
# off land in the default partition instead of creating a table each.
PARTITION_DAYS_BACK = 400
PARTITION_DAYS_AHEAD = 7
_TABLES = (
    ("spans", SPAN_COLUMNS, SPAN_TYPES),
    ("span_events", EVENT_COLUMNS, EVENT_TYPES),
    ("span_links", LINK_COLUMNS, LINK_TYPES),
)
# Spans whose key conflicted are told apart by their exact start (same key, same nanosecond).
_KEY = ("trace_id", "span_id", "start_time_unix_nano")
_INT8 = struct.Struct("!q").pack
_KEY_AT = tuple(SPAN_COLUMNS.index(c) for c in _KEY)


def _staging(table: str, columns: tuple[str, ...], types: tuple[str, ...]) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in zip(columns, types))
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS staging_{table} ({cols}) ON COMMIT DELETE ROWS"


def _insert_from_staging(table: str, columns: tuple[str, ...], returning: str = "") -> str:
    cols = ", ".join(columns)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM staging_{table} ON CONFLICT DO NOTHING {returning}"


_INSERT_SPANS = _insert_from_staging("spans", SPAN_COLUMNS, f"RETURNING {', '.join(_KEY)}")


class TimestamptzMicrosDumper(Dumper):
    """Binary timestamptz from decode's int of microseconds since 2000-01-01 UTC."""

    format = Format.BINARY

    def dump(self, obj: int) -> bytes:
        return _INT8(obj)


class JsonbTextDumper(Dumper):
    """Binary jsonb from bytes that already hold a JSON document (decode made them with orjson).

    psycopg's own jsonb dumper would serialise the value again, storing a JSON string.
    Registered by oid only, so it applies where COPY's set_types says jsonb.
    """

    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj  # jsonb's binary format: version 1, then the text


def register_copy_dumpers(conn: psycopg.AsyncConnection | psycopg.Connection) -> None:
    """The dumpers COPY uses for decode's rows, chosen by the column types given to set_types."""
    for name, base in (("jsonb", JsonbTextDumper), ("timestamptz", TimestamptzMicrosDumper)):
        info = conn.adapters.types[name]
        assert info is not None
        conn.adapters.register_dumper(None, type(f"{base.__name__}_{name}", (base,), {"oid": info.oid}))
    # By oid, bytea resolves to a Python subclass (psycopg.dbapi20's); the plain one is in C.
    conn.adapters.register_dumper(None, BytesBinaryDumper)


USE_LZ4 = "SET default_toast_compression = 'lz4'"
NO_LZ4 = (errors.InvalidParameterValue, errors.FeatureNotSupported)  # a server built without lz4


async def use_lz4(conn: psycopg.AsyncConnection) -> None:
    """Compress this session's TOASTed values (the attribute documents of LLM spans, often
    over the ~2 KB TOAST threshold) with lz4 instead of pglz, where the server has lz4.

    Measured on loadgen spans (27 % of them TOASTed): COPY into `spans` 44k -> 56k rows/s of
    PostgreSQL CPU, same size on disk (docs/STORAGE.md). A session setting applies to every
    column left at the default compression: partitions, hypertable chunks, staging tables.
    Values already stored keep their method; both read back the same. Call it outside a
    transaction block (the connection is autocommit).
    """
    try:
        await conn.execute(USE_LZ4)
    except NO_LZ4:
        pass  # pglz, as before


def _day(ns: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)).date()


class SpanWriter:
    """Writes Rows over one autocommit connection; the caller opens and closes it."""

    def __init__(self, conn: psycopg.AsyncConnection, retention_days: int = 0) -> None:
        self.conn = conn
        register_copy_dumpers(conn)
        self.days_back = min(retention_days, PARTITION_DAYS_BACK) if retention_days else PARTITION_DAYS_BACK
        self._partition_days: set[date] = set()
        self._prepared = False
        self.timescaledb = False

    async def _prepare(self) -> None:
        if self._prepared:
            return
        await use_lz4(self.conn)
        async with self.conn.transaction():
            for table, columns, types in _TABLES:
                await self.conn.execute(_staging(table, columns, types))
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
            inserted = await self._copy_direct(rows)
            if inserted is None:
                inserted = await self._insert_new(rows)
            if not self.timescaledb:
                await rollups.upsert(self.conn, inserted)
        return len(inserted)

    async def _copy_direct(self, rows: Rows) -> list[tuple[Any, ...]] | None:
        """All rows by COPY; None (and nothing written) when some span is already stored."""
        started = time.perf_counter()
        try:
            async with self.conn.transaction():  # a savepoint
                for (table, columns, types), batch in zip(_TABLES, (rows.spans, rows.events, rows.links)):
                    await self._copy(table, columns, types, batch)
        except errors.UniqueViolation:
            metrics.SLOW_PATH_BATCHES.inc()
            return None
        metrics.COPY_SECONDS.observe(time.perf_counter() - started)
        return rows.spans

    async def _insert_new(self, rows: Rows) -> list[tuple[Any, ...]]:
        """Through staging tables with ON CONFLICT DO NOTHING; returns the span rows inserted."""
        for (table, columns, types), batch in zip(_TABLES, (rows.spans, rows.events, rows.links)):
            await self._copy(f"staging_{table}", columns, types, batch)
        async with self.conn.cursor() as cur:
            await cur.execute(_INSERT_SPANS)
            new = {tuple(key) for key in await cur.fetchall()}
        for table, columns, _types in _TABLES[1:]:
            await self.conn.execute(_insert_from_staging(table, columns))
        return [span for span in rows.spans if tuple(span[i] for i in _KEY_AT) in new]

    async def _copy(self, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        async with self.conn.cursor() as cur:
            async with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(types))
                for row in rows:
                    await copy.write_row(row)
