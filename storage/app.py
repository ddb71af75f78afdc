"""The storage writer: consume → decode → batch → write → ack, until told to stop.

An entry is acknowledged only after the transaction holding its spans has committed. A
database error keeps the batch and retries it with capped backoff (the writer reports
not-ready meanwhile); an entry that cannot be decoded, or that the database rejects on
its own, goes to the dead-letter stream and the group moves on.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

import psycopg
from redis.asyncio import Redis

from common.logging import configure_logging, get_logger
from common.ops import ops_app, start_site
from common.settings import load
from common.stream import SpanStream, StreamKeys
from storage import metrics
from storage.consumer import Delivery, StreamConsumer, parse
from storage.decode import Rows, UndecodableEntry, decode
from storage.settings import StorageSettings
from storage.writer import SpanWriter

log = get_logger("storage")

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0
CLAIM_EVERY = 5.0


@dataclass
class Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    rows: Rows = field(default_factory=Rows)
    started: float | None = None

    @property
    def spans(self) -> int:
        return len(self.rows.spans)


class StorageWriter:
    def __init__(self, settings: StorageSettings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.stream = SpanStream(redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards))
        self.consumer = StreamConsumer(redis, self.stream, settings.consumer, int(settings.claim_idle * 1000))
        self.stopping = asyncio.Event()
        self.db_error: str | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self._writer: SpanWriter | None = None
        self._last_claim = 0.0

    # --- database connection -------------------------------------------------------
    async def _connection(self) -> SpanWriter:
        if self._writer is None or self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.settings.database_app_url, autocommit=True, connect_timeout=5,
                application_name="observatory-storage",
            )
            self._writer = SpanWriter(self._conn)
        return self._writer

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn, self._writer = None, None

    # --- the loop ------------------------------------------------------------------
    async def run(self) -> None:
        await self.stream.ensure_group()
        log.info("writer started", consumer=self.settings.consumer, streams=self.stream.keys.streams())
        while not self.stopping.is_set():
            batch = await self._fill()
            if batch.deliveries:
                await self._flush(batch)
        await self._drop_connection()
        log.info("writer stopped")

    async def _fill(self) -> Batch:
        batch = Batch()
        interval = self.settings.flush_interval
        while not self.stopping.is_set() and batch.spans < self.settings.batch_size:
            now = time.monotonic()
            if batch.started is not None and now - batch.started >= interval:
                break
            wait = interval if batch.started is None else interval - (now - batch.started)
            deliveries = await self._next(max(1, int(wait * 1000)))
            for delivery in deliveries:
                await self._add(batch, delivery)
            if batch.deliveries and batch.started is None:
                batch.started = time.monotonic()
        return batch

    async def _next(self, block_ms: int) -> list[Delivery]:
        try:
            if time.monotonic() - self._last_claim > CLAIM_EVERY:
                self._last_claim = time.monotonic()
                claimed = await self.consumer.claim_stale(count=100)
                if claimed:
                    return await self._screen_claimed(claimed)
            # Short blocks keep shutdown prompt; the flush deadline bounds them too.
            return await self.consumer.read(count=100, block_ms=min(block_ms, 1000))
        except Exception as exc:  # Redis down: wait and reconnect, keep what we hold
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("redis read failed", error=str(exc))
            await asyncio.sleep(1.0)
            return []

    async def _screen_claimed(self, claimed: list[Delivery]) -> list[Delivery]:
        counts = await self.consumer.delivery_counts(claimed)
        keep = []
        for delivery in claimed:
            times = counts.get(delivery.entry_id, 1)
            if times > self.settings.max_deliveries:
                await self.consumer.dead_letter(
                    delivery, f"delivered {times} times without being stored", "max_deliveries"
                )
            else:
                keep.append(delivery)
        return keep

    async def _add(self, batch: Batch, delivery: Delivery) -> None:
        try:
            rows = decode(parse(delivery).body)
        except (ValueError, UndecodableEntry) as exc:
            log.warning("dead-lettering undecodable entry", entry_id=delivery.entry_id.decode(), error=str(exc))
            await self.consumer.dead_letter(delivery, str(exc), "undecodable")
            return
        batch.deliveries.append(delivery)
        batch.rows.extend(rows)

    async def _flush(self, batch: Batch) -> None:
        backoff = BACKOFF_START
        while True:
            try:
                await self._write(batch.rows, len(batch.deliveries))
                break
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                # The data, not the database: find the entries at fault, store the rest.
                log.warning("batch rejected by the database, writing entries one by one", error=str(exc))
                metrics.DB_ERRORS.labels("data").inc()
                await self._flush_one_by_one(batch)
                return
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                self.db_error = str(exc).strip() or type(exc).__name__
                metrics.DB_ERRORS.labels("connection").inc()
                metrics.WRITE_RETRIES.inc()
                log.warning("database unavailable, batch kept for retry", error=self.db_error, retry_in=backoff)
                await self._drop_connection()
                # Keep retrying even while stopping: acknowledged data must not be dropped;
                # the shutdown timeout bounds how long we try.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        await self._ack(batch.deliveries)

    async def _flush_one_by_one(self, batch: Batch) -> None:
        for delivery in batch.deliveries:
            rows = decode(parse(delivery).body)
            try:
                await self._write(rows, 1)
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                await self.consumer.dead_letter(delivery, f"rejected by the database: {exc}", "rejected")
                continue
            await self._ack([delivery])

    async def _write(self, rows: Rows, entries: int) -> None:
        writer = await self._connection()
        started = time.perf_counter()
        inserted = await writer.write(rows)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SPANS.observe(len(rows.spans))
        metrics.SPANS_WRITTEN.inc(inserted)
        metrics.SPANS_DUPLICATE.inc(len(rows.spans) - inserted)
        self.db_error = None
        log.debug("batch written", spans=len(rows.spans), inserted=inserted, entries=entries)

    async def _ack(self, deliveries: list[Delivery]) -> None:
        backoff = BACKOFF_START
        while True:
            try:
                await self.consumer.ack(deliveries)
                return
            except Exception as exc:  # committed but not acked: redelivery is harmless (idempotent)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("ack failed, retrying", error=str(exc))
                if self.stopping.is_set():
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    # --- readiness -----------------------------------------------------------------
    async def check_database(self) -> str | None:
        if self.db_error:
            return f"last write failed: {self.db_error}"
        async with await psycopg.AsyncConnection.connect(self.settings.database_app_url, connect_timeout=2) as conn:
            await conn.execute("SELECT 1")
        return None

    async def check_redis(self) -> str | None:
        await self.redis.ping()
        metrics.BACKLOG_SPANS.set(await self.stream.backlog())
        return None


async def serve(settings: StorageSettings) -> None:
    if settings.run_migrations:
        await asyncio.to_thread(_migrate, settings)
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=settings.redis_timeout + 1.5,
        socket_connect_timeout=settings.redis_timeout, health_check_interval=30,
    )
    writer = StorageWriter(settings, redis)
    ops = await start_site(
        ops_app("storage", {"postgres": writer.check_database, "redis": writer.check_redis}),
        settings.metrics_host, settings.storage_metrics_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, writer.stopping.set)
    try:
        run = asyncio.create_task(writer.run())
        await writer.stopping.wait()
        log.info("stopping: flushing the current batch")
        try:
            await asyncio.wait_for(asyncio.shield(run), settings.shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("shutdown timed out; unacknowledged entries will be redelivered", timeout=settings.shutdown_timeout)
            run.cancel()
    finally:
        await ops.cleanup()
        await redis.aclose()


def _migrate(settings: StorageSettings) -> None:
    from storage.migrations import Migrator

    with psycopg.connect(settings.database_url, connect_timeout=10) as conn, Migrator(conn) as migrator:
        applied = migrator.up()
        log.info("migrations applied", count=len(applied), versions=[m.version for m in applied])


def main() -> None:
    settings = load(StorageSettings)
    configure_logging(settings.log_level, settings.log_format, "storage")
    asyncio.run(serve(settings))
