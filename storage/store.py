"""The write stage: rows into PostgreSQL until committed, with the spans the database
refuses set apart.

Errors are told apart by whose fault they are:
- the rows' (class 22 data exception, class 23 integrity, class 54 program limit such as an
  index row too large, or an error raised while encoding a row for COPY): retrying cannot
  help, so the batch is narrowed down (storage/isolation.py) and only the refused spans
  come back to the caller, to be dead-lettered;
- the database's (connection lost, server starting or read-only, privileges, a missing
  table, a deadlock): the same rows are retried with capped backoff for as long as it
  takes, the writer reporting not-ready meanwhile; nothing is counted against the entries;
- anything else raised while writing one span's rows (a bug meeting odd content): that
  span comes back as `unexpected`; its entry's failure count goes up and it is read again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

from common.logging import get_logger
from storage import metrics
from storage.decode import Rows, SpanRows
from storage.isolation import Refused, isolate
from storage.writer import SpanWriter

log = get_logger("storage")

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0
ENCODING_ERRORS = (OverflowError, ValueError, TypeError, UnicodeError)  # raised by dumpers during COPY
SAFE_MESSAGE_STATES = ("54000", "22003", "22008")  # their primary messages name limits, not values


class Unexpected(Refused):
    """Not a data error the database named, not an outage: counted as a failure of the entry."""


def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ("22", "23", "54")


def reason_of(exc: BaseException) -> str:
    """What went wrong, without the content: SQLSTATE and names, or the exception type."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or "?"
        diag = exc.diag
        where = ", ".join(f"{k} {v}" for k, v in (("table", diag.table_name), ("column", diag.column_name),
                                                   ("constraint", diag.constraint_name)) if v)
        message = (diag.message_primary or "") if state in SAFE_MESSAGE_STATES else ""
        parts = [f"SQLSTATE {state} {type(exc).__name__}", message, where]
        return ": ".join(p for p in parts if p)
    return f"{type(exc).__name__} while encoding the row for COPY"


class Store:
    """Writes rows over one connection it opens (and reopens) with `connect`."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], rows_of: Callable[[Sequence[Any]], Any] = Rows.of,
                 signal: str = "traces") -> None:
        self.connect = connect
        self.rows_of = rows_of  # units → the writer's rows (storage/signals.py)
        self.signal = signal
        self.db_error: str | None = None  # the last outage, until a write succeeds (for /ready)
        self._writer: SpanWriter | None = None

    async def write(self, units: Sequence[SpanRows]) -> list[tuple[SpanRows, Refused]]:
        """Store every unit the database accepts; returns the refused ones with their error."""
        failed = await isolate(units, self._write_or_refuse)
        return [(f.unit, f.error) for f in failed]

    async def _write_or_refuse(self, units: Sequence[SpanRows]) -> None:
        """One transaction; Refused for the rows' fault; outages retried here until it commits."""
        rows = self.rows_of(units)
        backoff = BACKOFF_START
        while True:
            try:
                await self._write(rows)
                return
            except (psycopg.Error, OSError) as exc:
                if is_data_error(exc):
                    metrics.DB_ERRORS.labels("data").inc()
                    await self._recover()
                    raise Refused(reason_of(exc)) from exc
                self.db_error = str(exc).strip() or type(exc).__name__
                metrics.DB_ERRORS.labels("unavailable").inc()
                metrics.WRITE_RETRIES.inc()
                log.warning("database write failed, batch kept for retry", error=self.db_error, retry_in=backoff)
                await self.close()
                # Keep retrying even while stopping: acknowledged data must not be dropped;
                # the shutdown timeout bounds how long we try.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except ENCODING_ERRORS as exc:
                metrics.DB_ERRORS.labels("data").inc()
                await self._recover()
                raise Refused(reason_of(exc)) from exc
            except Exception as exc:  # from one span's content, most likely: let isolation find it
                metrics.DB_ERRORS.labels("unexpected").inc()
                log.error("unexpected error while writing", error_type=type(exc).__name__)
                await self.close()
                raise Unexpected(f"{type(exc).__name__} while writing") from exc

    async def _write(self, rows: Any) -> None:
        if self._writer is None or self._writer.conn.closed:
            self._writer = await self.connect()
        started = time.perf_counter()
        inserted = await self._writer.write(rows)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        if self.signal == "traces":
            metrics.BATCH_SPANS.observe(len(rows.spans))
            metrics.SPANS_WRITTEN.inc(inserted)
            metrics.SPANS_DUPLICATE.inc(len(rows.spans) - inserted)
        else:
            metrics.ITEMS_WRITTEN.labels(self.signal).inc(inserted)
            metrics.ITEMS_DUPLICATE.labels(self.signal).inc(len(rows) - inserted)
        self.db_error = None

    async def _recover(self) -> None:
        """After a refused COPY the connection is normally idle again; if not, start over."""
        if self._writer is not None and self._writer.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            try:
                await self._writer.conn.close()
            except Exception:  # closing a broken connection may fail; it is gone either way
                pass
        self._writer = None
